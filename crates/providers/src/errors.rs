//! Upstream error answers of native (non-OpenAI) APIs in OpenAI's error shape, so clients see
//! one format whichever provider failed.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::json;
use vaultgate_core::Error;

/// Longest slice of a non-JSON error body quoted back to the client.
const MAX_RAW_MESSAGE: usize = 512;

/// `{"error":{"message","type","param":null,"code":"<status>"}}`, the shape of vaultgate's own
/// errors.
pub(crate) fn openai_error_body(message: &str, kind: &str, status: StatusCode) -> Bytes {
    let body = json!({"error": {
        "message": message,
        "type": kind,
        "param": null,
        "code": status.as_u16().to_string(),
    }});
    Bytes::from(body.to_string())
}

/// [`Error::Upstream`] with the upstream's status and an OpenAI-shaped body.
pub(crate) fn upstream_error(status: StatusCode, message: &str, kind: &str) -> Error {
    Error::Upstream {
        status,
        body: openai_error_body(message, kind, status),
        content_type: Some(HeaderValue::from_static("application/json")),
    }
}

/// OpenAI's error `type` for an HTTP status, for upstream bodies that name none.
pub(crate) fn openai_type_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 404 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

/// A non-JSON body (e.g. an HTML page from a proxy), shortened on a char boundary; `who` names
/// the upstream when the body is empty.
pub(crate) fn raw_message(who: &str, status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("{who} answered {}", status.as_u16());
    }
    match text.char_indices().nth(MAX_RAW_MESSAGE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
