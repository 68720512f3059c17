//! LiteLLM's request-level params, split off the body before it goes anywhere: the router
//! overrides (`fallbacks`, `num_retries`, `timeout`, the `mock_testing_*` switches), a
//! per-request `mock_response`, and which params to drop. None of them reaches a provider.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Map, Value};
use vaultgate_core::{Error, Result};
use vaultgate_providers::{CLIENT_CREDENTIALS, ChatBody};
use vaultgate_router::{MockFailures, RequestRouting, mock_error};

/// The most retries a request may ask for: one request must not keep an upstream (and the
/// key's parallel slot) busy for ever with a failing call and its backoff.
const MAX_CLIENT_RETRIES: u32 = 10;

/// What a request asked of the gateway beyond its provider params.
#[derive(Debug, Default)]
pub(crate) struct RequestParams {
    pub routing: RequestRouting,
    /// Answer with this text (or fail as this LiteLLM error) instead of calling the upstream.
    pub mock_response: Option<String>,
    /// Replaces the deployment's and `litellm_settings.drop_params`.
    pub drop_params: Option<bool>,
    /// Dropped from the upstream body, besides the deployment's `additional_drop_params`.
    pub additional_drop_params: Vec<String>,
}

/// Splits LiteLLM's params off `body` (`keep`: names the route's own protocol uses, such as
/// Anthropic's `metadata`) and reads the ones vaultgate implements.
pub(crate) fn split(body: ChatBody, keep: &[&str]) -> Result<(ChatBody, RequestParams)> {
    let (body, params) = body.take_proxy_params(keep)?;
    if params.is_empty() {
        return Ok((body, RequestParams::default()));
    }
    Ok((body, read(&params)?))
}

fn read(params: &Map<String, Value>) -> Result<RequestParams> {
    if let Some(name) = CLIENT_CREDENTIALS.iter().find(|n| params.contains_key(**n)) {
        return Err(Error::bad_param(
            *name,
            format!(
                "{name} is not allowed in the request body: the gateway's deployments decide where requests go and with which credentials"
            ),
        ));
    }
    let flag = |name: &str| -> Result<bool> {
        match params.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(on)) => Ok(*on),
            Some(_) => Err(Error::bad_param(
                name,
                format!("`{name}` must be a boolean"),
            )),
        }
    };
    let retries = match params.get("num_retries").or(params.get("max_retries")) {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .ok_or_else(|| {
                    Error::bad_param("num_retries", "`num_retries` must be a whole number")
                })
                .and_then(|n| {
                    u32::try_from(n)
                        .ok()
                        .filter(|n| *n <= MAX_CLIENT_RETRIES)
                        .ok_or_else(|| {
                            Error::bad_param(
                                "num_retries",
                                format!("`num_retries` may be at most {MAX_CLIENT_RETRIES}"),
                            )
                        })
                })?,
        ),
    };
    let timeout = match ["timeout", "request_timeout", "force_timeout"]
        .iter()
        .find_map(|name| params.get(*name).map(|value| (*name, value)))
    {
        None | Some((_, Value::Null)) => None,
        Some((name, value)) => Some(seconds(name, value)?),
    };
    let routing = RequestRouting {
        fallbacks: models(params, "fallbacks")?,
        context_window_fallbacks: models(params, "context_window_fallbacks")?,
        content_policy_fallbacks: models(params, "content_policy_fallbacks")?,
        disable_fallbacks: flag("disable_fallbacks")?,
        num_retries: retries,
        timeout,
        mock: MockFailures {
            fallbacks: flag("mock_testing_fallbacks")?,
            context_window_fallbacks: flag("mock_testing_context_fallbacks")?,
            content_policy_fallbacks: flag("mock_testing_content_policy_fallbacks")?,
            rate_limit_error: flag("mock_testing_rate_limit_error")?,
            timeout: flag("mock_timeout")?,
        },
        // Not the client's to choose: the end user's setting (see `proxy::admit`).
        allowed_region: None,
        only_deployment: None,
    };
    let mock_response = match params.get("mock_response") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            return Err(Error::bad_param(
                "mock_response",
                "`mock_response` must be a string",
            ));
        }
    };
    let drop_params = match params.get("drop_params") {
        None | Some(Value::Null) => None,
        Some(_) => Some(flag("drop_params")?),
    };
    let additional_drop_params = match params.get("additional_drop_params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(names)) => names
            .iter()
            .map(|name| name.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                Error::bad_param(
                    "additional_drop_params",
                    "`additional_drop_params` must be a list of param names",
                )
            })?,
        Some(_) => {
            return Err(Error::bad_param(
                "additional_drop_params",
                "`additional_drop_params` must be a list of param names",
            ));
        }
    };
    Ok(RequestParams {
        routing,
        mock_response,
        drop_params,
        additional_drop_params,
    })
}

/// A timeout in seconds (a number, or a numeric string as LiteLLM also takes).
fn seconds(name: &str, value: &Value) -> Result<Duration> {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    number
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            Error::bad_param(
                name,
                format!("`{name}` must be a positive number of seconds"),
            )
        })
}

