//! Provider adapters: how one OpenAI-shaped request becomes the request a provider expects,
//! and how its answer comes back. No routing, no secrets lookup: callers pass resolved values.

pub mod anthropic;
mod body;
pub mod mock;

pub use body::ChatBody;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde_json::Value;
use vaultgate_config::{ConfigValue, ModelEntry, ModelInfo, Provider, parse_model};
use vaultgate_core::{Error, Result};

const OPENAI_DEFAULT_BASE: &str = "https://api.openai.com/v1";
const ANTHROPIC_DEFAULT_BASE: &str = "https://api.anthropic.com";
const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";
/// LiteLLM's default whole-request timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

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

/// One entry of `model_list`: where and how to call one upstream model.
#[derive(Debug)]
pub struct Deployment {
    /// `model_info.id`, else `<model_name>-<index>`; reported in `x-vaultgate-model-id`.
    pub id: String,
    /// The public name clients ask for.
    pub model_name: String,
    pub provider: Provider,
    /// The name the upstream expects (after the provider prefix).
    pub upstream_model: String,
    pub api_base: Option<ConfigValue>,
    pub api_key: Option<ConfigValue>,
    pub api_version: Option<ConfigValue>,
    pub organization: Option<ConfigValue>,
    pub extra_headers: Vec<(HeaderName, ConfigValue)>,
    pub timeout: Duration,
    pub stream_timeout: Option<Duration>,
    pub max_retries: Option<u32>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub weight: Option<f64>,
    pub max_tokens: Option<u64>,
    pub mock_response: Option<String>,
    /// `mock_timeout: true`: every call waits out `timeout` and fails as timed out.
    pub mock_timeout: bool,
    pub model_info: ModelInfo,
    /// Answer headers naming this deployment, built once.
    pub headers: DeploymentHeaders,
    /// Upstream URLs already parsed, so requests skip URL parsing (and IDNA).
    urls: UrlCache,
}

/// Values of the answer headers that name a deployment (`x-litellm-model-id`,
/// `x-litellm-model-group`, `x-litellm-timeout`), built at start so no request formats them.
#[derive(Debug, Clone)]
pub struct DeploymentHeaders {
    pub id: Option<HeaderValue>,
    pub group: Option<HeaderValue>,
    pub timeout: HeaderValue,
}

impl DeploymentHeaders {
    fn new(id: &str, group: &str, timeout: Duration) -> Self {
        Self {
            id: HeaderValue::from_str(id).ok(),
            group: HeaderValue::from_str(group).ok(),
            timeout: HeaderValue::from_str(&seconds_text(timeout))
                .unwrap_or(HeaderValue::from_static("0")),
        }
    }
}

/// Seconds as LiteLLM prints them: `600` for whole seconds, else `0.5`.
pub fn seconds_text(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        duration.as_secs().to_string()
    } else {
        duration.as_secs_f64().to_string()
    }
}

