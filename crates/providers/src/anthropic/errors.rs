//! Anthropic error bodies → OpenAI-shaped upstream errors.

use http::StatusCode;
use serde_json::Value;
use vaultgate_core::Error;

use crate::errors::{raw_message, upstream_error};

/// Turns an Anthropic error answer (`{"type":"error","error":{"type","message"}}`) into
/// [`Error::Upstream`] with the same status (529 stays 529, so clients and the router can tell
/// overload from failure) and an OpenAI-shaped body, because OpenAI SDKs only read that shape.
pub fn map_error(status: StatusCode, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let kind = error
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .map_or_else(
            || error_type_for_status(status.as_u16()).to_owned(),
            str::to_owned,
        );
    let message = match error.and_then(|e| e.get("message")).and_then(Value::as_str) {
        Some(message) => message.to_owned(),
        None => raw_message("anthropic", status, body),
    };
    upstream_error(status, &message, &kind)
}

/// The HTTP status Anthropic uses for an error type; needed for errors inside a stream, which
/// arrive after a 200.
pub(super) fn status_for_type(kind: &str) -> StatusCode {
    match kind {
        "invalid_request_error" => StatusCode::BAD_REQUEST,
        "authentication_error" => StatusCode::UNAUTHORIZED,
        "billing_error" => StatusCode::PAYMENT_REQUIRED,
        "permission_error" => StatusCode::FORBIDDEN,
        "not_found_error" => StatusCode::NOT_FOUND,
        "request_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "rate_limit_error" => StatusCode::TOO_MANY_REQUESTS,
        "timeout_error" => StatusCode::GATEWAY_TIMEOUT,
        "overloaded_error" => StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The Anthropic error `type` for an HTTP status: what Anthropic itself sends with it, for
/// bodies that name none and for vaultgate's own errors shown to Anthropic clients.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One table serves upstream bodies that name no type and vaultgate's own errors, so a 504
    /// or 503 reads the same whichever produced it.
    #[test]
    fn a_body_without_a_type_gets_the_type_of_its_status() {
        for (status, kind) in [
            (400, "invalid_request_error"),
            (413, "request_too_large"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
        ] {
            let Error::Upstream { body, .. } =
                map_error(StatusCode::from_u16(status).unwrap_or_default(), b"")
            else {
                unreachable!("map_error always answers Error::Upstream");
            };
            let body: Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!(body["error"]["type"], kind, "status {status}");
            assert_eq!(error_type_for_status(status), kind);
        }
    }
}
