//! Bedrock errors (an exception name and `{"message"}`) → OpenAI-shaped upstream errors.

use http::{HeaderMap, StatusCode};
use serde_json::Value;
use vaultgate_core::Error;

use crate::errors::{openai_type_for_status, raw_message, upstream_error};

/// The status a Bedrock exception stands for. Bedrock's own statuses mostly agree; the few it
/// words differently are mapped so the router reads them right: a model timeout (408) or a
/// model's failure (424) is worth retrying elsewhere, so both become 5xx; throttling in any of
/// its spellings is 429. Matched case-insensitively: streams name them in camelCase.
pub(super) fn status_for_exception(name: &str, fallback: StatusCode) -> StatusCode {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "throttlingexception"
        | "servicequotaexceededexception"
        | "modelnotreadyexception"
        | "toomanyrequestsexception" => StatusCode::TOO_MANY_REQUESTS,
        "validationexception" | "serializationexception" => StatusCode::BAD_REQUEST,
        "accessdeniedexception"
        | "unrecognizedclientexception"
        | "expiredtokenexception"
        | "invalidsignatureexception"
        | "incompletesignatureexception"
        | "missingauthenticationtokenexception" => StatusCode::FORBIDDEN,
        "resourcenotfoundexception" => StatusCode::NOT_FOUND,
        "modeltimeoutexception" => StatusCode::GATEWAY_TIMEOUT,
        "modelerrorexception" | "modelstreamerrorexception" => StatusCode::BAD_GATEWAY,
        "serviceunavailableexception" => StatusCode::SERVICE_UNAVAILABLE,
        "internalserverexception" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => fallback,
    }
}

/// The exception name of an error answer: `x-amzn-ErrorType` (`ThrottlingException:http://…`),
/// else the body's `__type` (`com.amazon…#ThrottlingException`).
fn exception_name<'a>(headers: &'a HeaderMap, body: Option<&'a Value>) -> Option<&'a str> {
    let from_header = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v));
    let from_body = || {
        body.and_then(|b| b.get("__type"))
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t))
    };
    from_header.or_else(from_body).filter(|n| !n.is_empty())
}

/// Turns a Bedrock error answer into [`Error::Upstream`] with an OpenAI-shaped body and the
/// status its exception stands for.
pub fn map_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let name = exception_name(headers, parsed.as_ref());
    let message = parsed
        .as_ref()
        .and_then(|b| b.get("message").or_else(|| b.get("Message")))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| raw_message("bedrock", status, body));
    exception_error(name, &message, status)
}

/// The status and client message of a named exception (from a status answer or a stream).
pub(super) fn exception(
    name: Option<&str>,
    message: &str,
    fallback: StatusCode,
) -> (StatusCode, String) {
    let status = name.map_or(fallback, |n| status_for_exception(n, fallback));
    let message = match name {
        Some(name) => format!("bedrock {name}: {message}"),
        None => format!("bedrock: {message}"),
    };
    (status, message)
}

/// The error for a named exception, in OpenAI's shape.
pub(super) fn exception_error(name: Option<&str>, message: &str, fallback: StatusCode) -> Error {
    let (status, message) = exception(name, message, fallback);
    upstream_error(status, &message, openai_type_for_status(status))
}
