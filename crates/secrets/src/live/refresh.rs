//! Keeping the resolved values fresh: the periodic refresher, the on-demand re-read of one
//! secret (an upstream refused it), and how each Vault read result changes the snapshot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use vaultgate_config::ConfigValue;
use vaultgate_core::{Error, Result};

use super::{Entry, LiveSecrets, RefreshState, SecretMap, SecretOrigin};
use crate::metrics as m;

/// `refresh_one` reads a given name at most this often (an upstream 401 storm must not
/// become a Vault storm).
const REFRESH_ONE_MIN_GAP: Duration = Duration::from_secs(5);

impl LiveSecrets {
    /// Swaps in changed values, keeping all other entries.
    pub(crate) fn apply(&self, changes: Vec<(String, Arc<Entry>)>) {
        if changes.is_empty() {
            return;
        }
        self.snapshot.rcu(|current| {
            let mut entries = current.entries.clone();
            for (name, entry) in &changes {
                entries.insert(name.clone(), entry.clone());
            }
            SecretMap { entries }
        });
    }

    /// Handles one Vault read result for `name`; returns the change to apply, if any.
    fn consider(
        &self,
        current: &SecretMap,
        name: &str,
        path: String,
        result: Result<Option<SecretString>>,
        state: &mut RefreshState,
    ) -> (Option<(String, Arc<Entry>)>, Option<Error>) {
        match result {
            Ok(Some(value)) => {
                state.read_at.insert(name.to_owned(), Instant::now());
                state.failed.remove(name);
                let unchanged = current.entries.get(name).is_some_and(|e| {
                    matches!(e.origin, SecretOrigin::Vault { .. })
                        && e.value.expose_secret() == value.expose_secret()
                });
                if unchanged {
                    return (None, None);
                }
                tracing::info!(secret = %name, vault_path = %path, "secret changed in Vault; new value in use");
                let entry = Entry {
                    value,
                    origin: SecretOrigin::Vault { path },
                };
                (Some((name.to_owned(), Arc::new(entry))), None)
            }
            Ok(None) => {
                state.read_at.insert(name.to_owned(), Instant::now());
                state.failed.remove(name);
                if current
                    .entries
                    .get(name)
                    .is_some_and(|e| matches!(e.origin, SecretOrigin::Vault { .. }))
                {
                    tracing::warn!(
                        secret = %name, vault_path = %path,
                        "secret no longer found in Vault; keeping the last value"
                    );
                }
                (None, None)
            }
            Err(error) => {
                let message = error.to_string();
                tracing::warn!(secret = %name, vault_path = %path, error = %message, "refreshing a secret from Vault failed; keeping the last value");
                m::refresh_failure();
                state.failed.insert(name.to_owned(), message);
                (None, Some(error))
            }
        }
    }

    /// Re-reads every Vault-sourced name once and swaps changed values in atomically.
    /// Failures keep the last good value and make readiness `degraded`. Returns how many changed.
    pub async fn refresh_now(&self) -> Result<usize> {
        let paths = self.refresh_lasting_paths().await;
        let names = self.refresh_names().await?;
        Ok(names + paths?)
    }

    /// Re-reads every Vault-sourced `os.environ/` name once; see [`Self::refresh_now`].
    async fn refresh_names(&self) -> Result<usize> {
        if self.vault.is_none() || self.vault_names.is_empty() {
            return Ok(0);
        }
        let _serial = self.refresh_lock.lock().await;
        let reads = self.read_vault_names(self.vault_names.clone()).await;
        let current = self.snapshot.load_full();
        let mut changes = Vec::new();
        let mut first_error = None;
        {
            let mut state = self
                .state
                .lock()
                .map_err(|_| Error::Internal("secrets state poisoned".into()))?;
            for (name, (path, result)) in reads {
                let (change, error) = self.consider(&current, &name, path, result, &mut state);
                changes.extend(change);
                if first_error.is_none() {
                    first_error = error;
                }
            }
            state.last_error = first_error.as_ref().map(ToString::to_string);
            m::stale_secrets(state.failed.len());
        }
        let changed = changes.len();
        self.apply(changes);
        match first_error {
            Some(error) => Err(error),
            None => Ok(changed),
        }
    }

    /// Re-reads one secret now (the "upstream said 401" path); `Ok(true)` when its value
    /// changed. At most one read per name every 5 s; names not read from Vault give `Ok(false)`.
    pub async fn refresh_one(&self, name: &str) -> Result<bool> {
        let Some(vault) = &self.vault else {
            return Ok(false);
        };
        if !self.vault_names.iter().any(|n| n == name) {
            return Ok(false);
        }
        {
            let mut state = self
                .state
                .lock()
                .map_err(|_| Error::Internal("secrets state poisoned".into()))?;
            let now = Instant::now();
            if state
                .last_refresh_one
                .get(name)
                .is_some_and(|at| now.duration_since(*at) < REFRESH_ONE_MIN_GAP)
            {
                return Ok(false);
            }
            state.last_refresh_one.insert(name.to_owned(), now);
        }
        let path = vault.secret_path(name)?;
        let _serial = self.refresh_lock.lock().await;
        let result = vault.read_secret(name).await;
        let current = self.snapshot.load_full();
        let (change, error) = {
            let mut state = self
                .state
                .lock()
                .map_err(|_| Error::Internal("secrets state poisoned".into()))?;
            let outcome = self.consider(&current, name, path, result, &mut state);
            if let Some(error) = &outcome.1 {
                state.last_error = Some(error.to_string());
            } else if state.failed.is_empty() {
                state.last_error = None;
            }
            m::stale_secrets(state.failed.len());
            outcome
        };
        if let Some(error) = error {
            return Err(error);
        }
        let changed = change.is_some();
        self.apply(change.into_iter().collect());
        Ok(changed)
    }

    /// Re-reads the secret behind a config value now (the "upstream refused it" path);
    /// `Ok(true)` when its value changed. Literals never change.
    pub async fn refresh_value(&self, value: &ConfigValue) -> Result<bool> {
        match value {
            ConfigValue::Reference(name) => self.refresh_one(name).await,
            ConfigValue::Vault(reference) => self.reread_path_of(reference).await,
            ConfigValue::Literal(_) => Ok(false),
        }
    }

    /// Re-reads Vault-sourced secrets every refresh interval until `shutdown`.
    pub fn spawn_refresher(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if self.vault.is_none() || (self.vault_names.is_empty() && self.paths.is_empty()) {
                return;
            }
            let expiring = tokio::spawn(Arc::clone(&self).replace_expiring(shutdown.clone()));
            let _expiring = AbortOnDrop(expiring);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.refresh_interval) => {}
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    result = self.refresh_now() => match result {
                        Ok(0) => tracing::debug!("Vault secrets refreshed; none changed"),
                        Ok(changed) => tracing::info!(changed, "Vault secrets refreshed"),
                        Err(error) => tracing::warn!(error = %error, "Vault refresh failed; serving the last good values"),
                    }
                }
            }
        })
    }
}

/// Aborts a task when its owner ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
