//! The rate limiter of the virtual keys: shared by every instance through Redis when LiteLLM's
//! `router_settings.redis_*` (or the `REDIS_*` environment variables) say where it is, else
//! counted in this process.

use std::sync::Arc;

use vaultgate_config::{Config, ConfigValue};
use vaultgate_core::Result;
use vaultgate_quota::{Limiter, RedisOptions, RedisParts, RedisQuota, RedisSettings};
use vaultgate_secrets::{Env, LiveSecrets};

/// Where Redis is, from the config (values may be `os.environ/NAME`, read from Vault when the
/// config says so) or, for what the config leaves unset, the environment: `REDIS_URL`,
/// `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`. `None`: no Redis.
pub fn redis_settings(config: &Config, secrets: &LiveSecrets) -> Result<Option<RedisSettings>> {
    let env = Env::from_config(config);
    let snapshot = secrets.snapshot();
    let router = &config.router_settings;
    let read = |value: &Option<ConfigValue>, field: &str, env_name: Option<&str>| match value {
        Some(value) => match snapshot.value(value) {
            Some(text) => Ok(Some(text.to_owned())),
            // An `os.environ/` name that is not set (LiteLLM's example config names REDIS_HOST
            // whether or not there is a Redis): as if the setting were absent.
            None => {
                tracing::warn!(setting = %format!("router_settings.{field}"),
                    variable = value.reference().unwrap_or_default(),
                    "the Redis setting names a variable that is not set; ignored");
                Ok(None)
            }
        },
        None => Ok(env_name.and_then(|name| env.get(name))),
    };
    // A host in the file is not overridden by a URL in the environment.
    let url_env = router.redis_host.is_none().then_some("REDIS_URL");
    let url = read(&router.redis_url, "redis_url", url_env)?;
    let host = read(&router.redis_host, "redis_host", Some("REDIS_HOST"))?;
    let port = read(&router.redis_port, "redis_port", Some("REDIS_PORT"))?;
    let password = read(
        &router.redis_password,
        "redis_password",
        Some("REDIS_PASSWORD"),
    )?;
    let db = read(&router.redis_db, "redis_db", None)?;
    RedisSettings::from_parts(&RedisParts {
        url: url.as_deref(),
        host: host.as_deref(),
        port: port.as_deref(),
        password: password.as_deref(),
        db: db.as_deref(),
    })
}

/// The limiter: through Redis when one is configured (reachable or not: an unreachable Redis
/// fails open to per-instance limits and is retried), else in this process. Logs which.
pub async fn limiter(config: &Config, secrets: &LiveSecrets) -> Result<Arc<Limiter>> {
    let Some(settings) = redis_settings(config, secrets)? else {
        tracing::info!(
            "rate limits (rpm_limit, tpm_limit, max_parallel_requests) are counted per \
             instance: set router_settings.redis_host or REDIS_URL to share them across instances"
        );
        return Ok(Arc::new(Limiter::local()));
    };
    tracing::info!(
        redis = settings.redacted(),
        tls = settings.is_tls(),
        "rate limits are shared across instances through Redis"
    );
    let quota = RedisQuota::start(RedisOptions::new(settings)).await?;
    Ok(Arc::new(Limiter::Redis(quota)))
}
