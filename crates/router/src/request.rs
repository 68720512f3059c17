//! Routing settings a client may send with one request (LiteLLM's request-level router params),
//! and the fabricated failures of LiteLLM's `mock_testing_*` params.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use vaultgate_core::Error;

/// Per-request overrides of the router's settings. The default changes nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestRouting {
    /// Replaces the general fallbacks of the requested group for this request.
    pub fallbacks: Option<Vec<String>>,
    pub context_window_fallbacks: Option<Vec<String>>,
    pub content_policy_fallbacks: Option<Vec<String>>,
    /// `disable_fallbacks: true`: no fallback at all.
    pub disable_fallbacks: bool,
    /// Replaces the group's `num_retries`.
    pub num_retries: Option<u32>,
    /// Bounds each attempt (LiteLLM's request `timeout` / `request_timeout`).
    pub timeout: Option<Duration>,
    pub mock: MockFailures,
    /// The end user's `allowed_model_region` (lower case): only deployments whose
    /// `region_name` is this one may serve, in the requested group and its fallbacks.
    pub allowed_region: Option<String>,
    /// Only the deployment of this id may serve (the one that holds the response a Responses
    /// request continues).
    pub only_deployment: Option<String>,
}

impl RequestRouting {
    /// Whether `deployment` may serve this request (its region, when one is required, and the
    /// one deployment, when pinned).
    pub fn allows(&self, deployment: &vaultgate_providers::Deployment) -> bool {
        self.allowed_region
            .as_ref()
            .is_none_or(|region| deployment.region.as_ref() == Some(region))
            && self
                .only_deployment
                .as_ref()
                .is_none_or(|id| deployment.id == *id)
    }

    /// Fallback models the client named (each must be one the caller may use).
    pub fn client_fallbacks(&self) -> impl Iterator<Item = &String> {
        [
            &self.fallbacks,
            &self.context_window_fallbacks,
            &self.content_policy_fallbacks,
        ]
        .into_iter()
        .flatten()
        .flatten()
    }
}

/// LiteLLM's testing switches: failures made up by the gateway instead of calling the upstream.
/// They only fail attempts in the requested group; fallback groups are called normally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MockFailures {
    /// Every attempt fails with a 500, so the general fallbacks run.
    pub fallbacks: bool,
    /// Every attempt fails as over the context window.
    pub context_window_fallbacks: bool,
    /// Every attempt fails as refused by the content filter.
    pub content_policy_fallbacks: bool,
    /// The first attempt fails with a 429, so a retry follows.
    pub rate_limit_error: bool,
    /// Every attempt waits out its timeout and fails as timed out.
    pub timeout: bool,
}

impl MockFailures {
    pub fn any(self) -> bool {
        self != Self::default()
    }

    /// The made-up failure of attempt `attempt_in_group` (0-based) of the requested group, if any.
    pub(crate) fn failure(self, group: &str, attempt_in_group: u32) -> Option<Error> {
        if self.fallbacks {
            return Some(mock_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                format!(
                    "This is a mock exception for model={group}, to trigger a fallback (mock_testing_fallbacks)."
                ),
            ));
        }
        if self.context_window_fallbacks {
            return Some(mock_error(
                StatusCode::BAD_REQUEST,
                "context_length_exceeded",
                format!(
                    "This is a mock exception for model={group}: maximum context length exceeded (mock_testing_context_fallbacks)."
                ),
            ));
        }
        if self.content_policy_fallbacks {
            return Some(mock_error(
                StatusCode::BAD_REQUEST,
                "content_policy_violation",
                format!(
                    "This is a mock exception for model={group}: content policy violation (mock_testing_content_policy_fallbacks)."
                ),
            ));
        }
        if self.rate_limit_error && attempt_in_group == 0 {
            return Some(mock_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                format!(
                    "This is a mock exception for model={group}: rate limit exceeded (mock_testing_rate_limit_error)."
                ),
            ));
        }
        None
    }
}

/// An upstream-shaped error the router treats like a real one (retries, cooldown, fallbacks).
pub fn mock_error(status: StatusCode, code: &str, message: String) -> Error {
    let body = serde_json::json!({"error": {
        "message": message, "type": code, "param": null, "code": code,
    }});
    Error::Upstream {
        status,
        body: Bytes::from(body.to_string()),
        content_type: Some(HeaderValue::from_static("application/json")),
    }
}
