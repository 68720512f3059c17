//! Provider adapters: how one OpenAI-shaped request becomes the request a provider expects,
//! and how its answer comes back. No routing, no secrets lookup: callers pass resolved values.

pub mod anthropic;
pub mod bedrock;
mod body;
mod chunks;
mod deployment;
mod errors;
pub mod gemini;
pub mod mock;
mod native;
pub mod ollama;
mod params;
mod proxy_params;
pub mod responses;
mod sse;
pub mod text_completion;
pub mod vertex;

pub use anthropic::TranslateOptions;
pub use body::ChatBody;
pub use deployment::{Deployment, DeploymentHeaders, Resolved, seconds_text};
pub use native::{Native, NativeRequest, native_request};
pub use proxy_params::{CLIENT_CREDENTIALS, is_proxy_param};
pub use sse::{TranslateStream, frame_data, frame_end};

use bytes::Bytes;
use deployment::{Target, bad_base};
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use vaultgate_config::Provider;
use vaultgate_core::{Error, Result};

const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// The OpenAI-compatible operations the gateway proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat/completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
        }
    }
}

/// An upstream request, ready to send.
pub type UpstreamRequest = http::Request<Bytes>;

/// Builds the upstream HTTP request for an OpenAI-shaped body.
/// `want_usage` asks a streaming upstream to append a usage chunk (for spend tracking).
pub fn build_request(
    deployment: &Deployment,
    resolved: &Resolved<'_>,
    endpoint: Endpoint,
    body: &ChatBody,
    want_usage: bool,
) -> Result<UpstreamRequest> {
    let include_usage = body.stream && want_usage && endpoint != Endpoint::Embeddings;
    if deployment.provider == Provider::VertexAi && endpoint == Endpoint::ChatCompletions {
        return vertex_openai_request(deployment, resolved, body, include_usage);
    }
    let upstream_body = body.upstream_body(&deployment.upstream_model, include_usage);
    let uri = match deployment.provider {
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
            let version = resolved.api_version.unwrap_or(AZURE_DEFAULT_API_VERSION);
            let parse = || {
                let url = url::Url::parse_with_params(
                    &format!(
                        "{base}/openai/deployments/{}/{}",
                        deployment.upstream_model,
                        endpoint.path()
                    ),
                    [("api-version", version)],
                )
                .ok()?;
                deployment::parse_url(url.as_str())
            };
            deployment
                .urls
                .get(Target::OpenAi(endpoint), base, Some(version), parse)
                .ok_or_else(|| bad_base(deployment))?
        }
        Provider::OpenAi | Provider::TextCompletionOpenAi => {
            let base = deployment.base(resolved)?;
            deployment.url(Target::OpenAi(endpoint), base, || {
                endpoint.path().to_owned()
            })?
        }
        other => {
            return Err(Error::bad_request(format!(
                "model {} ({}) does not support /{}",
                deployment.model_name,
                other.as_str(),
                endpoint.path()
            )));
        }
    };
    post_json(deployment, resolved, uri, Bytes::from(upstream_body))
}

/// A chat request to a Vertex partner model that speaks OpenAI's API (Mistral, AI21, Model
/// Garden's MaaS models), with the deployment's OAuth token. Mistral and AI21 stream their usage
/// in the last chunk unasked, and might refuse `stream_options`.
fn vertex_openai_request(
    deployment: &Deployment,
    resolved: &Resolved<'_>,
    body: &ChatBody,
    include_usage: bool,
) -> Result<UpstreamRequest> {
    let partner = vertex::Partner::of(&deployment.upstream_model);
    let include_usage = include_usage && partner == vertex::Partner::OpenApi;
    let model = partner.body_model(&deployment.upstream_model);
    let upstream_body = body.upstream_body(model, include_usage);
    let uri = vertex::url(
        deployment,
        resolved,
        vertex::openai_method(partner, body.stream),
    )?;
    post_json(deployment, resolved, uri, Bytes::from(upstream_body))
}

