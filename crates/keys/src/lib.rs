//! Virtual keys for vaultgate, LiteLLM-compatible: the key store (SQLite by default, PostgreSQL),
//! the `/key/*` management API, the Vault mirror (through [`SecretMirror`]) with a persistent
//! outbox for deletions, and the request path: [`KeyService::authenticate`] (cached),
//! [`KeyService::authorize_model`], [`KeyService::admit`] (budget, rpm, tpm, parallel) and
//! [`KeyService::record_usage`] (in-memory at once, to the store in batches).
//!
//! Raw keys are never stored or logged: only their SHA-256 (`token`) is kept, and the raw value
//! appears only in the generate/regenerate response (and in the Vault copy).
//!
//! Wiring:
//! 1. `KeyService::open(KeyServiceOptions::new(url).with_mirror(...))` at start (migrates, starts
//!    the spend writer and the budget-reset task).
//! 2. With a mirror, `spawn_outbox_worker(shutdown_token)` (retries queued Vault deletions).
//! 3. Mount [`routes`] behind master-key auth.
//! 4. Per request: [`key_from_headers`] → `authenticate` → `authorize_model` → `admit` (hold the
//!    [`Admission`] until the answer is complete) → `record_usage`.
//! 5. At exit, after the HTTP server drained: `shutdown().await` writes the recorded spend.
//!
//! Several instances may share one PostgreSQL database: spend is added (never overwritten),
//! every change and every written spend is announced with `NOTIFY` and applied by the other
//! instances at once (the `cache_ttl` re-read stays as the safety net), and one instance at a
//! time runs the background jobs ([`cluster`]). Rate limits (rpm/tpm/parallel) hold across
//! instances when `KeyServiceOptions::limiter` shares them through Redis; the in-flight budget
//! reservation is per instance.

mod admin;
mod batch;
mod budget_reset;
mod cache;
mod clock;
mod cluster;
mod drift;
mod headers;
mod hot_metrics;
pub mod import;
mod limits;
mod live;
mod mirror;
mod model;
mod options;
mod outbox;
mod pricing;
mod principals;
mod query;
mod request;
mod responses;
mod routes;
mod service;
mod spend;
mod spend_logs;
mod state;
mod store;
mod vault_copy;
pub mod vault_location;

pub use clock::{Clock, ManualClock, SystemClock};
pub use headers::key_from_headers;
pub use limits::{Admission, KeyUse};
pub use mirror::{
    CopyRead, CopyState, DriftKey, DriftReport, LocationReport, MirrorConfig, SecretMirror,
};
pub use model::{ALL_PROXY_MODELS, KeyRecord, hash_key, key_name, parse_duration, secret_name};
pub use options::KeyServiceOptions;
pub use pricing::{cost, token_prices};
pub use principals::access::{Access, Caller, Decision, Kind, ROUTES, access_of, decide};
pub use principals::model::{
    BudgetRecord, Caps, EndUserRecord, MemberRecord, OrgMemberRecord, OrgRecord, Role, TeamRecord,
    TeamRole, UserRecord,
};
pub use query::{DailySpend, ListQuery};
pub use responses::{MAX_STORED_RESPONSE_BYTES, StoredResponse};
pub use routes::routes;
pub use service::KeyService;
pub use spend::SpendStatus;
pub use spend_logs::{MASTER_KEY_LOG_NAME, SpendLogOptions, SpendLogRow};
pub use store::Backend;
pub use vault_location::{CopyAddr, Location};
pub use vaultgate_quota::QuotaHealth;
