//! Secret references (`os.environ/NAME`, `vault://mount/path#field`) resolved from HashiCorp
//! Vault / OpenBao or the environment, kept fresh in the background (leased credentials
//! replaced before they expire and revoked at shutdown) and read lock-free on the request path.
//!
//! Start-up: [`Env::from_config`], then [`LiveSecrets::start`] (or [`connect_vault`] +
//! [`LiveSecrets::resolve`] to share the [`VaultClient`] with the virtual-key mirror), then
//! [`LiveSecrets::spawn_refresher`]. Requests call [`LiveSecrets::snapshot`] and
//! [`SecretMap::value`]. `vaultgate check` calls [`check`].

mod check;
mod client;
mod env;
mod kv_copy;
mod live;
mod live_paths;
pub mod metrics;
mod paths;
mod settings;

pub use check::{CheckReport, check};
pub use client::{ClientStats, KvLocation, Lease, PathRead, SecretVersion, TokenInfo, VaultClient};
pub use env::Env;
pub use kv_copy::{KvRead, KvState};
pub use live::{
    LiveSecrets, ReferenceStatus, SecretMap, SecretOrigin, VaultReadiness, connect_vault,
    reads_from_vault,
};
pub use paths::PathStatus;
pub use settings::{DEFAULT_K8S_TOKEN_PATH, VaultAuth, VaultSettings};
