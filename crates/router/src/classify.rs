//! Sorting failures by what the router should do about them.

use http::StatusCode;
use vaultgate_core::Error;

/// What kind of failure an attempt ended with, as far as routing is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connect error, timeout, 429 or 5xx: another try (elsewhere or later) may succeed.
    Transient,
    /// The upstream refused the deployment's key (401/403): the deployment's fault, not the
    /// client's, so it counts towards cooldown and another deployment may serve the request.
    DeploymentAuth,
    /// The prompt does not fit the model: only a model with a larger window helps.
    ContextWindow,
    /// The provider's content filter refused the request.
    ContentPolicy,
    /// No deployment of the group can be called (an unsupported provider): not retried, but
    /// another group may serve.
    Unsupported,
    /// The request itself is wrong (or the failure is ours): nobody else would do better.
    Final,
}

impl FailureKind {
    /// Whether the deployment is to blame (counts towards its cooldown).
    pub fn is_deployment_failure(self) -> bool {
        matches!(self, Self::Transient | Self::DeploymentAuth)
    }

    /// Whether another model group may serve the request.
    pub fn falls_back(self) -> bool {
        !matches!(self, Self::Final)
    }
}

/// Phrases providers use when a prompt exceeds the context window (OpenAI, Azure, Anthropic,
/// Bedrock, vLLM), matched case-insensitively in the error body.
const CONTEXT_WINDOW_PHRASES: &[&str] = &[
    "context_length_exceeded",
    "context length exceeded",
    "maximum context length",
    "context window",
    "too many tokens",
    "prompt is too long",
    "input is too long",
];

/// Phrases of content-filter refusals (OpenAI, Azure, Anthropic).
const CONTENT_POLICY_PHRASES: &[&str] = &[
    "content_policy_violation",
    "content policy",
    "content_filter",
    "content management policy",
    "responsibleaipolicyviolation",
];

pub fn classify(error: &Error) -> FailureKind {
    match error {
        Error::UpstreamUnreachable(_) | Error::UpstreamTimeout(_) => FailureKind::Transient,
        Error::Upstream { status, body, .. } => {
            if *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                return FailureKind::Transient;
            }
            if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN {
                return FailureKind::DeploymentAuth;
            }
            let text = String::from_utf8_lossy(body).to_lowercase();
            let says = |phrases: &[&str]| phrases.iter().any(|p| text.contains(p));
            if status.is_client_error() && says(CONTENT_POLICY_PHRASES) {
                FailureKind::ContentPolicy
            } else if matches!(status.as_u16(), 400 | 413 | 422) && says(CONTEXT_WINDOW_PHRASES) {
                FailureKind::ContextWindow
            } else {
                FailureKind::Final
            }
        }
        Error::NotImplemented(_) => FailureKind::Unsupported,
        // In the router, only a group whose every deployment is cooling down says this:
        // another group (a fallback) may serve.
        Error::RateLimited { .. } => FailureKind::Transient,
        _ => FailureKind::Final,
    }
}

/// Whether another attempt may succeed where this one failed.
pub fn retryable(error: &Error) -> bool {
    classify(error) == FailureKind::Transient
}