/// A JSON POST with the deployment's credentials: `api-key` for Azure, `x-goog-api-key` for
/// Gemini, else a Bearer key (and `openai-organization`), then the deployment's
/// `extra_headers`.
pub(crate) fn post_json(
    deployment: &Deployment,
    resolved: &Resolved<'_>,
    uri: http::Uri,
    body: Bytes,
) -> Result<UpstreamRequest> {
    let mut request = http::Request::post(uri)
        .body(body)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    match deployment.provider {
        Provider::Azure => {
            if let Some(key) = resolved.api_key {
                headers.insert("api-key", secret_header(deployment, key)?);
            }
        }
        Provider::Gemini => {
            if let Some(key) = resolved.api_key {
                headers.insert("x-goog-api-key", secret_header(deployment, key)?);
            }
        }
        _ => {
            if let Some(key) = resolved.api_key {
                let mut bearer = String::with_capacity(7 + key.len());
                bearer.push_str("Bearer ");
                bearer.push_str(key);
                let value = secret_header(deployment, &bearer)?;
                headers.insert(http::header::AUTHORIZATION, value);
            }
            if let Some(organization) = resolved.organization {
                let value = HeaderValue::from_str(organization)
                    .map_err(|_| header_error(deployment, "organization"))?;
                headers.insert("openai-organization", value);
            }
        }
    }
    for (name, value) in &resolved.extra_headers {
        let value =
            HeaderValue::from_str(value).map_err(|_| header_error(deployment, name.as_str()))?;
        headers.append((*name).clone(), value);
    }
    Ok(request)
}

/// A credential as a header value, marked sensitive (never printed by `Debug`).
fn secret_header(deployment: &Deployment, value: &str) -> Result<HeaderValue> {
    let mut value =
        HeaderValue::from_str(value).map_err(|_| header_error(deployment, "the api key"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn header_error(deployment: &Deployment, what: &str) -> Error {
    Error::Config(format!(
        "deployment {}: {what} has characters not allowed in an HTTP header",
        deployment.id
    ))
}

/// POST `{api_base}/v1/messages` with the deployment's key as `x-api-key` and `anthropic-version`
/// (from the deployment's `extra_headers`, else the client's, else the default); the client's
/// other protocol headers unless the deployment sets them.
pub fn build_anthropic_request(
    deployment: &Deployment,
    resolved: &Resolved<'_>,
    body: Bytes,
    client_headers: &[(HeaderName, HeaderValue)],
) -> Result<UpstreamRequest> {
    let configured_version = resolved
        .extra_headers
        .iter()
        .find(|(name, _)| name.as_str() == "anthropic-version")
        .map(|(_, value)| *value);
    let client_version = client_headers
        .iter()
        .find(|(name, _)| name.as_str() == "anthropic-version")
        .and_then(|(_, value)| value.to_str().ok());
    let mut headers =
        anthropic::upstream_headers(resolved.api_key, configured_version.or(client_version))?;
    for (name, value) in client_headers {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    for (name, value) in &resolved.extra_headers {
        if name.as_str() == "anthropic-version" {
            continue;
        }
        let value =
            HeaderValue::from_str(value).map_err(|_| header_error(deployment, name.as_str()))?;
        headers.insert((*name).clone(), value);
    }
    let mut request = http::Request::post(anthropic_messages_url(deployment, resolved)?)
        .body(body)
        .map_err(|e| Error::Internal(e.to_string()))?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The deployment's Anthropic Messages URL (`{api_base}/v1/messages`), parsed once like the
/// OpenAI ones.
fn anthropic_messages_url(deployment: &Deployment, resolved: &Resolved<'_>) -> Result<http::Uri> {
    let base = deployment.base(resolved)?;
    deployment
        .urls
        .get(Target::AnthropicMessages, base, None, || {
            deployment::parse_url(&anthropic::messages_url(base))
        })
        .ok_or_else(|| bad_base(deployment))
}

/// Token counts reported by an upstream (`usage` of an OpenAI-shaped answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    /// Reads `usage` from an OpenAI-shaped JSON object, if present.
    pub fn from_json(value: &Value) -> Option<Self> {
        let usage = value.get("usage")?;
        let count = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
        Some(Self {
            prompt_tokens: count("prompt_tokens"),
            completion_tokens: count("completion_tokens"),
        })
    }

    pub fn total(self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// An OpenAI assistant message; `content` is null for a pure tool call, as OpenAI sends it.
pub(crate) fn openai_assistant_message(text: String, tool_calls: Vec<Value>) -> Map<String, Value> {
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    message.insert("content".into(), content);
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    message
}

/// Seconds since the epoch for `created`; a clock before 1970 reads as 0 rather than failing.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Bytes of a whole SSE frame `data: …\n\n`.
pub fn sse_frame(payload: &str) -> Bytes {
    Bytes::from(format!("data: {payload}\n\n"))
}

#[cfg(test)]
mod tests;
