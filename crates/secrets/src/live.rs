//! Resolved secret references, kept fresh in the background and read lock-free by requests.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::stream::{self, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use vaultgate_config::{Config, ConfigValue};
use vaultgate_core::{Error, FastMap, Result};

use crate::client::VaultClient;
use crate::env::Env;
use crate::metrics as m;
use crate::paths::{PathSource, PathStatus, path_sources};
use crate::settings::VaultSettings;

mod refresh;
mod status;
pub use status::ReferenceStatus;

/// How many secrets are read from Vault at once.
const PARALLEL_READS: usize = 16;

/// Where a resolved value came from (for logs, `check` and readiness; never the value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum SecretOrigin {
    /// Read from Vault at this URL.
    Vault { path: String },
    /// The environment (process or `environment_variables`).
    Env,
    /// Written in the config file.
    Literal,
}

impl fmt::Display for SecretOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vault { path } => write!(f, "vault {path}"),
            Self::Env => f.write_str("environment"),
            Self::Literal => f.write_str("literal in config"),
        }
    }
}

pub(crate) struct Entry {
    pub(crate) value: SecretString,
    pub(crate) origin: SecretOrigin,
}

/// One immutable snapshot of every resolved reference. Requests hold an `Arc` of it: no lock,
/// no await. `Debug` lists names and origins only.
#[derive(Default)]
pub struct SecretMap {
    entries: FastMap<String, Arc<Entry>>,
}

impl SecretMap {
    /// The text to use for a config value: the literal itself, or the resolved reference.
    pub fn value<'a>(&'a self, value: &'a ConfigValue) -> Option<&'a str> {
        match value {
            ConfigValue::Literal(text) => Some(text),
            ConfigValue::Reference(name) => self.get(name),
            ConfigValue::Vault(reference) => self.get(reference.as_str()),
        }
    }

    /// The resolved value of reference `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(|e| e.value.expose_secret())
    }

    pub fn origin(&self, name: &str) -> Option<&SecretOrigin> {
        self.entries.get(name).map(|e| &e.origin)
    }

    /// `Literal` for a literal, the reference's origin otherwise.
    pub fn origin_of(&self, value: &ConfigValue) -> Option<SecretOrigin> {
        match value {
            ConfigValue::Literal(_) => Some(SecretOrigin::Literal),
            ConfigValue::Reference(name) => self.origin(name).cloned(),
            ConfigValue::Vault(reference) => self.origin(reference.as_str()).cloned(),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for SecretMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, entry) in &self.entries {
            map.entry(name, &entry.origin.to_string());
        }
        map.finish()
    }
}

/// What `/health/readiness` reports about Vault. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VaultReadiness {
    /// `ok`, `degraded` (the last refresh or token renewal failed; last good values are
    /// served) or `disabled` (no Vault configured).
    pub status: &'static str,
    /// Age of the oldest value read from Vault, since its last successful read.
    pub oldest_value_age_secs: Option<u64>,
    pub last_error: Option<String>,
    /// Seconds the Vault token has left; `None` when it never expires.
    pub token_ttl_secs: Option<u64>,
    /// Each `vault://` path: fields, age, TTL left, re-issues, last error (never a value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathStatus>,
}

#[derive(Default)]
struct RefreshState {
    /// Last successful Vault read per Vault-eligible name.
    read_at: HashMap<String, Instant>,
    /// Names whose last refresh failed, with the error.
    failed: BTreeMap<String, String>,
    last_error: Option<String>,
    last_refresh_one: HashMap<String, Instant>,
}

