//! What is known about each secret reference, for the admin console: where its value in use
//! came from, how long ago it was last read from Vault, and the last refresh error. Never a
//! value.

use serde::Serialize;

use super::{LiveSecrets, SecretOrigin};

/// One `os.environ/NAME` reference of the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferenceStatus {
    pub name: String,
    /// The config places that use it (`model_list[0].litellm_params.api_key`, …).
    pub used_at: Vec<String>,
    /// Where the value in use came from (`vault` with its path, or `env`).
    #[serde(flatten)]
    pub origin: Option<SecretOrigin>,
    /// Whether the name is read from Vault (Vault configured, `access_mode` reads, listed in
    /// `hosted_keys` or no `hosted_keys`); a Vault name may still be served from the
    /// environment when Vault has no such secret.
    pub read_from_vault: bool,
    /// Seconds since the last successful Vault read of the name (the value's age when it comes
    /// from Vault); `None` when it was never read from Vault.
    pub last_read_secs_ago: Option<u64>,
    /// The error of the last refresh of this name, when it failed (the last good value is kept).
    pub error: Option<String>,
}

impl LiveSecrets {
    /// Every reference of the config, in file order.
    pub fn references(&self) -> Vec<ReferenceStatus> {
        let snapshot = self.snapshot.load();
        let state = self.state.lock().ok();
        self.uses
            .iter()
            .map(|(name, places)| ReferenceStatus {
                name: name.clone(),
                used_at: places.clone(),
                origin: snapshot.origin(name).cloned(),
                read_from_vault: self.vault_names.iter().any(|n| n == name),
                last_read_secs_ago: state
                    .as_ref()
                    .and_then(|s| s.read_at.get(name))
                    .map(|at| at.elapsed().as_secs()),
                error: state.as_ref().and_then(|s| s.failed.get(name).cloned()),
            })
            .collect()
    }
}
