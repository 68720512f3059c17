//! Virtual keys for vaultgate, LiteLLM-compatible: the key store (SQLite by default, PostgreSQL),
//! the `/key/*` management API, the Vault mirror (through [`SecretMirror`]) with a persistent
//! outbox for deletions, and the request path: [`KeyService::authenticate`] (cached),
//! [`KeyService::authorize_model`], [`KeyService::admit`] (budget, rpm, tpm, parallel) and
//! [`KeyService::record_usage`] (in-memory at once, to the store in batches).
//!
//! Raw keys are never stored or logged: only their SHA-256 (`token`) is kept, and the raw value
//! appears only in the generate/regenerate response (and in the Vault copy).

mod clock;
mod headers;
mod limits;
mod mirror;
mod model;
mod pricing;
mod request;
mod routes;
mod service;
mod spend;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use headers::key_from_headers;
pub use limits::Admission;
pub use mirror::{DriftKey, DriftReport, MirrorConfig, SecretMirror};
pub use model::{ALL_PROXY_MODELS, KeyRecord, hash_key, key_name, parse_duration, secret_name};
pub use pricing::{cost, token_prices};
pub use routes::routes;
pub use service::{DailySpend, KeyService, KeyServiceOptions, ListQuery};
pub use store::Backend;
