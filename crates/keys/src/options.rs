//! Settings of the key service.

use std::sync::Arc;
use std::time::Duration;

use vaultgate_quota::Limiter;

use crate::clock::{Clock, SystemClock};
use crate::mirror::MirrorConfig;

/// Settings of the key service. `new(url)` gives the defaults.
#[derive(Clone)]
pub struct KeyServiceOptions {
    /// `sqlite://path?mode=rwc` (default store) or `postgres://…`.
    pub database_url: String,
    /// The Vault mirror, when `store_virtual_keys` is on.
    pub mirror: Option<MirrorConfig>,
    /// How long a looked-up key is trusted without re-reading the store. After this the cached
    /// record is still served while one background read refreshes it, so a hot key never waits
    /// on the store; other instances' changes become visible after about this long (this
    /// instance's own changes at once).
    pub cache_ttl: Duration,
    /// How much longer than `cache_ttl` an unrefreshed record may be served (an idle key is then
    /// dropped and read again on its next use).
    pub cache_max_stale: Duration,
    /// How long an unknown key is remembered as unknown (keeps floods of bad keys off the store).
    pub negative_cache_ttl: Duration,
    pub cache_capacity: u64,
    /// Cost (USD) assumed for a request of a budgeted key before any of its requests finished
    /// on this instance. Bounds the budget overrun while costs are unknown; `f64::INFINITY`
    /// admits only one request at a time until the first cost is known.
    pub unknown_request_cost_estimate: f64,
    /// Size of the database connection pool (an in-memory SQLite database always uses 1).
    pub max_connections: u32,
    /// Longest wait for a database connection. An unreachable database fails a call after this
    /// long, and then opens a circuit breaker: further calls fail at once (503) for a cool-down
    /// while cached keys keep serving.
    pub database_acquire_timeout: Duration,
    /// How often recorded spend is written to the store (requests only queue it meanwhile).
    pub spend_flush_interval: Duration,
    /// Most usage events in one write: a tick that finds more queued writes several batches.
    pub spend_batch_max: usize,
    /// Most key-days kept in memory while spend writes fail (a few hundred bytes each); beyond,
    /// usage of key-days not yet waiting is dropped and counted (`vaultgate_spend_dropped_*`).
    pub spend_backlog_max: usize,
    /// How long shutdown keeps trying to write the recorded spend.
    pub spend_shutdown_timeout: Duration,
    /// How often teams, users, organizations, budgets and end users are read again (other
    /// instances' changes; this instance's own apply at once).
    pub directory_reload_interval: Duration,
    /// Per-request spend logs (`/spend/logs`): on or off, bodies, retention, queue bounds.
    pub spend_logs: crate::spend_logs::SpendLogOptions,
    /// How long stored Responses (those translated for non-OpenAI deployments) are kept.
    pub responses_retention: std::time::Duration,
    /// How often the store is scanned for budgets to reset (by the one instance that runs
    /// the background jobs), plus a random part of up to `budget_reset_jitter`.
    pub budget_reset_interval: Duration,
    pub budget_reset_jitter: Duration,
    /// First retry delay of a failed Vault deletion; doubles per attempt up to `outbox_retry_max`.
    pub outbox_retry_min: Duration,
    pub outbox_retry_max: Duration,
    /// Longest sleep of the outbox worker (it also wakes when work is queued on this instance).
    pub outbox_poll_interval: Duration,
    pub clock: Arc<dyn Clock>,
    /// Counts the rpm, tpm and parallel-request limits: in this process (the default), or
    /// shared by every instance through Redis.
    pub limiter: Arc<Limiter>,
}

impl KeyServiceOptions {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            mirror: None,
            cache_ttl: Duration::from_secs(60),
            cache_max_stale: Duration::from_secs(600),
            negative_cache_ttl: Duration::from_secs(5),
            cache_capacity: 100_000,
            max_connections: 8,
            database_acquire_timeout: Duration::from_secs(3),
            unknown_request_cost_estimate: 1.0,
            spend_flush_interval: Duration::from_secs(1),
            spend_batch_max: 1_000,
            spend_backlog_max: 100_000,
            spend_shutdown_timeout: Duration::from_secs(10),
            spend_logs: crate::spend_logs::SpendLogOptions::default(),
            responses_retention: Duration::from_secs(30 * 86_400),
            budget_reset_interval: Duration::from_secs(60),
            budget_reset_jitter: Duration::ZERO,
            directory_reload_interval: Duration::from_secs(60),
            outbox_retry_min: Duration::from_secs(1),
            outbox_retry_max: Duration::from_secs(300),
            outbox_poll_interval: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
            limiter: Arc::new(Limiter::local()),
        }
    }

    pub fn with_mirror(mut self, mirror: MirrorConfig) -> Self {
        self.mirror = Some(mirror);
        self
    }

    pub fn with_limiter(mut self, limiter: Arc<Limiter>) -> Self {
        self.limiter = limiter;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl std::fmt::Debug for KeyServiceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyServiceOptions")
            .field("mirror", &self.mirror.is_some())
            .field("cache_ttl", &self.cache_ttl)
            .field("spend_flush_interval", &self.spend_flush_interval)
            .field("shared_limits", &self.limiter.is_shared())
            .finish_non_exhaustive()
    }
}