/// A fallback list: model names, `{"model": name}` objects, or LiteLLM's router shape
/// `[{"group": ["fallback", …]}]` (every listed fallback is taken).
fn models(params: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>> {
    let invalid = || {
        Error::bad_param(
            name,
            format!("`{name}` must be a list of model names (or of {{\"model\": name}} objects)"),
        )
    };
    let items = match params.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid()),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(model) => out.push(model.clone()),
            Value::Object(fields) => match fields.get("model") {
                Some(Value::String(model)) if fields.len() == 1 => out.push(model.clone()),
                Some(_) => {
                    return Err(Error::bad_param(
                        name,
                        format!(
                            "`{name}`: a fallback can only name a model; other overrides are not supported"
                        ),
                    ));
                }
                None => {
                    for targets in fields.values() {
                        let targets = targets.as_array().ok_or_else(invalid)?;
                        for target in targets {
                            out.push(target.as_str().ok_or_else(invalid)?.to_owned());
                        }
                    }
                }
            },
            _ => return Err(invalid()),
        }
    }
    Ok(Some(out))
}

/// LiteLLM's `mock_response` error names; any other text is the answer.
pub(crate) fn mock_failure(text: &str, model: &str) -> Option<Error> {
    let (status, code, what) = match text {
        "litellm.RateLimitError" => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "rate limit error",
        ),
        "litellm.InternalServerError" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "internal server error",
        ),
        "litellm.ContextWindowExceededError" => (
            StatusCode::BAD_REQUEST,
            "context_length_exceeded",
            "context window exceeded error",
        ),
        _ => return None,
    };
    Some(mock_error(
        status,
        code,
        format!("this is a mock {what} for model={model} (mock_response)"),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    fn split_json(body: Value, keep: &[&str]) -> Result<(Value, RequestParams)> {
        let body = ChatBody::parse(Bytes::from(body.to_string()))?;
        let (body, params) = split(body, keep)?;
        let sent: Value = serde_json::from_slice(&body.upstream_body("up", false)).unwrap();
        Ok((sent, params))
    }

    #[test]
    fn router_params_are_read_and_never_sent() {
        let (sent, params) = split_json(
            json!({
                "model": "m", "messages": [], "temperature": 0.2, "user": "u",
                "fallbacks": ["a", {"model": "b"}], "num_retries": 3, "timeout": "1.5",
                "mock_testing_fallbacks": true, "metadata": {"tags": ["t"]}, "tags": ["x"],
                "litellm_trace_id": "t", "caching": false, "cache": {"no-cache": true},
                "guardrails": ["g"], "mock_response": "hi", "drop_params": true,
                "additional_drop_params": ["temperature"], "context_window_fallbacks": [{"m": ["big"]}],
            }),
            &[],
        )
        .unwrap();
        assert_eq!(
            sent,
            json!({"model": "up", "messages": [], "temperature": 0.2, "user": "u"})
        );
        let r = &params.routing;
        assert_eq!(r.fallbacks, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(r.context_window_fallbacks, Some(vec!["big".to_owned()]));
        assert_eq!(r.num_retries, Some(3));
        assert_eq!(r.timeout, Some(Duration::from_millis(1500)));
        assert!(r.mock.fallbacks && !r.mock.rate_limit_error);
        assert_eq!(params.mock_response.as_deref(), Some("hi"));
        assert_eq!(params.drop_params, Some(true));
        assert_eq!(params.additional_drop_params, ["temperature"]);
    }

    #[test]
    fn a_body_without_litellm_params_is_untouched() {
        let text = r#"{ "model" : "m", "messages":[] ,"n":1 }"#;
        let body = ChatBody::parse(Bytes::from_static(text.as_bytes())).unwrap();
        let (body, params) = split(body, &[]).unwrap();
        assert_eq!(params.routing, RequestRouting::default());
        assert_eq!(
            String::from_utf8(body.upstream_body("m", false)).unwrap(),
            text
        );
    }

    #[test]
    fn kept_names_stay() {
        let (sent, _) = split_json(
            json!({"model": "m", "metadata": {"user_id": "u"}, "tags": []}),
            &["metadata"],
        )
        .unwrap();
        assert_eq!(sent, json!({"model": "up", "metadata": {"user_id": "u"}}));
    }

    #[test]
    fn bad_values_and_client_credentials_are_refused() {
        for (body, param) in [
            (json!({"model": "m", "api_base": "http://evil"}), "api_base"),
            (json!({"model": "m", "api_key": "sk-x"}), "api_key"),
            (json!({"model": "m", "user_config": {}}), "user_config"),
            (json!({"model": "m", "num_retries": -1}), "num_retries"),
            (json!({"model": "m", "num_retries": 11}), "num_retries"),
            (
                json!({"model": "m", "max_retries": 4_000_000_000_u64}),
                "num_retries",
            ),
            (json!({"model": "m", "timeout": 0}), "timeout"),
            (json!({"model": "m", "fallbacks": "a"}), "fallbacks"),
            (
                json!({"model": "m", "fallbacks": [{"model": "a", "messages": []}]}),
                "fallbacks",
            ),
            (
                json!({"model": "m", "mock_testing_fallbacks": "yes"}),
                "mock_testing_fallbacks",
            ),
            (json!({"model": "m", "mock_response": 1}), "mock_response"),
        ] {
            match split_json(body.clone(), &[]) {
                Err(Error::BadRequest { param: Some(p), .. }) => assert_eq!(p, param, "{body}"),
                other => panic!("{body}: {:?}", other.map(|(v, _)| v)),
            }
        }
    }

    #[test]
    fn mock_error_names() {
        let error = mock_failure("litellm.RateLimitError", "m").unwrap();
        assert_eq!(error.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(mock_failure("hello", "m").is_none());
    }
}
