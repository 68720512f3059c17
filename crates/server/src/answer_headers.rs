//! The headers of a model answer that say how it was served: ours (`x-vaultgate-*`) and the
//! `x-litellm-*` ones LiteLLM clients read. Values are built at start (per deployment) or taken
//! from a small static table, so a request formats nothing.

use axum::response::Response;
use http::{HeaderName, HeaderValue};
use vaultgate_providers::seconds_text;
use vaultgate_router::{Outcome, RequestRouting};

const MODEL_ID: HeaderName = HeaderName::from_static("x-litellm-model-id");
const MODEL_GROUP: HeaderName = HeaderName::from_static("x-litellm-model-group");
const ATTEMPTED_RETRIES: HeaderName = HeaderName::from_static("x-litellm-attempted-retries");
const ATTEMPTED_FALLBACKS: HeaderName = HeaderName::from_static("x-litellm-attempted-fallbacks");
const MAX_RETRIES: HeaderName = HeaderName::from_static("x-litellm-max-retries");
const TIMEOUT: HeaderName = HeaderName::from_static("x-litellm-timeout");
const VAULTGATE_MODEL_ID: HeaderName = HeaderName::from_static("x-vaultgate-model-id");
const VAULTGATE_ATTEMPTS: HeaderName = HeaderName::from_static("x-vaultgate-attempts");

/// `0`…`9` without formatting; larger counts are rare (retries and fallbacks are few).
pub(crate) fn count(n: u32) -> HeaderValue {
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match SMALL.get(n as usize) {
        Some(text) => HeaderValue::from_static(text),
        None => HeaderValue::from(n),
    }
}

/// Which deployment answered (or failed last), after how many attempts, retries and fallbacks,
/// under which retry budget and timeout: on answers and errors alike.
pub(crate) fn with_outcome(
    mut response: Response,
    outcome: Option<&Outcome>,
    routing: &RequestRouting,
) -> Response {
    let Some(outcome) = outcome else {
        return response;
    };
    let names = &outcome.deployment.headers;
    let headers = response.headers_mut();
    if let Some(id) = &names.id {
        headers.insert(VAULTGATE_MODEL_ID, id.clone());
        headers.insert(MODEL_ID, id.clone());
    }
    if let Some(group) = &names.group {
        headers.insert(MODEL_GROUP, group.clone());
    }
    headers.insert(VAULTGATE_ATTEMPTS, count(outcome.attempts));
    headers.insert(ATTEMPTED_RETRIES, count(outcome.retries));
    headers.insert(ATTEMPTED_FALLBACKS, count(outcome.fallbacks));
    headers.insert(MAX_RETRIES, count(outcome.max_retries));
    let timeout = match routing.timeout {
        Some(limit) => HeaderValue::from_str(&seconds_text(limit)).ok(),
        None => Some(names.timeout.clone()),
    };
    if let Some(timeout) = timeout {
        headers.insert(TIMEOUT, timeout);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counts_are_decimal() {
        for n in [0, 7, 9, 10, 123] {
            assert_eq!(count(n).to_str().unwrap(), n.to_string());
        }
    }
}