/// Every secret reference of the config, resolved at start and refreshed from Vault in the
/// background; the request path only calls [`LiveSecrets::snapshot`].
pub struct LiveSecrets {
    vault: Option<VaultClient>,
    env: Env,
    /// Reference name → the config places that use it (for messages).
    uses: Vec<(String, Vec<String>)>,
    /// Names read from Vault (Vault configured, access mode reads, in `hosted_keys`).
    vault_names: Vec<String>,
    snapshot: ArcSwap<SecretMap>,
    refresh_interval: Duration,
    state: Mutex<RefreshState>,
    /// Serialises refreshes so an older read never overwrites a newer one.
    pub(crate) refresh_lock: tokio::sync::Mutex<()>,
    /// The `vault://` references, by path.
    pub(crate) paths: Vec<PathSource>,
}

impl fmt::Debug for LiveSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSecrets")
            .field("vault", &self.vault)
            .field("vault_names", &self.vault_names)
            .field("snapshot", &self.snapshot.load())
            .finish()
    }
}

/// Connects to Vault when the config asks for it (`key_management_system: hashicorp_vault`);
/// `Ok(None)` otherwise. Vault settings come from `env` (COMPAT §1).
pub async fn connect_vault(config: &Config, env: &Env) -> Result<Option<VaultClient>> {
    let vault_refs = config.vault_references();
    if !vault_configured(config) && vault_refs.is_empty() {
        return Ok(None);
    }
    let settings = VaultSettings::from_env(env)?.ok_or_else(|| {
        let why = match vault_refs.first() {
            Some((reference, place)) if !vault_configured(config) => {
                format!("{place} is {reference}")
            }
            _ => "general_settings.key_management_system is hashicorp_vault".to_owned(),
        };
        Error::Config(format!(
            "{why} but no Vault login is configured: set {}",
            VaultSettings::auth_variables_hint()
        ))
    })?;
    VaultClient::connect(settings).await.map(Some)
}

pub(crate) fn vault_configured(config: &Config) -> bool {
    config.general_settings.key_management_system.as_deref() == Some("hashicorp_vault")
}

/// Whether reference `name` is read from Vault under this config (COMPAT §3).
pub fn reads_from_vault(config: &Config, name: &str) -> bool {
    let kms = &config.general_settings.key_management_settings;
    kms.access_mode.can_read()
        && kms
            .hosted_keys
            .as_ref()
            .is_none_or(|hosted| hosted.iter().any(|h| h.trim() == name))
}

/// Reference name → where it is used, in file order of first use.
pub(crate) fn reference_uses(config: &Config) -> Vec<(String, Vec<String>)> {
    let mut uses: Vec<(String, Vec<String>)> = Vec::new();
    for (name, place) in config.references() {
        match uses.iter_mut().find(|(known, _)| *known == name) {
            Some((_, places)) => places.push(place),
            None => uses.push((name, vec![place])),
        }
    }
    uses
}

/// A provider-default name (`Config::default_references`) that no setting requires: where it
/// applies, and whether it may be read from Vault (keys) or only from the environment (bases).
pub(crate) struct OptionalUse {
    pub(crate) name: String,
    pub(crate) places: Vec<String>,
    pub(crate) secret: bool,
}

/// The provider-default names no setting requires: resolved when they have a value, skipped
/// silently when not.
pub(crate) fn optional_uses(config: &Config) -> Vec<OptionalUse> {
    let required: Vec<String> = config.references().into_iter().map(|(n, _)| n).collect();
    let mut uses: Vec<OptionalUse> = Vec::new();
    for default in config.default_references() {
        if required.contains(&default.name) {
            continue;
        }
        match uses.iter_mut().find(|known| known.name == default.name) {
            Some(known) => {
                known.places.push(default.place);
                known.secret |= default.secret;
            }
            None => uses.push(OptionalUse {
                name: default.name,
                places: vec![default.place],
                secret: default.secret,
            }),
        }
    }
    uses
}

impl LiveSecrets {
    /// Connects to Vault if configured and resolves every reference: the usual start-up call.
    pub async fn start(config: &Config, env: Env) -> Result<Arc<Self>> {
        let vault = connect_vault(config, &env).await?;
        Self::resolve(config, env, vault).await
    }

