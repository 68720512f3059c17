//! OpenAI's Responses API (`/v1/responses`): passed through to OpenAI and Azure deployments,
//! translated to chat completions for every other one. No HTTP happens here; the caller owns I/O.
//!
//! Pass-through: [`upstream_request`] (create, retrieve, delete, input items), then the answer's
//! response id is swapped for one naming the deployment ([`rewrite_answer_id`], or
//! [`IdRewriter`] for a stream), so `GET`/`DELETE /v1/responses/{id}` and
//! `previous_response_id` find the deployment that holds it again ([`decode_id`]).
//!
//! Translation: [`responses_to_chat_request`] → any chat deployment →
//! [`chat_response_to_responses`] (or [`ResponsesStreamTranslator`] when streaming).

mod answer;
mod items;
mod passthrough;
mod request;
mod stream;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::Method;
use serde_json::{Map, Value, json};
use vaultgate_config::Provider;
use vaultgate_core::{Error, Result};

use crate::deployment::{Target, bad_base, parse_url};
use crate::{Deployment, Resolved, UpstreamRequest, Usage, post_json};

pub use answer::chat_response_to_responses;
pub use items::{continued, conversation, for_openai, input_items};
pub use passthrough::{IdRewriter, rewrite_answer_id};
pub use request::responses_to_chat_request;
pub use stream::ResponsesStreamTranslator;

/// Azure's Responses API version unless the deployment sets one (LiteLLM's default): the v1 API.
const AZURE_RESPONSES_API_VERSION: &str = "preview";
const ID_PREFIX: &str = "resp_";
/// The decoded id's layout is LiteLLM's, so ids a LiteLLM proxy issued still route here.
const PROVIDER_MARK: &str = "litellm:custom_llm_provider:";
const MODEL_MARK: &str = ";model_id:";
const RESPONSE_MARK: &str = ";response_id:";

/// Whether `deployment` serves the Responses API itself (OpenAI's own API and Azure OpenAI);
/// every other deployment gets requests translated to chat completions.
pub fn passes_through(deployment: &Deployment) -> bool {
    match deployment.provider {
        Provider::Azure => true,
        Provider::OpenAi => deployment.spec.prefix == "openai",
        _ => false,
    }
}

/// Where a response id the gateway issued came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseId {
    /// The provider prefix of the deployment (`openai`, `azure`, `anthropic`…).
    pub provider: String,
    /// The deployment's id (`model_info.id`, else `<model_name>-<index>`).
    pub deployment: String,
    /// The id the upstream gave the response.
    pub upstream: String,
}

/// A new id for a response translated for `deployment`: the upstream part is made here (a
/// chat id need not be unique), so a stored response's id names it alone.
pub fn translated_id(provider: &str, deployment: &str) -> String {
    let own = format!("resp_{}", uuid::Uuid::new_v4().simple());
    encode_id(provider, deployment, &own)
}

/// Which deployment a response id belongs to, for clients that send it back.
pub fn encode_id(provider: &str, deployment: &str, upstream: &str) -> String {
    let text =
        format!("{PROVIDER_MARK}{provider}{MODEL_MARK}{deployment}{RESPONSE_MARK}{upstream}");
    format!("{ID_PREFIX}{}", URL_SAFE_NO_PAD.encode(text))
}

/// The deployment and upstream id of an id [`encode_id`] made (or LiteLLM, whose ids use
/// padded standard base64); `None` for any other id.
pub fn decode_id(id: &str) -> Option<ResponseId> {
    let encoded: String = id
        .strip_prefix(ID_PREFIX)?
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
    let rest = text.strip_prefix(PROVIDER_MARK)?;
    let (provider, rest) = rest.split_once(MODEL_MARK)?;
    let (deployment, upstream) = rest.split_once(RESPONSE_MARK)?;
    if deployment.is_empty() || upstream.is_empty() {
        return None;
    }
    Some(ResponseId {
        provider: provider.to_owned(),
        deployment: deployment.to_owned(),
        upstream: upstream.to_owned(),
    })
}