impl Deployment {
    /// Builds a deployment from its config entry; `default_timeout` is the router/LiteLLM default.
    pub fn from_config(
        index: usize,
        entry: &ModelEntry,
        default_timeout: Option<f64>,
        default_stream_timeout: Option<f64>,
    ) -> Result<Self> {
        let params = &entry.litellm_params;
        let (provider, upstream_model) = parse_model(&params.model).map_err(Error::Config)?;
        let extra_headers = params
            .extra_headers
            .iter()
            .map(|(name, value)| {
                HeaderName::try_from(name.as_str())
                    .map(|header| (header, value.clone()))
                    .map_err(|_| {
                        Error::Config(format!(
                            "model_list[{index}].litellm_params.extra_headers: '{name}' is not a valid header name"
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let seconds = |value: Option<f64>| value.map(Duration::from_secs_f64);
        let id = entry
            .model_info
            .id
            .clone()
            .unwrap_or_else(|| format!("{}-{index}", entry.model_name));
        let timeout = seconds(params.timeout.or(default_timeout)).unwrap_or(DEFAULT_TIMEOUT);
        Ok(Self {
            headers: DeploymentHeaders::new(&id, &entry.model_name, timeout),
            id,
            model_name: entry.model_name.clone(),
            provider,
            upstream_model,
            api_base: params.api_base.clone(),
            api_key: params.api_key.clone(),
            api_version: params.api_version.clone(),
            organization: params.organization.clone(),
            extra_headers,
            timeout,
            stream_timeout: seconds(params.stream_timeout.or(default_stream_timeout)),
            max_retries: params.num_retries.or(params.max_retries),
            rpm: params.rpm,
            tpm: params.tpm,
            weight: params.weight,
            max_tokens: params.max_tokens,
            mock_response: params.mock_response.clone(),
            mock_timeout: params.mock_timeout.unwrap_or(false),
            model_info: entry.model_info.clone(),
            urls: UrlCache::default(),
        })
    }

    /// The secret references whose values this deployment sends upstream.
    pub fn api_key_reference(&self) -> Option<&str> {
        self.api_key.as_ref().and_then(ConfigValue::reference)
    }
}

/// Upstream URLs of one deployment parsed once each. The base (and Azure's API version) may come
/// from a secret that changes on refresh, so an entry remembers what it was built from.
#[derive(Debug, Default)]
struct UrlCache(std::sync::RwLock<Vec<CachedUrl>>);

#[derive(Debug)]
struct CachedUrl {
    target: Target,
    base: String,
    version: Option<String>,
    url: http::Uri,
}

/// What an upstream URL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    OpenAi(Endpoint),
    AnthropicMessages,
}

impl UrlCache {
    /// The URL for `target` on `base`: cached, else from `parse` (and cached, replacing any
    /// entry of the target built from another base). `None` when `parse` fails.
    fn get(
        &self,
        target: Target,
        base: &str,
        version: Option<&str>,
        parse: impl FnOnce() -> Option<http::Uri>,
    ) -> Option<http::Uri> {
        let matches = |entry: &CachedUrl| {
            entry.target == target && entry.base == base && entry.version.as_deref() == version
        };
        if let Ok(entries) = self.0.read()
            && let Some(entry) = entries.iter().find(|e| matches(e))
        {
            return Some(entry.url.clone());
        }
        let url = parse()?;
        if let Ok(mut entries) = self.0.write() {
            entries.retain(|entry| entry.target != target);
            entries.push(CachedUrl {
                target,
                base: base.to_owned(),
                version: version.map(str::to_owned),
                url: url.clone(),
            });
        }
        Some(url)
    }
}

/// Values of a deployment's settings resolved for one request (from the live secrets snapshot).
#[derive(Default)]
pub struct Resolved<'a> {
    pub api_base: Option<&'a str>,
    pub api_key: Option<&'a str>,
    pub api_version: Option<&'a str>,
    pub organization: Option<&'a str>,
    pub extra_headers: Vec<(&'a HeaderName, &'a str)>,
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
    let upstream_body = body.upstream_body(&deployment.upstream_model, include_usage);
    let mut request = http::Request::post(match deployment.provider {
        Provider::OpenAi => {
            let base = resolved
                .api_base
                .unwrap_or(OPENAI_DEFAULT_BASE)
                .trim_end_matches('/');
            deployment
                .urls
                .get(Target::OpenAi(endpoint), base, None, || {
                    parse_url(&format!("{base}/{}", endpoint.path()))
                })
                .ok_or_else(|| bad_base(deployment))?
        }
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
                parse_url(url.as_str())
            };
            deployment
                .urls
                .get(Target::OpenAi(endpoint), base, Some(version), parse)
                .ok_or_else(|| bad_base(deployment))?
        }
        Provider::Anthropic => {
            return Err(Error::bad_request(format!(
                "model {} (anthropic) does not support /{}",
                deployment.model_name,
                endpoint.path()
            )));
        }
    })
    .body(Bytes::from(upstream_body))
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

/// An absolute http(s) URL, normalised (IDNA, percent-encoding) by `url` first.
fn parse_url(text: &str) -> Option<http::Uri> {
    let url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return None;
    }
    http::Uri::try_from(url.as_str()).ok()
}

fn bad_base(deployment: &Deployment) -> Error {
    Error::Config(format!(
        "deployment {}: api_base is not an http(s) URL",
        deployment.id
    ))
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
    let base = resolved.api_base.unwrap_or(ANTHROPIC_DEFAULT_BASE);
    deployment
        .urls
        .get(Target::AnthropicMessages, base, None, || {
            parse_url(&anthropic::messages_url(base))
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

/// Bytes of a whole SSE frame `data: …\n\n`.
pub fn sse_frame(payload: &str) -> Bytes {
    Bytes::from(format!("data: {payload}\n\n"))
}

#[cfg(test)]
mod tests;