    /// Resolves every reference of `config` with an already connected client (shared with the
    /// virtual-key mirror). Fails with one [`Error::Config`] listing every missing name.
    pub async fn resolve(
        config: &Config,
        env: Env,
        vault: Option<VaultClient>,
    ) -> Result<Arc<Self>> {
        let uses = reference_uses(config);
        let optional = optional_uses(config);
        let vault_names: Vec<String> = match &vault {
            // `os.environ/` names go to Vault only with `key_management_system`, as in LiteLLM.
            Some(_) if vault_configured(config) => uses
                .iter()
                .map(|(name, _)| name)
                .chain(optional.iter().filter(|o| o.secret).map(|o| &o.name))
                .filter(|n| reads_from_vault(config, n))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let refresh_interval = vault.as_ref().map_or(Duration::from_secs(86_400), |v| {
            v.settings().refresh_interval
        });
        let live = Self {
            vault,
            env,
            uses,
            vault_names,
            snapshot: ArcSwap::from_pointee(SecretMap::default()),
            refresh_interval,
            state: Mutex::new(RefreshState::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            paths: path_sources(config),
        };

        let reads = live.read_vault_names(live.vault_names.clone()).await;
        let mut entries = FastMap::default();
        let mut missing = Vec::new();
        // A name missing because Vault could not be read (down, sealed, refused) is an outage
        // the caller may wait out; a name Vault does not have is a config mistake.
        let mut vault_failed = false;
        let mut read_at = HashMap::new();
        for (name, places) in &live.uses {
            let used_at = places.join(", ");
            let vault_result = reads.get(name);
            match vault_result {
                Some((path, Ok(Some(value)))) => {
                    read_at.insert(name.clone(), Instant::now());
                    let origin = SecretOrigin::Vault { path: path.clone() };
                    entries.insert(
                        name.clone(),
                        Arc::new(Entry {
                            value: value.clone(),
                            origin,
                        }),
                    );
                    continue;
                }
                Some((path, Ok(None))) => {
                    read_at.insert(name.clone(), Instant::now());
                    if live.env.get(name).is_some() {
                        tracing::warn!(
                            secret = %name, vault_path = %path,
                            "secret not found in Vault; using the environment variable of the same name"
                        );
                    }
                }
                Some((path, Err(error))) if live.env.get(name).is_some() => {
                    tracing::warn!(
                        secret = %name, vault_path = %path, error = %error,
                        "reading the secret from Vault failed; using the environment variable of the same name"
                    );
                }
                _ => {}
            }
            match live.env.get(name) {
                Some(value) => {
                    let entry = Entry {
                        value: SecretString::from(value),
                        origin: SecretOrigin::Env,
                    };
                    entries.insert(name.clone(), Arc::new(entry));
                }
                None => {
                    let why = match vault_result {
                        Some((path, Ok(None))) => {
                            format!(
                                "not in Vault at {path} (field `key`) and not in the environment"
                            )
                        }
                        Some((path, Err(error))) => {
                            vault_failed = true;
                            format!(
                                "Vault read at {path} failed ({error}) and not in the environment"
                            )
                        }
                        _ => format!("not in the environment ({})", live.why_not_vault(config)),
                    };
                    missing.push(format!("  - {name} (used at {used_at}): {why}"));
                }
            }
        }
        for OptionalUse { name, .. } in &optional {
            let from_vault = match reads.get(name) {
                Some((path, Ok(found))) => {
                    read_at.insert(name.clone(), Instant::now());
                    found.as_ref().map(|value| Entry {
                        value: value.clone(),
                        origin: SecretOrigin::Vault { path: path.clone() },
                    })
                }
                _ => None,
            };
            let entry = from_vault.or_else(|| {
                live.env.get(name).map(|value| Entry {
                    value: SecretString::from(value),
                    origin: SecretOrigin::Env,
                })
            });
            if let Some(entry) = entry {
                entries.insert(name.clone(), Arc::new(entry));
            }
        }
        vault_failed |= live.read_paths(&mut entries, &mut missing).await;
        if !missing.is_empty() {
            live.revoke_leases().await;
            let message = format!(
                "{} secret reference(s) could not be resolved:\n{}",
                missing.len(),
                missing.join("\n")
            );
            return Err(if vault_failed {
                Error::Unavailable(message)
            } else {
                Error::Config(message)
            });
        }
        for (name, entry) in &entries {
            tracing::info!(secret = %name, origin = %entry.origin, "secret reference resolved");
        }
        live.snapshot.store(Arc::new(SecretMap { entries }));
        // Vault read failures covered by the environment still make readiness `degraded`
        // until a refresh reads them.
        let failed: BTreeMap<String, String> = reads
            .iter()
            .filter_map(|(name, (_, result))| {
                result.as_ref().err().map(|e| (name.clone(), e.to_string()))
            })
            .collect();
        m::stale_secrets(failed.len());
        if let Ok(mut state) = live.state.lock() {
            state.read_at = read_at;
            state.last_error = failed.values().next().cloned();
            state.failed = failed;
        }
        Ok(Arc::new(live))
    }

    fn why_not_vault(&self, config: &Config) -> &'static str {
        let kms = &config.general_settings.key_management_settings;
        if self.vault.is_none() {
            "no Vault configured"
        } else if !kms.access_mode.can_read() {
            "Vault not read: access_mode is write_only"
        } else {
            "Vault not read: not listed in hosted_keys"
        }
    }

    /// Reads names from Vault in parallel: name → (path, result).
    async fn read_vault_names(
        &self,
        names: Vec<String>,
    ) -> HashMap<String, (String, Result<Option<SecretString>>)> {
        let Some(vault) = &self.vault else {
            return HashMap::new();
        };
        stream::iter(names)
            .map(|name| async move {
                let path = vault.secret_path(&name).unwrap_or_else(|_| name.clone());
                let result = vault.read_secret(&name).await;
                (name, (path, result))
            })
            .buffer_unordered(PARALLEL_READS)
            .collect()
            .await
    }

    /// The current snapshot: what the request path uses (lock-free, never waits on Vault).
    pub fn snapshot(&self) -> Arc<SecretMap> {
        self.snapshot.load_full()
    }

    /// The Vault client, shared with the virtual-key mirror; `None` without Vault.
    pub fn vault(&self) -> Option<&VaultClient> {
        self.vault.as_ref()
    }

    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    /// Vault health for the readiness endpoint.
    pub fn readiness(&self) -> VaultReadiness {
        let Some(vault) = &self.vault else {
            return VaultReadiness {
                status: "disabled",
                oldest_value_age_secs: None,
                last_error: None,
                token_ttl_secs: None,
                paths: Vec::new(),
            };
        };
        let snapshot = self.snapshot.load();
        let (refresh_error, oldest) = match self.state.lock() {
            Ok(state) => {
                let oldest = snapshot
                    .entries
                    .iter()
                    .filter(|(_, e)| matches!(e.origin, SecretOrigin::Vault { .. }))
                    .filter_map(|(name, _)| state.read_at.get(name))
                    .map(|at| at.elapsed().as_secs())
                    .max();
                (state.last_error.clone(), oldest)
            }
            Err(_) => (Some("secrets state poisoned".to_owned()), None),
        };
        let paths: Vec<PathStatus> = self.paths.iter().map(|p| p.status(vault)).collect();
        let path_error = paths.iter().find_map(|p| p.last_error.clone());
        let last_error = refresh_error.or(path_error).or_else(|| vault.auth_error());
        let token_ttl_secs = vault.token_ttl_remaining();
        if let Some(ttl) = token_ttl_secs {
            m::token_ttl(ttl);
        }
        VaultReadiness {
            status: if last_error.is_some() {
                "degraded"
            } else {
                "ok"
            },
            oldest_value_age_secs: oldest,
            last_error,
            token_ttl_secs,
            paths,
        }
    }
}
