//! Bringing the rooms up: secrets (Vault), the key service (database), the app state; and,
//! when Vault or the database is down at start, retrying with jittered exponential backoff.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vaultgate_config::{Config, ConfigValue, GeneralSettings};
use vaultgate_core::{Error, Result};
use vaultgate_keys::{KeyService, KeyServiceOptions, MirrorConfig, SpendLogOptions};
use vaultgate_secrets::{Env, LiveSecrets, reads_from_vault};
use vaultgate_server::{AppState, DetailsAccess, Options, Starting, VaultMirror};

/// First wait after a failed start-up attempt; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Everything that runs once the secrets are in, stopped in order at exit.
pub struct Running {
    pub state: Arc<AppState>,
    secrets: Arc<LiveSecrets>,
    keys: Option<KeyService>,
    outbox: Option<JoinHandle<()>>,
    refresher: JoinHandle<()>,
}

impl Running {
    /// After the HTTP server drained: background tasks end, recorded spend is written.
    pub async fn stop(self) {
        let _ = self.refresher.await;
        // Credentials leased for this process end with it.
        self.secrets.revoke_leases().await;
        if let Some(vault) = self.secrets.vault() {
            vault.shutdown();
        }
        if let Some(keys) = self.keys {
            if let Some(outbox) = self.outbox {
                let _ = outbox.await;
            }
            keys.shutdown().await;
        }
    }
}

/// A failed attempt, and whether it failed on the secrets (which an operator can fix in Vault
/// while the gateway waits) or later.
pub struct StartError {
    pub error: Error,
    pub in_secrets: bool,
}

/// One attempt: resolve the secrets, open the key service, build the app state.
pub async fn bring_up(
    config: &Config,
    path: &Path,
    metrics: &PrometheusHandle,
    console: bool,
    shutdown: &CancellationToken,
) -> std::result::Result<Running, StartError> {
    let secrets = LiveSecrets::start(config, Env::from_config(config))
        .await
        .map_err(|error| StartError {
            error,
            in_secrets: true,
        })?;
    let later = |error| StartError {
        error,
        in_secrets: false,
    };
    let keys = match open_keys_limited(config, path, &secrets, true).await {
        Ok(keys) => keys,
        Err(error) => {
            secrets.revoke_leases().await;
            if let Some(vault) = secrets.vault() {
                vault.shutdown();
            }
            return Err(later(error));
        }
    };
    let state = Arc::new(
        AppState::new(
            config,
            Arc::clone(&secrets),
            Options {
                metrics: metrics.clone(),
                keys: keys.clone(),
                console,
            },
        )
        .map_err(later)?,
    );
    let outbox = keys
        .as_ref()
        .map(|keys| keys.spawn_outbox_worker(shutdown.clone()));
    let refresher = Arc::clone(&secrets).spawn_refresher(shutdown.clone());
    Ok(Running {
        state,
        secrets,
        keys,
        outbox,
        refresher,
    })
}

/// Whether a failed attempt is an outage worth waiting out (Vault or the database down, sealed
/// or refusing) rather than a mistake in the config.
pub fn is_outage(error: &Error) -> bool {
    matches!(
        error,
        Error::Vault { .. } | Error::Unavailable(_) | Error::Database(_)
    )
}

/// Retries [`bring_up`] until it works (then hands the app to `starting`), a mistake outside
/// the secrets stops it (returned, after cancelling `shutdown`), or shutdown. While waiting, a
/// secret missing from Vault is waited for too (Vault may be restored from a backup). Waits
/// are jittered so restarted replicas do not retry in step.
pub async fn retry_until_up(
    config: Config,
    path: std::path::PathBuf,
    metrics: PrometheusHandle,
    console: bool,
    shutdown: CancellationToken,
    starting: Starting,
) -> Result<Option<Running>> {
    let mut attempts: u32 = 1;
    loop {
        let wait = backoff(attempts);
        tracing::info!(
            attempt = attempts,
            retry_in_ms = wait.as_millis() as u64,
            "not ready: retrying start-up"
        );
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(wait) => {}
        }
        attempts += 1;
        let attempt = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            attempt = bring_up(&config, &path, &metrics, console, &shutdown) => attempt,
        };
        match attempt {
            Ok(running) => {
                tracing::info!(attempts, "secrets loaded: ready, serving model requests");
                starting.ready(vaultgate_server::app(Arc::clone(&running.state)));
                return Ok(Some(running));
            }
            Err(StartError { error, in_secrets }) if in_secrets || is_outage(&error) => {
                tracing::warn!(attempt = attempts, %error, "start-up attempt failed; still not ready");
                starting.failed(attempts, error.to_string());
            }
            Err(StartError { error, .. }) => {
                shutdown.cancel();
                return Err(error);
            }
        }
    }
}