/// What a pass-through call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call<'a> {
    /// `POST /responses` with a body.
    Create,
    /// `GET /responses/{id}`.
    Retrieve(&'a str),
    /// `DELETE /responses/{id}`.
    Delete(&'a str),
    /// `GET /responses/{id}/input_items`.
    InputItems(&'a str),
}

/// The upstream request of a pass-through call to an OpenAI or Azure deployment. `query` is the
/// client's query string (retrieve and list options), passed on.
pub fn upstream_request(
    deployment: &Deployment,
    resolved: &Resolved<'_>,
    call: Call<'_>,
    query: Option<&str>,
    body: Bytes,
) -> Result<UpstreamRequest> {
    let (method, id, suffix) = match call {
        Call::Create => (Method::POST, None, None),
        Call::Retrieve(id) => (Method::GET, Some(id), None),
        Call::Delete(id) => (Method::DELETE, Some(id), None),
        Call::InputItems(id) => (Method::GET, Some(id), Some("input_items")),
    };
    let uri = match (deployment.provider, id) {
        (Provider::OpenAi, None) => {
            let base = deployment.base(resolved)?;
            deployment.url(Target::Native("responses"), base, || "responses".into())?
        }
        _ => {
            let mut url = responses_base(deployment, resolved)?;
            {
                let mut segments = url.path_segments_mut().map_err(|()| bad_base(deployment))?;
                segments.extend(id).extend(suffix);
            }
            if let Some(query) = query.filter(|q| !q.is_empty()) {
                let own = url.query().map(str::to_owned);
                url.set_query(Some(&match own {
                    Some(own) => format!("{own}&{query}"),
                    None => query.to_owned(),
                }));
            }
            parse_url(url.as_str()).ok_or_else(|| bad_base(deployment))?
        }
    };
    let mut request = post_json(deployment, resolved, uri, body)?;
    if method != Method::POST {
        request.headers_mut().remove(http::header::CONTENT_TYPE);
    }
    *request.method_mut() = method;
    Ok(request)
}

/// `{base}/responses` of a deployment as a URL to add an id to (Azure: with its API version).
fn responses_base(deployment: &Deployment, resolved: &Resolved<'_>) -> Result<url::Url> {
    let text = match deployment.provider {
        Provider::Azure => {
            let base = resolved
                .api_base
                .ok_or_else(|| {
                    Error::Config(format!(
                        "deployment {} (azure) has no api_base",
                        deployment.id
                    ))
                })?
                .trim_end_matches('/');
            let version = resolved.api_version.unwrap_or(AZURE_RESPONSES_API_VERSION);
            // `preview` and `latest` are the versions of Azure's v1 API, under `/openai/v1`.
            let path = if matches!(version, "preview" | "latest") {
                "openai/v1/responses"
            } else {
                "openai/responses"
            };
            let mut url =
                url::Url::parse(&format!("{base}/{path}")).map_err(|_| bad_base(deployment))?;
            url.query_pairs_mut().append_pair("api-version", version);
            return Ok(url);
        }
        _ => format!("{}/responses", deployment.base(resolved)?),
    };
    url::Url::parse(&text).map_err(|_| bad_base(deployment))
}

/// Token counts of a Responses `usage` object (`input_tokens` include cached ones).
pub fn usage(usage: &Value) -> Usage {
    let count = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        prompt_tokens: count("input_tokens"),
        completion_tokens: count("output_tokens"),
    }
}

/// A chat `usage` as a Responses one.
fn responses_usage(chat: &Value) -> Value {
    let count = |v: &Value, path: &str| v.pointer(path).and_then(Value::as_u64).unwrap_or(0);
    let (input, output) = (
        count(chat, "/prompt_tokens"),
        count(chat, "/completion_tokens"),
    );
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": count(chat, "/prompt_tokens_details/cached_tokens")},
        "output_tokens": output,
        "output_tokens_details": {
            "reasoning_tokens": count(chat, "/completion_tokens_details/reasoning_tokens"),
        },
        "total_tokens": input + output,
    })
}

