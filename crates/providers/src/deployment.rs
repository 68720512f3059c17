//! One entry of `model_list` as the gateway calls it, and the per-request view of its settings.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use vaultgate_config::{
    ConfigValue, ModelEntry, ModelInfo, Provider, ProviderSpec, VertexParams, deployment_id,
    parse_model_spec,
};
use vaultgate_core::{Error, Result};

use crate::{Endpoint, bedrock};

/// LiteLLM's default whole-request timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// One entry of `model_list`: where and how to call one upstream model.
#[derive(Debug)]
pub struct Deployment {
    /// `model_info.id`, else `<model_name>-<index>`; reported in `x-vaultgate-model-id`.
    pub id: String,
    /// The public name clients ask for.
    pub model_name: String,
    pub provider: Provider,
    /// The provider prefix's defaults (base URL, the secret names of its key and base).
    pub spec: &'static ProviderSpec,
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
    /// `litellm_params.drop_params`: replaces the global setting.
    pub drop_params: Option<bool>,
    /// `litellm_params.additional_drop_params`: removed from every request body.
    pub additional_drop_params: Vec<String>,
    /// `region_name`, lower case (`eu`, `us`): what an end user's `allowed_model_region` is
    /// compared with.
    pub region: Option<String>,
    pub model_info: ModelInfo,
    /// Answer headers naming this deployment, built once.
    pub headers: DeploymentHeaders,
    /// AWS settings and credentials of a Bedrock deployment.
    pub bedrock: Option<Box<bedrock::BedrockSettings>>,
    /// Project, location and credentials of a Vertex AI deployment.
    pub vertex: Option<Box<VertexParams>>,
    /// Upstream URLs already parsed, so requests skip URL parsing (and IDNA).
    pub(crate) urls: UrlCache,
    /// `x-litellm-model-api-base` of the base last answered from (see
    /// [`Deployment::api_base_header`]).
    base_header: std::sync::RwLock<Option<(Box<str>, Option<HeaderValue>)>>,
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
        let (spec, upstream_model) = parse_model_spec(&params.model).map_err(Error::Config)?;
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
        // A number of seconds as written, or the router's default; one past `Duration`'s range
        // (1e20) or negative is refused here, where a deployment added at run time comes too.
        let seconds = |name: &str, value: Option<f64>| -> Result<Option<Duration>> {
            value
                .map(|seconds| {
                    Duration::try_from_secs_f64(seconds).map_err(|_| {
                        Error::Config(format!(
                            "model_list[{index}] ({}): {name} must be a non-negative number of seconds, not {seconds}",
                            entry.model_name
                        ))
                    })
                })
                .transpose()
        };
        let id = deployment_id(index, entry);
        let timeout =
            seconds("timeout", params.timeout.or(default_timeout))?.unwrap_or(DEFAULT_TIMEOUT);
        let stream_timeout = seconds(
            "stream_timeout",
            params.stream_timeout.or(default_stream_timeout),
        )?;
        let bedrock = (spec.provider == Provider::Bedrock)
            .then(|| Box::new(bedrock::BedrockSettings::new(params.aws.clone())));
        Ok(Self {
            headers: DeploymentHeaders::new(&id, &entry.model_name, timeout),
            id,
            model_name: entry.model_name.clone(),
            provider: spec.provider,
            spec,
            upstream_model,
            api_base: params.api_base.clone(),
            api_key: params.api_key.clone(),
            api_version: params.api_version.clone(),
            organization: params.organization.clone(),
            extra_headers,
            timeout,
            stream_timeout,
            max_retries: params.num_retries.or(params.max_retries),
            rpm: params.rpm,
            tpm: params.tpm,
            weight: params.weight,
            max_tokens: params.max_tokens,
            mock_response: params.mock_response.clone(),
            mock_timeout: params.mock_timeout.unwrap_or(false),
            drop_params: params.drop_params,
            additional_drop_params: params.additional_drop_params.clone(),
            region: params
                .region_name
                .as_deref()
                .map(|r| r.trim().to_ascii_lowercase())
                .filter(|r| !r.is_empty()),
            model_info: entry.model_info.clone(),
            bedrock,
            vertex: (spec.provider == Provider::VertexAi).then(|| Box::new(params.vertex.clone())),
            urls: UrlCache::default(),
            base_header: Default::default(),
        })
    }

    /// The secret reference whose value is sent upstream as the key: the deployment's own
    /// `api_key` reference, else the first of the provider's key names that has a value
    /// (`has_value` asks the live secrets).
    pub fn api_key_reference(&self, has_value: impl Fn(&str) -> bool) -> Option<&str> {
        match &self.api_key {
            Some(value) => value.reference(),
            None => self
                .spec
                .key_env
                .iter()
                .copied()
                .find(|name| has_value(name)),
        }
    }

    /// The configured values that authenticate this deployment upstream (its key, its AWS
    /// keys, or its Vertex credentials), for re-reading them when the upstream refuses them.
    pub fn credential_values(&self) -> impl Iterator<Item = &ConfigValue> {
        let aws = self.bedrock.as_deref().map(|b| &b.aws);
        let vertex = self
            .vertex
            .as_deref()
            .and_then(|v| v.vertex_credentials.as_ref());
        self.api_key.iter().chain(vertex).chain(
            aws.into_iter()
                .flat_map(|aws| {
                    [
                        &aws.aws_access_key_id,
                        &aws.aws_secret_access_key,
                        &aws.aws_session_token,
                    ]
                })
                .flatten(),
        )
    }

    /// Why this deployment cannot be called with these resolved values, if it cannot: a
    /// provider without a default base needs an `api_base` (or one of its base variables).
    pub fn missing_setting(&self, resolved: &Resolved<'_>) -> Option<String> {
        // Without `vertex_credentials`, application default credentials serve (found at start,
        // their absence a readiness problem); a set reference must resolve.
        if let Some(vertex) = self.vertex.as_deref()
            && self.mock_response.is_none()
        {
            return (vertex.vertex_credentials.is_some() && resolved.vertex.credentials.is_none())
                .then(|| {
                    format!(
                        "deployment {} (vertex_ai/): vertex_credentials has no value: set it (a \
                         service-account key, gcloud's user credentials, a path to either, or an \
                         access token), or leave it out for application default credentials",
                        self.id
                    )
                });
        }
        if self.mock_response.is_some()
            || resolved.api_base.is_some()
            || self.spec.default_base.is_some()
            || self.bedrock.is_some()
        {
            return None;
        }
        let mut names = vec!["litellm_params.api_base".to_owned()];
        names.extend(self.spec.base_env.iter().map(|n| format!("os.environ/{n}")));
        Some(format!(
            "deployment {} ({}/) has no api_base: set {}",
            self.id,
            self.spec.prefix,
            names.join(" or ")
        ))
    }

    /// The value of `x-litellm-model-api-base` for `base` (the resolved `api_base`, else the
    /// provider's default): the URL without user name, password, query and fragment, where
    /// credentials could hide. Built once per base (a base from a secret may change).
    pub fn api_base_header(&self, base: &str) -> Option<HeaderValue> {
        if let Ok(cached) = self.base_header.read()
            && let Some((seen, value)) = cached.as_ref()
            && **seen == *base
        {
            return value.clone();
        }
        let value = public_base(base).and_then(|text| HeaderValue::from_str(&text).ok());
        if let Ok(mut cached) = self.base_header.write() {
            *cached = Some((base.into(), value.clone()));
        }
        value
    }

    /// The base URL of a request: the resolved `api_base`, else the provider's default.
    pub(crate) fn base<'a>(&self, resolved: &Resolved<'a>) -> Result<&'a str> {
        resolved
            .api_base
            .or(self.spec.default_base)
            .map(|base| base.trim_end_matches('/'))
            .ok_or_else(|| {
                Error::Config(
                    self.missing_setting(resolved)
                        .unwrap_or_else(|| format!("deployment {} has no api_base", self.id)),
                )
            })
    }

    /// `{base}/{path}`, parsed once per base (`/v1` added first where the API needs it);
    /// `path` is only built when the URL is not cached yet.
    pub(crate) fn url(
        &self,
        target: Target,
        base: &str,
        path: impl FnOnce() -> String,
    ) -> Result<http::Uri> {
        self.urls
            .get(target, base, None, || {
                let v1 = if self.spec.base_ends_in_v1 && !base.ends_with("/v1") {
                    "/v1"
                } else {
                    ""
                };
                parse_url(&format!("{base}{v1}/{}", path()))
            })
            .ok_or_else(|| bad_base(self))
    }
}