/// Exponential from [`RETRY_FIRST`] to [`RETRY_MAX`], each wait drawn from its upper half.
fn backoff(attempts: u32) -> Duration {
    let ceiling = RETRY_FIRST
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
        .min(RETRY_MAX);
    ceiling / 2 + ceiling.mul_f64(rand::random::<f64>() / 2.0)
}

/// Who may read why the gateway is not ready: the master key and metrics key when they are
/// known without Vault (written in the file, or from the environment).
pub fn details_access(config: &Config) -> DetailsAccess {
    let env = Env::from_config(config);
    let general = &config.general_settings;
    let keys = [&general.master_key, &general.metrics_key]
        .into_iter()
        .flatten()
        .filter_map(|value| match value {
            ConfigValue::Literal(text) => Some(text.clone()),
            ConfigValue::Reference(name) if !reads_from_vault_at_all(config, name) => env.get(name),
            ConfigValue::Reference(_) | ConfigValue::Vault(_) => None,
        })
        .filter(|key| !key.is_empty())
        .collect();
    DetailsAccess {
        public: general.public_readiness_details || general.master_key.is_none(),
        keys,
    }
}

pub fn reads_from_vault_at_all(config: &Config, name: &str) -> bool {
    config.general_settings.key_management_system.is_some() && reads_from_vault(config, name)
}

/// The database URL: `general_settings.database_url` (or `DATABASE_URL`), else a SQLite file
/// next to the config. SQLite files are created when missing.
fn database_url(config: &Config, config_path: &Path, secrets: &LiveSecrets) -> Result<String> {
    let configured = match &config.general_settings.database_url {
        Some(value) => Some(
            secrets
                .snapshot()
                .value(value)
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::Config("general_settings.database_url resolved to nothing".into())
                })?,
        ),
        None => None,
    };
    Ok(store_url(config_path, configured))
}

/// The store URL for a resolved `database_url`, or the default SQLite file next to the config
/// (`vaultgate.db`); SQLite URLs get `mode=rwc` so the file is created when missing.
pub fn store_url(config_path: &Path, configured: Option<String>) -> String {
    let url = configured.unwrap_or_else(|| {
        let dir = config_path.parent().filter(|d| !d.as_os_str().is_empty());
        let file = dir.unwrap_or(Path::new(".")).join("vaultgate.db");
        format!("sqlite://{}", file.display())
    });
    if url.starts_with("sqlite:") && !url.contains("mode=") {
        let separator = if url.contains('?') { '&' } else { '?' };
        return format!("{url}{separator}mode=rwc");
    }
    url
}

/// A positive number of seconds from `general_settings.<name>`.
fn seconds(name: &str, value: Option<f64>) -> Result<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(Error::Config(format!(
            "general_settings.{name} must be a positive number of seconds, not {s}"
        ))),
    }
}

