//! An upstream's error, once the router gives up on it, in LiteLLM's shape for OpenAI clients:
//! `code` is the status as a string and the message names LiteLLM's exception class
//! (`litellm.ContextWindowExceededError: …`), which LiteLLM's users match on. The upstream's
//! own message, `type` and `param` are kept.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};
use vaultgate_core::Error;
use vaultgate_router::{FailureKind, classify};

/// Longest piece of a non-JSON error body quoted in the message.
const MAX_QUOTED: usize = 500;

pub(crate) fn litellm_shape(error: Error) -> Error {
    let Error::Upstream { status, body, .. } = &error else {
        return error;
    };
    let status = *status;
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let upstream = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |name: &str| {
        upstream
            .and_then(|e| e.get(name))
            .filter(|v| v.is_string())
            .cloned()
            .unwrap_or(Value::Null)
    };
    let message = match upstream {
        Some(Value::String(text)) => text.clone(),
        Some(error) => error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| error.to_string()),
        None if body.is_empty() => format!("the upstream answered {}", status.as_u16()),
        None => quote(body),
    };
    let class = match classify(&error) {
        FailureKind::ContextWindow => "ContextWindowExceededError",
        FailureKind::ContentPolicy => "ContentPolicyViolationError",
        _ => class_of(status),
    };
    let shaped = json!({"error": {
        "message": format!("litellm.{class}: {message}"),
        "type": field("type"),
        "param": field("param"),
        "code": status.as_u16().to_string(),
    }});
    Error::Upstream {
        status,
        body: Bytes::from(shaped.to_string()),
        content_type: Some(HeaderValue::from_static("application/json")),
    }
}

/// LiteLLM's exception class for an upstream status.
fn class_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "AuthenticationError",
        403 => "PermissionDeniedError",
        404 => "NotFoundError",
        408 => "Timeout",
        422 => "UnprocessableEntityError",
        429 => "RateLimitError",
        500 => "InternalServerError",
        503 => "ServiceUnavailableError",
        // 400 and the 4xx LiteLLM has no class of its own for.
        400..=499 => "BadRequestError",
        _ => "APIError",
    }
}

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn shaped(status: u16, body: &str) -> Value {
        let error = litellm_shape(Error::Upstream {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from(body.to_owned()),
            content_type: None,
        });
        assert_eq!(error.status().as_u16(), status);
        let Error::Upstream { body, .. } = error else {
            panic!("not an upstream error")
        };
        serde_json::from_slice(&body).unwrap()
    }

    #[test]
    fn upstream_errors_get_litellms_class_and_a_string_status_code() {
        let context = shaped(
            400,
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(
            context,
            json!({"error": {
                "message": "litellm.ContextWindowExceededError: This model's maximum context length is 8192 tokens",
                "type": "invalid_request_error", "param": "messages", "code": "400",
            }})
        );
        let policy = shaped(
            400,
            r#"{"error":{"message":"blocked","code":"content_policy_violation"}}"#,
        );
        assert_eq!(
            policy["error"]["message"],
            "litellm.ContentPolicyViolationError: blocked"
        );
        assert_eq!(policy["error"]["type"], Value::Null);
        let limited = shaped(429, r#"{"error":"slow down"}"#);
        assert_eq!(
            limited["error"]["message"],
            "litellm.RateLimitError: slow down"
        );
        assert_eq!(limited["error"]["code"], "429");
        let html = shaped(502, "<html>bad gateway</html>");
        assert_eq!(
            html["error"]["message"],
            "litellm.APIError: <html>bad gateway</html>"
        );
        let empty = shaped(500, "");
        assert_eq!(
            empty["error"]["message"],
            "litellm.InternalServerError: the upstream answered 500"
        );
    }

    #[test]
    fn other_errors_are_left_alone() {
        let error = litellm_shape(Error::UpstreamTimeout("t".into()));
        assert!(matches!(error, Error::UpstreamTimeout(_)));
    }
}