/// Upstream URLs of one deployment parsed once each. The base (and Azure's API version) may come
/// from a secret that changes on refresh, so an entry remembers what it was built from.
#[derive(Debug, Default)]
pub(crate) struct UrlCache(std::sync::RwLock<Vec<CachedUrl>>);

#[derive(Debug)]
pub(crate) struct CachedUrl {
    target: Target,
    base: String,
    version: Option<String>,
    url: http::Uri,
}

/// What an upstream URL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    OpenAi(Endpoint),
    AnthropicMessages,
    /// A native API's route (`api/chat`, Gemini's `generate`…).
    Native(&'static str),
    /// Bedrock's Converse (or ConverseStream) for the deployment's model.
    Bedrock {
        stream: bool,
    },
}

impl UrlCache {
    /// The URL for `target` on `base`: cached, else from `parse` (and cached, replacing any
    /// entry of the target built from another base). `None` when `parse` fails.
    pub(crate) fn get(
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
    /// Bedrock's region, endpoint and keys (empty for other providers).
    pub aws: bedrock::ResolvedAws<'a>,
    /// Vertex AI's project, location and credentials (empty for other providers); the access
    /// token goes in `api_key`.
    pub vertex: crate::vertex::ResolvedVertex<'a>,
}

/// `base` without what may carry credentials (user info, query, fragment); `None` when it is
/// no http(s) URL.
fn public_base(base: &str) -> Option<String> {
    let mut url = url::Url::parse(base.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return None;
    }
    url.set_username("").ok()?;
    url.set_password(None).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    Some(url.as_str().trim_end_matches('/').to_owned())
}

/// An absolute http(s) URL, normalised (IDNA, percent-encoding) by `url` first.
pub(crate) fn parse_url(text: &str) -> Option<http::Uri> {
    let url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return None;
    }
    http::Uri::try_from(url.as_str()).ok()
}

pub(crate) fn bad_base(deployment: &Deployment) -> Error {
    Error::Config(format!(
        "deployment {}: api_base is not an http(s) URL",
        deployment.id
    ))
}