/// The key database's pool and the background intervals from LiteLLM's settings.
fn tune(mut options: KeyServiceOptions, general: &GeneralSettings) -> Result<KeyServiceOptions> {
    if let Some(limit) = general.database_connection_pool_limit {
        if limit == 0 {
            return Err(Error::Config(
                "general_settings.database_connection_pool_limit must be at least 1".into(),
            ));
        }
        options.max_connections = limit;
    }
    if let Some(every) = seconds("proxy_batch_write_at", general.proxy_batch_write_at)? {
        options.spend_flush_interval = every;
    }
    let min = seconds(
        "proxy_budget_rescheduler_min_time",
        general.proxy_budget_rescheduler_min_time,
    )?;
    let max = seconds(
        "proxy_budget_rescheduler_max_time",
        general.proxy_budget_rescheduler_max_time,
    )?;
    match (min, max) {
        (Some(min), Some(max)) if max < min => {
            return Err(Error::Config(
                "general_settings.proxy_budget_rescheduler_max_time must not be below                  proxy_budget_rescheduler_min_time"
                    .into(),
            ));
        }
        (Some(min), max) => {
            options.budget_reset_interval = min;
            options.budget_reset_jitter = max.map_or(Duration::ZERO, |max| max - min);
        }
        (None, Some(max)) => options.budget_reset_interval = max,
        (None, None) => {}
    }
    Ok(options)
}

/// The virtual key service, when a master key makes key management possible, with limits
/// counted in this process (for `vaultgate check`, which serves no requests).
pub async fn open_keys(
    config: &Config,
    config_path: &Path,
    secrets: &LiveSecrets,
) -> Result<Option<KeyService>> {
    open_keys_limited(config, config_path, secrets, false).await
}

/// [`open_keys`]; `serving`: with the rate limiter of a serving instance (shared through Redis
/// when one is configured).
async fn open_keys_limited(
    config: &Config,
    config_path: &Path,
    secrets: &LiveSecrets,
    serving: bool,
) -> Result<Option<KeyService>> {
    let spend_logs = spend_log_options(&config.general_settings)?;
    if config.general_settings.master_key.is_none() {
        if serving && crate::limits::redis_settings(config, secrets)?.is_some() {
            tracing::warn!(
                "Redis is configured but there is no master key, so no virtual keys and no                  rate limits: Redis is not used"
            );
        }
        return Ok(None);
    }
    let mut options = tune(
        KeyServiceOptions::new(database_url(config, config_path, secrets)?),
        &config.general_settings,
    )?;
    options.spend_logs = spend_logs;
    if let Some(period) = duration(
        "responses_retention_period",
        &config.general_settings.responses_retention_period,
    )? {
        // Zero would keep nothing and spin the deletion pass.
        options.responses_retention = period.max(Duration::from_secs(1));
    }
    if serving {
        options = options.with_limiter(crate::limits::limiter(config, secrets).await?);
    }
    let settings = &config.general_settings.key_management_settings;
    if settings.store_virtual_keys {
        let vault = secrets.vault().cloned().ok_or_else(|| {
            Error::Config(
                "key_management_settings.store_virtual_keys needs a Vault: set HCP_VAULT_ADDR \
                 and a way to log in"
                    .into(),
            )
        })?;
        let mirror = VaultMirror::new(vault, settings.virtual_key_prefix());
        options = options.with_mirror(
            MirrorConfig::new(Arc::new(mirror)).with_description(settings.description.clone()),
        );
    }
    KeyService::open(options).await.map(Some)
}

/// A `general_settings` duration (`30d`, `12h`…); one that is no duration stops the start.
fn duration(name: &str, text: &Option<String>) -> Result<Option<Duration>> {
    let Some(text) = text else {
        return Ok(None);
    };
    vaultgate_keys::parse_duration(text)
        .and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| {
            Error::Config(format!(
                "general_settings.{name} must be a duration like 30d, 12h or 90m, got {text:?}"
            ))
        })
}

/// LiteLLM's spend-log settings; a retention that is no duration stops the start.
fn spend_log_options(general: &GeneralSettings) -> Result<SpendLogOptions> {
    let mut options = SpendLogOptions {
        enabled: !general.disable_spend_logs,
        store_prompts: general.store_prompts_in_spend_logs,
        retention: duration(
            "maximum_spend_logs_retention_period",
            &general.maximum_spend_logs_retention_period,
        )?,
        ..SpendLogOptions::default()
    };
    if let Some(interval) = duration(
        "maximum_spend_logs_retention_interval",
        &general.maximum_spend_logs_retention_interval,
    )? {
        options.retention_interval = interval;
    }
    Ok(options)
}
