use axum_core::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The one error type of vaultgate. Every failure, from a bad config line to an upstream timeout,
/// is one of these; [`Error::status`] and [`Error::to_body`] are the single place where a failure
/// becomes an HTTP status and an OpenAI-shaped body. Messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid configuration, found at start-up or by `vaultgate check`.
    #[error("config error: {0}")]
    Config(String),
    /// The client sent something we cannot accept (bad JSON, missing field, unknown model).
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
    },
    /// Missing, unknown, expired or blocked credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// A key (or its team or user) may not use the model it asked for: LiteLLM's 401 with
    /// `type` `key_model_access_denied` (`team_…`, `user_…`) and `param: model`.
    #[error("{message}")]
    ModelAccessDenied { kind: &'static str, message: String },
    /// Authenticated, but this caller may not do this (a read-only role, a missing CSRF token,
    /// another user's object).
    #[error("{0}")]
    Forbidden(String),
    /// The key's budget is spent.
    #[error("{0}")]
    BudgetExceeded(String),
    /// A key's rate or parallelism limit; `retry_after` in whole seconds.
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    #[error("{0}")]
    NotFound(String),
    /// The client took too long to send its request.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The upstream answered with an error status; its body is passed through as is.
    #[error("upstream answered {status}")]
    Upstream {
        status: StatusCode,
        body: Bytes,
        content_type: Option<HeaderValue>,
    },
    /// The upstream could not be reached (connect error, reset, malformed answer).
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    #[error("upstream timed out: {0}")]
    UpstreamTimeout(String),
    /// Configured but not something vaultgate can do (a deployment of an unsupported provider).
    #[error("{0}")]
    NotImplemented(String),
    /// A dependency (Vault, the database) is unavailable; the operation was not done.
    #[error("{0}")]
    Unavailable(String),
    /// Vault / OpenBao answered with an error or could not be reached. Whose fault it is decides
    /// the status: no answer, a sealed or overloaded Vault (`status` none, 5xx, 429) is 503
    /// (try again later); a refusal (403 permission denied, other 4xx) is 502 (a policy or
    /// request the operator must fix; retrying will not help).
    #[error("vault: {message}")]
    Vault {
        message: String,
        status: Option<u16>,
    },
    #[error("database: {0}")]
    Database(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            param: None,
        }
    }

    pub fn bad_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    pub fn vault(message: impl Into<String>, status: Option<u16>) -> Self {
        Self::Vault {
            message: message.into(),
            status,
        }
    }

    /// Whether Vault refused the call (as opposed to being unreachable, sealed or overloaded).
    pub fn is_vault_refusal(&self) -> bool {
        matches!(self, Self::Vault { status: Some(s), .. } if (400..500).contains(s) && *s != 429)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Vault { .. } if self.is_vault_refusal() => StatusCode::BAD_GATEWAY,
            Self::BadRequest { .. } | Self::BudgetExceeded(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::ModelAccessDenied { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Upstream { status, .. } => *status,
            Self::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            // LiteLLM's `litellm.Timeout` answers 408 (OpenAI's SDKs retry it).
            Self::UpstreamTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Unavailable(_) | Self::Vault { .. } | Self::Database(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Config(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's `error.type` (LiteLLM's values where it has its own).
    fn kind(&self) -> &'static str {
        match self {
            Self::Vault { .. } if self.is_vault_refusal() => "vault_error",
            Self::BadRequest { .. }
            | Self::PayloadTooLarge { .. }
            | Self::RequestTimeout(_)
            | Self::NotFound(_) => "invalid_request_error",
            Self::Unauthorized(_) | Self::Forbidden(_) => "auth_error",
            Self::ModelAccessDenied { kind, .. } => kind,
            Self::BudgetExceeded(_) => "budget_exceeded",
            Self::RateLimited { .. } => "rate_limit_error",
            Self::Upstream { .. } | Self::UpstreamUnreachable(_) => "upstream_error",
            Self::UpstreamTimeout(_) => "timeout",
            Self::Unavailable(_) | Self::Vault { .. } | Self::Database(_) => "service_unavailable",
            Self::NotImplemented(_) => "not_implemented_error",
            Self::Config(_) | Self::Internal(_) => "internal_error",
        }
    }

    /// The status as a string, as LiteLLM sends `code` (one exception of our own).
    fn code(&self) -> String {
        match self {
            Self::Vault {
                status: Some(403), ..
            } => "vault_permission_denied".into(),
            other => other.status().as_u16().to_string(),
        }
    }

    /// The OpenAI-shaped error body `{"error":{"message","type","param","code"}}`.
    pub fn to_body(&self) -> Bytes {
        let param = match self {
            Self::BadRequest { param, .. } => param.clone(),
            Self::ModelAccessDenied { .. } => Some("model".to_owned()),
            _ => None,
        };
        let body = json!({"error": {
            "message": self.to_string(),
            "type": self.kind(),
            "param": param,
            "code": self.code(),
        }});
        Bytes::from(body.to_string())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let (body, content_type) = match self {
            Self::Upstream {
                body, content_type, ..
            } if !body.is_empty() => (
                body,
                content_type.unwrap_or(HeaderValue::from_static("application/json")),
            ),
            other => (
                other.to_body(),
                HeaderValue::from_static("application/json"),
            ),
        };
        let mut response = Response::new(axum_core::body::Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, content_type);
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Value;

    fn body(error: &Error) -> Value {
        serde_json::from_slice::<Value>(&error.to_body()).unwrap()["error"].clone()
    }

    #[test]
    fn codes_are_the_status_as_litellm_sends_them() {
        let budget = body(&Error::BudgetExceeded("spent".into()));
        assert_eq!(
            (budget["type"].as_str(), budget["code"].as_str()),
            (Some("budget_exceeded"), Some("400"))
        );
        let denied = Error::ModelAccessDenied {
            kind: "key_model_access_denied",
            message: "no".into(),
        };
        assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
        let denied = body(&denied);
        assert_eq!(denied["type"], "key_model_access_denied");
        assert_eq!(denied["param"], "model");
        assert_eq!(denied["code"], "401");
        let timeout = Error::UpstreamTimeout("slow".into());
        assert_eq!(timeout.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body(&timeout)["code"], "408");
    }
}