/// Request members a response object echoes.
const ECHOED: &[&str] = &[
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "user",
];

/// The members of `request` a response object echoes (not the input, which may be large).
pub fn echoed(request: &Map<String, Value>) -> Map<String, Value> {
    ECHOED
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), request.get(*name)?.clone())))
        .collect()
}

/// The response object around a translated answer, echoing what the request asked for as
/// OpenAI does; `output` and `usage` are filled by the caller. `store` and
/// `previous_response_id` are the request's as the caller set them (the gateway decides
/// whether it stores the response): `false` and `null` when absent.
fn response_object(
    request: &Map<String, Value>,
    id: &str,
    model: &str,
    created_at: u64,
    status: &str,
) -> Map<String, Value> {
    let echo = |name: &str, default: Value| {
        request
            .get(name)
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(default)
    };
    let mut object = Map::new();
    object.insert("id".into(), json!(id));
    object.insert("object".into(), json!("response"));
    object.insert("created_at".into(), json!(created_at));
    object.insert("status".into(), json!(status));
    object.insert("background".into(), json!(false));
    object.insert("error".into(), Value::Null);
    object.insert("incomplete_details".into(), Value::Null);
    object.insert("instructions".into(), echo("instructions", Value::Null));
    object.insert(
        "max_output_tokens".into(),
        echo("max_output_tokens", Value::Null),
    );
    object.insert("metadata".into(), echo("metadata", json!({})));
    object.insert("model".into(), json!(model));
    object.insert("output".into(), json!([]));
    object.insert(
        "parallel_tool_calls".into(),
        echo("parallel_tool_calls", json!(true)),
    );
    object.insert(
        "previous_response_id".into(),
        echo("previous_response_id", Value::Null),
    );
    object.insert(
        "reasoning".into(),
        echo("reasoning", json!({"effort": null, "summary": null})),
    );
    object.insert("store".into(), echo("store", json!(false)));
    object.insert("temperature".into(), echo("temperature", json!(1.0)));
    object.insert(
        "text".into(),
        echo("text", json!({"format": {"type": "text"}})),
    );
    object.insert("tool_choice".into(), echo("tool_choice", json!("auto")));
    object.insert("tools".into(), echo("tools", json!([])));
    object.insert("top_p".into(), echo("top_p", json!(1.0)));
    object.insert("truncation".into(), echo("truncation", json!("disabled")));
    object.insert("usage".into(), Value::Null);
    object.insert("user".into(), echo("user", Value::Null));
    object
}

/// How a translated response ends, from the chat `finish_reason`: its status and, when
/// incomplete, why.
fn ending(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// Names of the request's `custom` tools (free-form input), sent as function tools with one
/// `input` string; their calls go back as `custom_tool_call` items.
fn custom_tool_names(request: &Map<String, Value>) -> Vec<String> {
    request
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|tool| tool.get("type").and_then(Value::as_str) == Some("custom"))
        .filter_map(|tool| tool.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// An output item for one chat tool call: a `function_call`, or a `custom_tool_call` with the
/// `input` the model wrote.
fn call_item(call_id: &str, name: &str, arguments: &str, custom: bool, status: &str) -> Value {
    let id = item_id(if custom { "ctc" } else { "fc" }, call_id);
    if custom {
        let input = serde_json::from_str::<Value>(arguments)
            .ok()
            .and_then(|v| v.get("input").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| arguments.to_owned());
        return json!({"type": "custom_tool_call", "id": id, "call_id": call_id, "name": name,
            "input": input, "status": status});
    }
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
        "arguments": arguments, "status": status})
}

/// An output item id (`msg_…`, `fc_…`) made from an upstream id, letters and digits only.
fn item_id(prefix: &str, from: &str) -> String {
    let clean: String = from
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(48)
        .collect();
    format!("{prefix}_{clean}")
}
