//! The LiteLLM proxy `config.yaml`, parsed into typed settings with clear errors.
//!
//! Any string value of the form `os.environ/NAME` is a [`ConfigValue::Reference`]: a secret
//! reference resolved later through the `SecretSource` seam (environment or Vault), never here.

mod cloud;
pub mod known;
mod model;
mod target;
mod unknown;
mod value;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use vaultgate_core::{Error, Result};

pub use cloud::{AwsParams, VertexParams};
pub use model::{PROVIDERS, Provider, ProviderSpec, parse_model, parse_model_spec, provider_spec};
pub use target::{ModelTarget, model_target};
pub use unknown::IgnoredSetting;
pub use value::{ConfigValue, VaultRef};

/// The whole config file. A key that is neither vaultgate's nor LiteLLM's is an error; LiteLLM's
/// settings that vaultgate does not implement are listed in [`Config::ignored`].
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    pub model_list: Vec<ModelEntry>,
    pub litellm_settings: LitellmSettings,
    pub router_settings: RouterSettings,
    pub general_settings: GeneralSettings,
    /// Values visible to secret references as if they were in the process environment.
    pub environment_variables: BTreeMap<String, ConfigValue>,
    /// LiteLLM settings in the file that vaultgate accepts but does not act on, with their line.
    #[serde(skip)]
    pub ignored: Vec<IgnoredSetting>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ModelEntry {
    pub model_name: String,
    pub litellm_params: LitellmParams,
    #[serde(default)]
    pub model_info: ModelInfo,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LitellmParams {
    /// `provider/name`, e.g. `azure/my-deployment`.
    pub model: String,
    #[serde(default)]
    pub api_base: Option<ConfigValue>,
    #[serde(default)]
    pub api_key: Option<ConfigValue>,
    #[serde(default)]
    pub api_version: Option<ConfigValue>,
    #[serde(default)]
    pub organization: Option<ConfigValue>,
    /// Whole-request timeout in seconds.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Time to the first chunk of a stream, in seconds.
    #[serde(default)]
    pub stream_timeout: Option<f64>,
    #[serde(default)]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub rpm: Option<u64>,
    #[serde(default)]
    pub tpm: Option<u64>,
    #[serde(default)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub extra_headers: BTreeMap<String, ConfigValue>,
    /// Answer with this text without calling the upstream.
    #[serde(default)]
    pub mock_response: Option<String>,
    /// Default `max_tokens` for providers that require one (Anthropic).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Retries of this deployment's group when neither `router_settings` nor
    /// `litellm_settings` set `num_retries` (LiteLLM's per-deployment setting).
    #[serde(default)]
    pub num_retries: Option<u32>,
    /// Every call waits out the timeout and fails as timed out, without calling the upstream
    /// (LiteLLM's way to test timeouts and fallbacks).
    #[serde(default)]
    pub mock_timeout: Option<bool>,
    /// Replaces `litellm_settings.drop_params` for this deployment.
    #[serde(default)]
    pub drop_params: Option<bool>,
    /// Params removed from every request before it goes to this deployment.
    #[serde(default)]
    pub additional_drop_params: Vec<String>,
    /// Where the deployment serves (`eu`, `us`): end users with an `allowed_model_region` are
    /// routed only to deployments of that region (LiteLLM's region-based routing).
    #[serde(default)]
    pub region_name: Option<String>,
    /// Amazon Bedrock's settings (LiteLLM's names), flattened into `litellm_params`.
    #[serde(flatten)]
    pub aws: AwsParams,
    /// Google Vertex AI's settings (LiteLLM's names), flattened into `litellm_params`.
    #[serde(flatten)]
    pub vertex: VertexParams,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ModelInfo {
    pub id: Option<String>,
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    pub max_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    pub mode: Option<String>,
    pub base_model: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct LitellmSettings {
    pub num_retries: Option<u32>,
    /// Default whole-request timeout in seconds.
    pub request_timeout: Option<f64>,
    pub drop_params: bool,
    /// `false` opens `/metrics` to anyone; by default it takes the master key (or
    /// `general_settings.metrics_key`), as in LiteLLM.
    pub require_auth_for_metrics_endpoint: Option<bool>,
    /// LiteLLM reads the fallback tables here too; `router_settings` wins where both are set.
    pub fallbacks: Fallbacks,
    pub context_window_fallbacks: Fallbacks,
    pub content_policy_fallbacks: Fallbacks,
    /// Fallbacks of every model group without its own (`router_settings.default_fallbacks` wins).
    pub default_fallbacks: Vec<String>,
}

/// `[{model: [fallback models]}]`, LiteLLM's shape.
pub type Fallbacks = Vec<BTreeMap<String, Vec<String>>>;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RouterSettings {
    pub routing_strategy: Option<String>,
    pub num_retries: Option<u32>,
    pub timeout: Option<f64>,
    pub stream_timeout: Option<f64>,
    pub allowed_fails: Option<u32>,
    pub cooldown_time: Option<f64>,
    pub retry_after: Option<f64>,
    pub fallbacks: Fallbacks,
    pub context_window_fallbacks: Fallbacks,
    pub content_policy_fallbacks: Fallbacks,
    pub default_fallbacks: Vec<String>,
    /// Other public names of model groups: `{alias: group}` or `{alias: {model, hidden}}`.
    pub model_group_alias: BTreeMap<String, GroupAlias>,
    /// The Redis that rate limits are shared through (each may be `os.environ/NAME`);
    /// `redis_url` wins over host and port. Unset: the `REDIS_*` environment variables, else
    /// limits are counted per instance.
    pub redis_url: Option<ConfigValue>,
    pub redis_host: Option<ConfigValue>,
    pub redis_port: Option<ConfigValue>,
    pub redis_password: Option<ConfigValue>,
    pub redis_db: Option<ConfigValue>,
}

/// One `router_settings.model_group_alias` entry, in either of LiteLLM's shapes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum GroupAlias {
    Group(String),
    Detailed {
        model: String,
        /// Left out of `GET /v1/models` (still callable).
        #[serde(default)]
        hidden: bool,
    },
}

impl GroupAlias {
    pub fn group(&self) -> &str {
        match self {
            Self::Group(group) | Self::Detailed { model: group, .. } => group,
        }
    }

    pub fn hidden(&self) -> bool {
        matches!(self, Self::Detailed { hidden: true, .. })
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct GeneralSettings {
    pub master_key: Option<ConfigValue>,
    /// Serve without any key. Without a master key the gateway refuses to start unless this
    /// (or `--allow-unauthenticated`) says so.
    pub allow_unauthenticated: bool,
    pub database_url: Option<ConfigValue>,
    pub key_management_system: Option<String>,
    pub key_management_settings: KeyManagementSettings,
    /// Largest accepted request body, in megabytes (LiteLLM's name).
    pub max_request_size_mb: Option<f64>,
    /// A token that opens `/metrics` (besides the master key), for a Prometheus scraper.
    pub metrics_key: Option<ConfigValue>,
    /// Show readiness details (Vault address, errors, database) to callers without the master
    /// key. Off by default: the public answer is only ready or not.
    pub public_readiness_details: bool,
    /// The admin console at `/ui/` (on by default; `false` turns it off, as does LiteLLM's
    /// `DISABLE_ADMIN_UI=true`).
    pub ui: Option<bool>,
    /// Most connections of this instance's key-database pool (LiteLLM's name; default 8).
    /// On PostgreSQL each instance opens two more: one listens to the other instances'
    /// changes, one holds the background-jobs lock.
    pub database_connection_pool_limit: Option<u32>,
    /// Seconds between two budget-reset passes: a random time between min and max (LiteLLM's
    /// names; default 60 s).
    pub proxy_budget_rescheduler_min_time: Option<f64>,
    pub proxy_budget_rescheduler_max_time: Option<f64>,
    /// Seconds between two spend writes to the key database (LiteLLM's name; default 1 s).
    /// Other instances see this instance's spend after at most this long.
    pub proxy_batch_write_at: Option<f64>,
    /// No per-request spend-log rows (spend totals are still kept).
    pub disable_spend_logs: bool,
    /// Keep request and response bodies in the spend-log rows (off: they may hold secrets).
    pub store_prompts_in_spend_logs: bool,
    /// Delete spend-log rows older than this (`30d`, `12h`, …); kept forever when unset.
    pub maximum_spend_logs_retention_period: Option<String>,
    /// How often the retention deletion runs (default `1d`).
    pub maximum_spend_logs_retention_interval: Option<String>,
    /// How long Responses translated for non-OpenAI deployments are kept for `GET` and
    /// `previous_response_id` (vaultgate's own setting; default `30d`, as OpenAI keeps its own).
    pub responses_retention_period: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct KeyManagementSettings {
    pub store_virtual_keys: bool,
    pub prefix_for_stored_virtual_keys: Option<String>,
    pub access_mode: AccessMode,
    pub hosted_keys: Option<Vec<String>>,
    pub description: Option<String>,
}

impl KeyManagementSettings {
    /// The Vault path prefix for mirrored virtual keys, always ending in `/`.
    pub fn virtual_key_prefix(&self) -> String {
        let prefix = self
            .prefix_for_stored_virtual_keys
            .as_deref()
            .unwrap_or("litellm/");
        if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    #[default]
    ReadOnly,
    WriteOnly,
    ReadAndWrite,
}

impl AccessMode {
    pub fn can_read(self) -> bool {
        self != Self::WriteOnly
    }

    pub fn can_write(self) -> bool {
        self != Self::ReadOnly
    }
}

/// The secret managers we support, by their LiteLLM names.
pub const SUPPORTED_KEY_MANAGEMENT_SYSTEMS: &[&str] = &["hashicorp_vault"];

impl Config {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::parse_source(&text, &path.display().to_string())
    }

    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_source(text, "config.yaml")
    }

    /// Parses `text`; `source` names the file in messages (`source:line:column: …`).
    pub fn parse_source(text: &str, source: &str) -> Result<Self> {
        // Keys first: a misspelt key also explains a "missing field" of the typed parse.
        let keys = unknown::check(text, source);
        if !keys.errors.is_empty() {
            return Err(Error::Config(format!(
                "{} unknown setting(s):\n  {}",
                keys.errors.len(),
                keys.errors.join("\n  ")
            )));
        }
        let mut config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| Error::Config(format!("{source}: {e}")))?
        };
        config.ignored = keys.ignored;
        config.validate().map_err(|e| match e {
            Error::Config(message) => Error::Config(format!("{source}: {message}")),
            other => other,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        for (index, entry) in self.model_list.iter().enumerate() {
            let at = format!("model_list[{index}] ({})", entry.model_name);
            if entry.model_name.trim().is_empty() {
                return Err(Error::Config(format!(
                    "model_list[{index}].model_name is empty"
                )));
            }
            model_target(&entry.litellm_params.model).map_err(|message| {
                Error::Config(format!("{at}.litellm_params.model: {message}"))
            })?;
            for (name, value) in [
                ("timeout", entry.litellm_params.timeout),
                ("stream_timeout", entry.litellm_params.stream_timeout),
                ("weight", entry.litellm_params.weight),
            ] {
                if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                    return Err(Error::Config(format!(
                        "{at}.litellm_params.{name} must be a non-negative number"
                    )));
                }
            }
        }
        if let Some((name, _)) = self
            .environment_variables
            .iter()
            .find(|(_, value)| matches!(value, ConfigValue::Vault(_)))
        {
            return Err(Error::Config(format!(
                "environment_variables.{name}: vault:// references are read after the \
                 environment; use them directly where the value is needed (litellm_params)"
            )));
        }
        if let Some(system) = &self.general_settings.key_management_system
            && !SUPPORTED_KEY_MANAGEMENT_SYSTEMS.contains(&system.as_str())
        {
            return Err(Error::Config(format!(
                "general_settings.key_management_system: '{system}' is not supported; supported: {}",
                SUPPORTED_KEY_MANAGEMENT_SYSTEMS.join(", ")
            )));
        }
        if self
            .general_settings
            .key_management_settings
            .store_virtual_keys
        {
            if self.general_settings.key_management_system.is_none() {
                return Err(Error::Config(
                    "general_settings.key_management_settings.store_virtual_keys needs \
                     general_settings.key_management_system: hashicorp_vault"
                        .into(),
                ));
            }
            if !self
                .general_settings
                .key_management_settings
                .access_mode
                .can_write()
            {
                return Err(Error::Config(
                    "general_settings.key_management_settings.store_virtual_keys needs access_mode \
                     write_only or read_and_write (it is read_only)"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// Every config value that may name a secret, with where it is used, in file order. Values
    /// of deployments vaultgate cannot serve are left out: nothing would ever use them.
    pub fn secret_values(&self) -> Vec<(&ConfigValue, String)> {
        let mut out = Vec::new();
        for (index, entry) in self.model_list.iter().enumerate() {
            if !model_target(&entry.litellm_params.model).is_ok_and(|t| t.is_supported()) {
                continue;
            }
            let p = &entry.litellm_params;
            let at = |field: &str| format!("model_list[{index}].litellm_params.{field}");
            for (field, value) in [
                ("api_key", &p.api_key),
                ("api_base", &p.api_base),
                ("api_version", &p.api_version),
                ("organization", &p.organization),
            ] {
                if let Some(value) = value {
                    out.push((value, at(field)));
                }
            }
            for (header, value) in &p.extra_headers {
                out.push((value, at(&format!("extra_headers.{header}"))));
            }
            for (field, value) in p.aws.values().into_iter().chain(p.vertex.values()) {
                if let Some(value) = value {
                    out.push((value, at(field)));
                }
            }
        }
        for (value, place) in [
            (
                &self.general_settings.master_key,
                "general_settings.master_key",
            ),
            (
                &self.general_settings.database_url,
                "general_settings.database_url",
            ),
            (
                &self.general_settings.metrics_key,
                "general_settings.metrics_key",
            ),
        ] {
            if let Some(value) = value {
                out.push((value, place.to_owned()));
            }
        }
        // Redis is optional (LiteLLM's example config names REDIS_HOST & co. whether or not they
        // are set): its `os.environ/` names are optional references; a `vault://` one is asked
        // for explicitly and must be there.
        for (value, place) in self.redis_values() {
            if let Some(value) = value.filter(|v| v.vault_ref().is_some()) {
                out.push((value, place.to_owned()));
            }
        }
        out
    }

    /// `router_settings`' Redis values with their places.
    fn redis_values(&self) -> [(Option<&ConfigValue>, &'static str); 5] {
        let r = &self.router_settings;
        [
            (r.redis_url.as_ref(), "router_settings.redis_url"),
            (r.redis_host.as_ref(), "router_settings.redis_host"),
            (r.redis_port.as_ref(), "router_settings.redis_port"),
            (r.redis_password.as_ref(), "router_settings.redis_password"),
            (r.redis_db.as_ref(), "router_settings.redis_db"),
        ]
    }

    /// Every `os.environ/NAME` reference in the config, with where it is used, in file order.
    pub fn references(&self) -> Vec<(String, String)> {
        self.secret_values()
            .into_iter()
            .filter_map(|(value, place)| value.reference().map(|name| (name.to_owned(), place)))
            .collect()
    }

    /// Every `vault://` reference in the config, with where it is used, in file order.
    pub fn vault_references(&self) -> Vec<(VaultRef, String)> {
        self.secret_values()
            .into_iter()
            .filter_map(|(value, place)| value.vault_ref().map(|r| (r.clone(), place)))
            .collect()
    }
}

/// The id a deployment is known by in headers, logs and readiness: `model_info.id`, else
/// `<model_name>-<index>`.
pub fn deployment_id(index: usize, entry: &ModelEntry) -> String {
    entry
        .model_info
        .id
        .clone()
        .unwrap_or_else(|| format!("{}-{index}", entry.model_name))
}

impl Config {
    /// The secret names a deployment falls back to for what it does not set itself: its
    /// provider's key names when it has no `api_key` (`secret: true`), its base names when it
    /// has no `api_base` (LiteLLM reads the same names from its environment). They are
    /// optional: a missing one is no error. Keys may live in Vault like every reference; base
    /// URLs are not secrets and come from the environment. Redis settings named by
    /// `os.environ/` are optional the same way.
    pub fn default_references(&self) -> Vec<DefaultReference> {
        let mut out = Vec::new();
        for (index, entry) in self.model_list.iter().enumerate() {
            let params = &entry.litellm_params;
            let Ok((spec, _)) = parse_model_spec(&params.model) else {
                continue;
            };
            if params.mock_response.is_some() {
                continue;
            }
            let mut add = |names: &[&str], field: &str, secret: bool| {
                out.extend(names.iter().map(|name| DefaultReference {
                    name: (*name).to_owned(),
                    place: format!(
                        "model_list[{index}].litellm_params.{field} (unset: the {}/ default)",
                        spec.prefix
                    ),
                    secret,
                }));
            };
            if params.api_key.is_none() {
                add(spec.key_env, "api_key", true);
            }
            if params.api_base.is_none() {
                add(spec.base_env, "api_base", false);
            }
        }
        for (value, place) in self.redis_values() {
            if let Some(name) = value.and_then(ConfigValue::reference) {
                out.push(DefaultReference {
                    name: name.to_owned(),
                    place: format!("{place} (optional: without it, limits are per instance)"),
                    secret: place.ends_with("redis_password") || place.ends_with("redis_url"),
                });
            }
        }
        out
    }
}

/// A provider-default name a deployment falls back to (see [`Config::default_references`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultReference {
    pub name: String,
    /// Where it applies, for messages.
    pub place: String,
    /// A credential (read from Vault when Vault is on), not just a URL.
    pub secret: bool,
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_keys;
