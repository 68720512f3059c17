//! Provider adapters: how one OpenAI-shaped request becomes the request a provider expects,
//! and how its answer comes back. No routing, no secrets lookup: callers pass resolved values.

pub mod anthropic;
pub mod mock;

use std::time::Duration;

use bytes::Bytes;
use http::HeaderName;
use serde_json::{Map, Value};
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
    pub model_info: ModelInfo,
    /// Upstream URLs already parsed, so requests skip URL parsing (and IDNA).
    urls: UrlCache,
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
        Ok(Self {
            id: entry
                .model_info
                .id
                .clone()
                .unwrap_or_else(|| format!("{}-{index}", entry.model_name)),
            model_name: entry.model_name.clone(),
            provider,
            upstream_model,
            api_base: params.api_base.clone(),
            api_key: params.api_key.clone(),
            api_version: params.api_version.clone(),
            organization: params.organization.clone(),
            extra_headers,
            timeout: seconds(params.timeout.or(default_timeout)).unwrap_or(DEFAULT_TIMEOUT),
            stream_timeout: seconds(params.stream_timeout.or(default_stream_timeout)),
            max_retries: params.max_retries,
            rpm: params.rpm,
            tpm: params.tpm,
            weight: params.weight,
            max_tokens: params.max_tokens,
            mock_response: params.mock_response.clone(),
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
    endpoint: Endpoint,
    base: String,
    version: Option<String>,
    url: reqwest::Url,
}

impl UrlCache {
    /// The URL for `endpoint` on `base`: cached, else from `parse` (and cached, replacing any
    /// entry of the endpoint built from another base). `None` when `parse` fails.
    fn get(
        &self,
        endpoint: Endpoint,
        base: &str,
        version: Option<&str>,
        parse: impl FnOnce() -> Option<reqwest::Url>,
    ) -> Option<reqwest::Url> {
        let matches = |entry: &CachedUrl| {
            entry.endpoint == endpoint && entry.base == base && entry.version.as_deref() == version
        };
        if let Ok(entries) = self.0.read()
            && let Some(entry) = entries.iter().find(|e| matches(e))
        {
            return Some(entry.url.clone());
        }
        let url = parse()?;
        if let Ok(mut entries) = self.0.write() {
            entries.retain(|entry| entry.endpoint != endpoint);
            entries.push(CachedUrl {
                endpoint,
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

/// The request body with the fields the gateway needs read up front.
pub struct ChatBody {
    pub fields: Map<String, Value>,
    pub model: String,
    pub stream: bool,
}

impl ChatBody {
    /// Parses a client body: a JSON object with a string `model`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::bad_request(format!("request body is not valid JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(Error::bad_request("request body must be a JSON object"));
        };
        let model = match fields.get("model") {
            Some(Value::String(model)) if !model.is_empty() => model.clone(),
            Some(_) => {
                return Err(Error::bad_param(
                    "model",
                    "`model` must be a non-empty string",
                ));
            }
            None => {
                return Err(Error::bad_param(
                    "model",
                    "missing required parameter `model`",
                ));
            }
        };
        let stream = fields
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Self {
            fields,
            model,
            stream,
        })
    }
}

/// Builds the upstream HTTP request for an OpenAI-shaped body.
/// `want_usage` asks a streaming upstream to append a usage chunk (for spend tracking).
pub fn build_request(
    client: &reqwest::Client,
    deployment: &Deployment,
    resolved: &Resolved<'_>,
    endpoint: Endpoint,
    body: &ChatBody,
    want_usage: bool,
) -> Result<reqwest::RequestBuilder> {
    let include_usage = body.stream && want_usage && endpoint != Endpoint::Embeddings;
    let upstream_body = upstream_body(&body.fields, &deployment.upstream_model, include_usage)?;
    let request = match deployment.provider {
        Provider::OpenAi => {
            let base = resolved
                .api_base
                .unwrap_or(OPENAI_DEFAULT_BASE)
                .trim_end_matches('/');
            let mut request = match deployment.urls.get(endpoint, base, None, || {
                reqwest::Url::parse(&format!("{base}/{}", endpoint.path())).ok()
            }) {
                Some(url) => client.post(url),
                // Not a URL: reqwest reports it when the request is sent, as before.
                None => client.post(format!("{base}/{}", endpoint.path())),
            };
            if let Some(key) = resolved.api_key {
                request = request.bearer_auth(key);
            }
            if let Some(organization) = resolved.organization {
                request = request.header("OpenAI-Organization", organization);
            }
            request
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
                reqwest::Url::parse_with_params(
                    &format!(
                        "{base}/openai/deployments/{}/{}",
                        deployment.upstream_model,
                        endpoint.path()
                    ),
                    [("api-version", version)],
                )
            };
            let url = match deployment
                .urls
                .get(endpoint, base, Some(version), || parse().ok())
            {
                Some(url) => url,
                None => parse().map_err(|e| {
                    Error::Config(format!("deployment {}: bad api_base: {e}", deployment.id))
                })?,
            };
            // Azure takes the deployment from the URL; the body's model is ignored but harmless.
            let mut request = client.post(url);
            if let Some(key) = resolved.api_key {
                request = request.header("api-key", key);
            }
            request
        }
        Provider::Anthropic => {
            return Err(Error::bad_request(format!(
                "model {} (anthropic) does not support /{}",
                deployment.model_name,
                endpoint.path()
            )));
        }
    };
    let mut request = request
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(upstream_body);
    for (name, value) in &resolved.extra_headers {
        request = request.header(*name, *value);
    }
    Ok(request)
}

/// The client's body as the upstream gets it: `model` replaced by the upstream's name and, when
/// `include_usage`, `stream_options.include_usage` set to `true` (an existing non-object
/// `stream_options` is left alone). Written straight from the parsed fields, without copying
/// them; byte for byte what inserting into a copy of the map and serialising it would give.
pub fn upstream_body(
    fields: &Map<String, Value>,
    model: &str,
    include_usage: bool,
) -> Result<Vec<u8>> {
    let options = match fields.get("stream_options") {
        None => Some(None),
        Some(Value::Object(options)) => Some(Some(options)),
        Some(_) => None,
    };
    let usage_patch;
    let patches: &[(&str, Patch<'_>)] = match options {
        Some(options) if include_usage => {
            usage_patch = [
                ("model", Patch::Str(model)),
                ("stream_options", Patch::IncludeUsage(options)),
            ];
            &usage_patch
        }
        _ => &[("model", Patch::Str(model))],
    };
    let mut out = Vec::with_capacity(512);
    serde_json::to_writer(
        &mut out,
        &Patched {
            map: Some(fields),
            patches,
        },
    )
    .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(out)
}

/// A value put into a map by [`Patched`].
enum Patch<'a> {
    Str(&'a str),
    /// `stream_options` (the client's object, if any) with `include_usage: true`.
    IncludeUsage(Option<&'a Map<String, Value>>),
    True,
}

impl serde::Serialize for Patch<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Str(text) => serializer.serialize_str(text),
            Self::IncludeUsage(options) => Patched {
                map: *options,
                patches: &[("include_usage", Patch::True)],
            }
            .serialize(serializer),
            Self::True => serializer.serialize_bool(true),
        }
    }
}

/// `map` with the `patches` (sorted by key) inserted or replacing, in the map's (sorted) key
/// order, as `Map::insert` into a copy would have placed them.
struct Patched<'a> {
    map: Option<&'a Map<String, Value>>,
    patches: &'a [(&'a str, Patch<'a>)],
}

impl serde::Serialize for Patched<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut out = serializer.serialize_map(None)?;
        let mut patches = self.patches.iter().peekable();
        for (key, value) in self.map.into_iter().flatten() {
            while let Some((name, patch)) = patches.next_if(|(name, _)| *name <= key.as_str()) {
                out.serialize_entry(name, patch)?;
                if *name == key.as_str() {
                    break;
                }
            }
            if !self.patches.iter().any(|(name, _)| *name == key.as_str()) {
                out.serialize_entry(key, value)?;
            }
        }
        for (name, patch) in patches {
            out.serialize_entry(name, patch)?;
        }
        out.end()
    }
}

/// The default Anthropic base URL, for the Anthropic adapter.
pub fn anthropic_base<'a>(resolved: &Resolved<'a>) -> &'a str {
    resolved.api_base.unwrap_or(ANTHROPIC_DEFAULT_BASE)
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
