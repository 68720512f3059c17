//! How [`LiveSecrets`] keeps its `vault://` values: read at start, re-read at the refresh
//! interval (KV); at about 2/3 of their lifetime, renewable leases are renewed and other
//! expiring values (leases near their max TTL, tokens) replaced by new ones, whose replaced
//! lease is revoked once in-flight requests had time to finish; re-read at once when an
//! upstream refuses them, and revoked at shutdown.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use vaultgate_config::VaultRef;
use vaultgate_core::{Error, FastMap, Result};

use crate::live::{Entry, LiveSecrets, SecretOrigin};
use crate::metrics as m;
use crate::paths::PathSource;

/// How long replaced credentials stay valid for requests that had already taken them.
const REVOKE_GRACE: Duration = Duration::from_secs(30);
/// Retry bounds when a replacement fails (Vault down): keep trying while the old values live.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// How often expiring values are looked at when none is due sooner.
const IDLE_CHECK: Duration = Duration::from_secs(60);
/// Upper bound of the revocations at shutdown.
const SHUTDOWN_REVOKE_TIMEOUT: Duration = Duration::from_secs(5);

impl LiveSecrets {
    /// Reads every `vault://` path once (in parallel) into `entries`; what cannot be read goes
    /// to `missing` with the reason. True when a read failed because Vault failed (an outage to
    /// wait out, not a config mistake).
    pub(crate) async fn read_paths(
        &self,
        entries: &mut FastMap<String, Arc<Entry>>,
        missing: &mut Vec<String>,
    ) -> bool {
        let Some(vault) = self.vault() else {
            for source in &self.paths {
                missing.push(format!(
                    "  - vault://{} (used at {}): no Vault configured",
                    source.path,
                    source.places()
                ));
            }
            return false;
        };
        let mut vault_failed = false;
        // All paths at once (a config names a handful); a closure-mapped stream here would
        // make the start-up future not `Send` for every lifetime.
        let reads =
            futures_util::future::join_all(self.paths.iter().map(|source| read_one(source, vault)))
                .await;
        for (source, result) in reads {
            match result {
                Ok((values, _)) => {
                    tracing::info!(vault_path = %vault.path_url(&source.path),
                        fields = values.len(), leased = source.status(vault).leased,
                        "vault:// reference read");
                    entries.extend(entry_changes(vault, source, values));
                }
                Err(error) => {
                    // Vault unreachable, sealed, or failing: not the config's fault.
                    vault_failed |= matches!(&error,
                        Error::Vault { status, .. } if status.is_none_or(|s| s >= 500 || s == 429));
                    missing.push(format!(
                        "  - vault://{} (used at {}): {error}",
                        source.path,
                        source.places()
                    ));
                }
            }
        }
        vault_failed
    }

    /// Re-reads one path and swaps all its fields in at once; retires its previous lease.
    async fn reread(&self, source: &PathSource) -> Result<bool> {
        let Some(vault) = self.vault() else {
            return Ok(false);
        };
        let _serial = self.refresh_lock.lock().await;
        let (values, _) = source.read(vault).await?;
        let current = self.snapshot();
        let changed = values.iter().any(|(key, value)| {
            current.get(key) != Some(secrecy::ExposeSecret::expose_secret(value))
        });
        self.apply(entry_changes(vault, source, values));
        drop(_serial);
        self.revoke_retired_later(source);
        Ok(changed)
    }

