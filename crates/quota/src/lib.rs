//! Request-path limits: requests per minute, tokens per minute and parallel requests, for one or
//! several scopes of a request at once (a key today; its team and user later), all or none.
//!
//! Two implementations behind one trait, [`Quota`]:
//! - [`LocalQuota`]: counters in this process (one instance, or several that each count alone).
//! - [`RedisQuota`]: counters in Redis shared by every instance, one pipelined round trip per
//!   admission (a Lua script that checks every scope and counts the request in all of them, on
//!   Redis's own clock). When Redis is down or slow it fails open to per-instance limits of
//!   `ceil(limit / instances)` and reconnects by itself.
//!
//! [`Limiter`] is the one the gateway holds: either of the two, dispatched without boxing a
//! future per request.
//!
//! Usage per request: [`Quota::acquire`] with an [`Ask`] per scope; keep the [`Permit`] until the
//! answer is complete (dropping it frees the parallel slots, also when the request failed or its
//! client went away), and call [`Permit::record_tokens`] when the usage is known.

mod local;
mod permit;
mod redis;
mod settings;
mod window;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use vaultgate_core::Result;

pub use local::LocalQuota;
pub use permit::{Permit, WindowUse};
pub use redis::{RedisOptions, RedisQuota};
pub use settings::{RedisParts, RedisSettings};

use window::LocalCounts;

/// Who a limit belongs to. Part of the shared counters' names, so a key and a team with the same
/// id never share a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    Key,
    Team,
    User,
    /// A user's membership in a team (its id is `{team}:{user}`).
    Member,
    /// An end user (LiteLLM's customer) named by a request's `user`.
    Customer,
    Org,
}

impl ScopeKind {
    /// Its name in the shared counters' keys and in the `scope` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Team => "team",
            Self::User => "user",
            Self::Member => "team_member",
            Self::Customer => "end_user",
            Self::Org => "organization",
        }
    }
}

/// The limits of one scope as its record says now (`None` = unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub parallel: Option<u64>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.parallel.is_none()
    }
}

/// The counters of one principal, made once per principal and kept by its owner (the key's live
/// state, say), so a request finds them without a map lookup. Cheap to clone.
#[derive(Clone)]
pub struct Scope(Arc<ScopeInner>);

struct ScopeInner {
    kind: ScopeKind,
    /// The prefix of this scope's counters in Redis: `vaultgate:q:{kind}:{id}`.
    redis_key: Box<str>,
    /// This instance's own counts: the whole truth for [`LocalQuota`], the fail-open fallback
    /// (and what the parallel slots held here are) for [`RedisQuota`].
    local: Mutex<LocalCounts>,
}

impl Scope {
    /// `id` must be stable for the principal (a key's `key_id`, not its hash, which regenerate
    /// changes).
    pub fn new(kind: ScopeKind, id: &str) -> Self {
        Self(Arc::new(ScopeInner {
            kind,
            redis_key: format!("vaultgate:q:{}:{id}", kind.as_str()).into_boxed_str(),
            local: Mutex::new(LocalCounts::default()),
        }))
    }

    pub fn kind(&self) -> ScopeKind {
        self.0.kind
    }

    fn local(&self) -> MutexGuard<'_, LocalCounts> {
        self.0
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn redis_key(&self) -> &str {
        &self.0.redis_key
    }

    /// Requests of this scope in flight on this instance.
    pub fn in_flight(&self) -> u64 {
        self.local().in_flight
    }
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("key", &self.0.redis_key)
            .finish_non_exhaustive()
    }
}

/// One scope of a request with its current limits.
#[derive(Clone, Copy)]
pub struct Ask<'a> {
    pub scope: &'a Scope,
    pub limits: Limits,
    /// How the rejection names the scope, e.g. `key sk-...ab` or `team t1` (formatted only
    /// when the request is refused).
    pub label: &'a (dyn std::fmt::Display + Sync),
}

impl std::fmt::Debug for Ask<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ask")
            .field("scope", self.scope)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// How the shared limits are doing (for readiness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaHealth {
    /// Counted in this process only.
    Local,
    /// Shared through Redis, which answers.
    Shared,
    /// Redis is configured but does not answer: limits are per instance until it does.
    Degraded { error: String },
}

/// Admits requests against the limits of their scopes.
pub trait Quota: Send + Sync + 'static {
    /// Admits one request against every ask's limits, all or none: counts it in each scope's
    /// requests-per-minute window and takes a parallel slot in each; or says which limit is full
    /// (429 with Retry-After). `now_ms` is this instance's clock, used by the local counters
    /// (shared counters run on Redis's clock).
    fn acquire(&self, asks: &[Ask<'_>], now_ms: i64)
    -> impl Future<Output = Result<Permit>> + Send;

    fn health(&self) -> QuotaHealth;
}

/// The gateway's limiter: local or shared through Redis.
pub enum Limiter {
    Local(LocalQuota),
    Redis(RedisQuota),
}

impl Limiter {
    pub fn local() -> Self {
        Self::Local(LocalQuota)
    }

    /// Whether the limits hold across instances (they do only through Redis).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// Instances that shared the limits at the last heartbeat: what each divides a limit by
    /// while Redis is away (`None` without Redis; `Some(0)` until the first heartbeat).
    pub fn instances_seen(&self) -> Option<u64> {
        match self {
            Self::Local(_) => None,
            Self::Redis(redis) => Some(redis.instances_seen()),
        }
    }

    /// Stops the background tasks (Redis writes in flight are given a moment to finish).
    pub async fn shutdown(&self) {
        if let Self::Redis(redis) = self {
            redis.shutdown().await;
        }
    }
}

impl Quota for Limiter {
    async fn acquire(&self, asks: &[Ask<'_>], now_ms: i64) -> Result<Permit> {
        match self {
            Self::Local(local) => local.acquire_now(asks, now_ms),
            Self::Redis(redis) => redis.acquire(asks, now_ms).await,
        }
    }

    fn health(&self) -> QuotaHealth {
        match self {
            Self::Local(local) => local.health(),
            Self::Redis(redis) => redis.health(),
        }
    }
}