    /// Re-reads the KV paths (values that do not expire); the refresh interval's work.
    pub(crate) async fn refresh_lasting_paths(&self) -> Result<usize> {
        let mut changed = 0;
        let mut first_error = None;
        for source in &self.paths {
            let lasting = source
                .state
                .lock()
                .map(|s| s.replace_in().is_none())
                .unwrap_or(false);
            if !lasting {
                continue;
            }
            match self.reread(source).await {
                Ok(true) => changed += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(vault_path = %source.path, %error,
                        "re-reading a vault:// path failed; keeping the last values");
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(changed),
        }
    }

    /// Whether the values of `reference` expired without Vault issuing new ones: the
    /// deployments using them cannot be called until it does.
    pub fn is_expired(&self, reference: &VaultRef) -> bool {
        self.paths
            .iter()
            .find(|s| s.has(reference))
            .is_some_and(PathSource::expired)
    }

    /// The "upstream refused it" path: re-reads (for a lease: re-issues) the path behind
    /// `reference` now, at most once every few seconds; `Ok(true)` when the values changed.
    pub(crate) async fn reread_path_of(&self, reference: &VaultRef) -> Result<bool> {
        let Some(source) = self.paths.iter().find(|s| s.has(reference)) else {
            return Ok(false);
        };
        if !source.may_reread() {
            return Ok(false);
        }
        self.reread(source).await
    }

    /// Renews or replaces expiring values (leases, tokens) at about 2/3 of their lifetime
    /// until `shutdown`; a failure is retried with backoff while the old values serve.
    pub(crate) async fn replace_expiring(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = RETRY_MIN;
        loop {
            let due = self
                .paths
                .iter()
                .filter_map(|s| s.state.lock().ok().and_then(|st| st.replace_in()))
                .min()
                .unwrap_or(IDLE_CHECK)
                .max(Duration::from_millis(200));
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(due) => {}
            }
            let mut failed = false;
            for source in &self.paths {
                let is_due = source
                    .state
                    .lock()
                    .ok()
                    .and_then(|st| st.replace_in())
                    .is_some_and(|left| left.is_zero());
                if !is_due {
                    continue;
                }
                if let Err(error) = self.renew_or_reissue(source).await {
                    failed = true;
                    source.note_error(&error);
                    tracing::warn!(vault_path = %source.path, %error,
                        "Vault could not renew or issue credentials; the current ones serve until they expire");
                }
            }
            if failed {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RETRY_MAX);
            } else {
                backoff = RETRY_MIN;
            }
        }
    }

    /// Renews the lease of `source` when Vault allows it; otherwise, or when Vault caps the
    /// renewal near the lease's max TTL, has new values issued (the old lease is retired).
    async fn renew_or_reissue(&self, source: &PathSource) -> Result<()> {
        if let (Some(vault), Some((lease, granted))) = (self.vault(), source.renewable_lease()) {
            match vault.renew_lease(&lease, granted).await {
                Ok(left) if left >= granted / 2 => {
                    source.renewed(&lease, left);
                    m::lease_renewed();
                    tracing::info!(vault_path = %source.path, ttl_secs = left.as_secs(),
                        "Vault lease renewed");
                    return Ok(());
                }
                Ok(left) => tracing::info!(vault_path = %source.path, ttl_secs = left.as_secs(),
                    "Vault lease near its max TTL; having new credentials issued"),
                Err(error) => tracing::warn!(vault_path = %source.path, %error,
                    "renewing the Vault lease failed; having new credentials issued"),
            }
        }
        self.reread(source).await?;
        m::lease_reissued();
        tracing::info!(vault_path = %source.path, "new credentials issued by Vault and swapped in");
        Ok(())
    }

    fn revoke_retired_later(&self, source: &PathSource) {
        let retired = source.take_retired();
        let Some(vault) = self.vault().cloned() else {
            return;
        };
        if retired.is_empty() {
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(REVOKE_GRACE).await;
            revoke(&vault, retired).await;
        });
    }

    /// Revokes every lease this process holds (graceful shutdown), within a few seconds.
    pub async fn revoke_leases(&self) {
        let Some(vault) = self.vault() else {
            return;
        };
        let mut leases = Vec::new();
        for source in &self.paths {
            leases.extend(source.take_retired());
            leases.extend(source.take_lease());
        }
        if leases.is_empty() {
            return;
        }
        let count = leases.len();
        if tokio::time::timeout(SHUTDOWN_REVOKE_TIMEOUT, revoke(vault, leases))
            .await
            .is_err()
        {
            tracing::warn!("revoking Vault leases at shutdown timed out");
        } else {
            tracing::info!(count, "Vault leases revoked");
        }
    }
}

async fn revoke(vault: &crate::VaultClient, leases: Vec<SecretString>) {
    for lease in leases {
        if let Err(error) = vault.revoke_lease(&lease).await {
            tracing::warn!(%error, "revoking a Vault lease failed; it expires by itself");
        }
    }
}

async fn read_one<'a>(
    source: &'a PathSource,
    vault: &crate::VaultClient,
) -> (
    &'a PathSource,
    Result<(Vec<(String, SecretString)>, crate::PathRead)>,
) {
    (source, source.read(vault).await)
}

/// The snapshot entries of one path's fields.
fn entry_changes(
    vault: &crate::VaultClient,
    source: &PathSource,
    values: Vec<(String, SecretString)>,
) -> Vec<(String, Arc<Entry>)> {
    let path = vault.path_url(&source.path);
    values
        .into_iter()
        .map(|(key, value)| {
            let origin = SecretOrigin::Vault { path: path.clone() };
            (key, Arc::new(Entry { value, origin }))
        })
        .collect()
}
