//! The `vault://mount/path#field` references of a config, grouped by what one read fetches:
//! every field of one path comes from the same read (the same credentials of a dynamic engine),
//! and a new read replaces all of them in one swap.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use vaultgate_config::{Config, VaultRef};
use vaultgate_core::{Error, Result};

use crate::client::{PathRead, VaultClient};

/// A re-read on the "upstream refused it" path happens at most this often per path.
const REREAD_MIN_GAP: Duration = Duration::from_secs(5);

/// One path read from Vault and the references that take fields of it.
pub(crate) struct PathSource {
    pub(crate) path: String,
    pub(crate) version: Option<u64>,
    /// `(reference, where it is used)`, in file order.
    pub(crate) refs: Vec<(VaultRef, Vec<String>)>,
    /// The ids of the deployments that take a field of it.
    pub(crate) deployments: Vec<String>,
    pub(crate) state: Mutex<SourceState>,
}

#[derive(Default)]
pub(crate) struct SourceState {
    pub(crate) read_at: Option<Instant>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_reread: Option<Instant>,
    /// The lease of the values in use, when the engine issued one.
    pub(crate) lease: Option<ActiveLease>,
    /// How long the values in use are good for without a lease (a token's TTL).
    pub(crate) ttl: Option<Duration>,
    /// Leases of values replaced by newer ones, revoked once in-flight requests had time to
    /// finish with them.
    pub(crate) retired: Vec<SecretString>,
    pub(crate) reissues: u64,
    pub(crate) renewals: u64,
}

pub(crate) struct ActiveLease {
    pub(crate) id: SecretString,
    /// Since when `duration` counts: the issue, or the last renewal.
    pub(crate) obtained: Instant,
    pub(crate) duration: Duration,
    /// The duration Vault granted at issue: what a renewal asks for again.
    pub(crate) granted: Duration,
    pub(crate) renewable: bool,
}

impl SourceState {
    /// When the values in use must be replaced: at about 2/3 of their lifetime. `None` for
    /// values that do not expire (KV), which the refresh interval re-reads.
    pub(crate) fn replace_in(&self) -> Option<Duration> {
        let (obtained, life) = match (&self.lease, self.ttl) {
            (Some(lease), _) => (lease.obtained, lease.duration),
            (None, Some(ttl)) => (self.read_at?, ttl),
            (None, None) => return None,
        };
        Some(life.mul_f64(2.0 / 3.0).saturating_sub(obtained.elapsed()))
    }

    /// How long the values in use have left, when they expire.
    pub(crate) fn time_left(&self) -> Option<Duration> {
        let (obtained, life) = match (&self.lease, self.ttl) {
            (Some(lease), _) => (lease.obtained, lease.duration),
            (None, Some(ttl)) => (self.read_at?, ttl),
            (None, None) => return None,
        };
        Some(life.saturating_sub(obtained.elapsed()))
    }

    /// Whether values that expire have run out without being replaced.
    pub(crate) fn is_expired(&self) -> bool {
        self.time_left().is_some_and(|left| left.is_zero())
    }

    /// Seconds the values in use have left, when they expire.
    pub(crate) fn ttl_left(&self) -> Option<u64> {
        self.time_left().map(|left| left.as_secs())
    }
}

/// What readiness and `check` show of one path (never a value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathStatus {
    pub path: String,
    pub fields: Vec<String>,
    /// Seconds since the last successful read.
    pub age_secs: Option<u64>,
    /// Seconds the values have left, when they expire (a lease, a token).
    pub ttl_secs: Option<u64>,
    pub leased: bool,
    /// Whether Vault lets the lease in use be renewed (false without a lease).
    pub renewable: bool,
    /// Times new values were issued after the first.
    pub reissues: u64,
    /// Times the lease of the values in use was renewed.
    pub renewals: u64,
    /// The values expired and Vault has not given new ones: the deployments using them
    /// cannot be called.
    pub expired: bool,
    /// The ids of the deployments that use it.
    pub deployments: Vec<String>,
    pub last_error: Option<String>,
}

/// The config's `vault://` references by path, in file order of first use.
pub(crate) fn path_sources(config: &Config) -> Vec<PathSource> {
    let mut sources: Vec<PathSource> = Vec::new();
    for (reference, place) in config.vault_references() {
        let (path, version) = reference.location();
        let source = match sources
            .iter_mut()
            .position(|s| s.path == path && s.version == version)
        {
            Some(index) => &mut sources[index],
            None => {
                sources.push(PathSource {
                    path: path.to_owned(),
                    version,
                    refs: Vec::new(),
                    deployments: Vec::new(),
                    state: Mutex::new(SourceState::default()),
                });
                let last = sources.len() - 1;
                &mut sources[last]
            }
        };
        if let Some(id) = deployment_of(config, &place)
            && !source.deployments.contains(&id)
        {
            source.deployments.push(id);
        }
        match source.refs.iter_mut().find(|(r, _)| *r == reference) {
            Some((_, places)) => places.push(place),
            None => source.refs.push((reference, vec![place])),
        }
    }
    sources
}

/// The id of the deployment a config place (`model_list[2].litellm_params.api_key`) is in.
fn deployment_of(config: &Config, place: &str) -> Option<String> {
    let index: usize = place
        .strip_prefix("model_list[")?
        .split_once(']')?
        .0
        .parse()
        .ok()?;
    let entry = config.model_list.get(index)?;
    Some(vaultgate_config::deployment_id(index, entry))
}

impl PathSource {
    /// Reads the path and picks each reference's field: `(reference key, value)` for all of
    /// them, or an error naming what is missing (the fields Vault has, never their values).
    pub(crate) async fn read(
        &self,
        vault: &VaultClient,
    ) -> Result<(Vec<(String, SecretString)>, PathRead)> {
        let url = vault.path_url(&self.path);
        let result = vault.read_path(&self.path, self.version).await;
        let read = match result {
            Ok(Some(read)) => read,
            Ok(None) => {
                return Err(self.failed(Error::vault(
                    format!("{url}: nothing there (404)"),
                    Some(404),
                )));
            }
            Err(error) => return Err(self.failed(error)),
        };
        let mut values = Vec::with_capacity(self.refs.len());
        for (reference, _) in &self.refs {
            match read.fields.get(reference.field()) {
                Some(value) => values.push((
                    reference.as_str().to_owned(),
                    SecretString::from(value.expose_secret().to_owned()),
                )),
                None => {
                    let fields: Vec<&str> = read.fields.keys().map(String::as_str).collect();
                    return Err(self.failed(Error::vault(
                        format!(
                            "{url} has no field `{}` (fields: {})",
                            reference.field(),
                            fields.join(", ")
                        ),
                        Some(200),
                    )));
                }
            }
        }
        if let Ok(mut state) = self.state.lock() {
            let now = Instant::now();
            if state.read_at.is_some() {
                state.reissues += 1;
            }
            state.read_at = Some(now);
            state.last_error = None;
            state.ttl = read.ttl;
            let new = read.lease.as_ref().map(|lease| ActiveLease {
                id: SecretString::from(lease.id.expose_secret().to_owned()),
                obtained: now,
                duration: lease.duration,
                granted: lease.duration,
                renewable: lease.renewable,
            });
            if let Some(old) = std::mem::replace(&mut state.lease, new) {
                state.retired.push(old.id);
            }
        }
        Ok((values, read))
    }

    fn failed(&self, error: Error) -> Error {
        self.note_error(&error);
        error
    }

    /// The lease in use and the duration to ask for, when Vault lets it be renewed.
    pub(crate) fn renewable_lease(&self) -> Option<(SecretString, Duration)> {
        let state = self.state.lock().ok()?;
        let lease = state.lease.as_ref().filter(|l| l.renewable)?;
        Some((
            SecretString::from(lease.id.expose_secret().to_owned()),
            lease.granted,
        ))
    }

    /// Notes a renewal of lease `id` for `duration` from now (unless new values replaced it
    /// meanwhile).
    pub(crate) fn renewed(&self, id: &SecretString, duration: Duration) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let Some(lease) = state
            .lease
            .as_mut()
            .filter(|l| l.id.expose_secret() == id.expose_secret())
        else {
            return;
        };
        lease.obtained = Instant::now();
        lease.duration = duration;
        state.renewals += 1;
        state.last_error = None;
    }

    /// Notes a failed renewal or re-issue (the values in use serve until they expire).
    pub(crate) fn note_error(&self, error: &Error) {
        if let Ok(mut state) = self.state.lock() {
            state.last_error = Some(error.to_string());
        }
    }

    /// Whether values that expire have run out without being replaced.
    pub(crate) fn expired(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.is_expired())
    }

    /// Whether an on-demand re-read may happen now (and notes it).
    pub(crate) fn may_reread(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let now = Instant::now();
        if state
            .last_reread
            .is_some_and(|at| now.duration_since(at) < REREAD_MIN_GAP)
        {
            return false;
        }
        state.last_reread = Some(now);
        true
    }

    /// Leases of replaced values, to revoke now.
    pub(crate) fn take_retired(&self) -> Vec<SecretString> {
        self.state
            .lock()
            .map(|mut s| std::mem::take(&mut s.retired))
            .unwrap_or_default()
    }

    /// The lease of the values in use (for revocation at shutdown).
    pub(crate) fn take_lease(&self) -> Option<SecretString> {
        self.state
            .lock()
            .ok()
            .and_then(|mut s| s.lease.take().map(|l| l.id))
    }

    pub(crate) fn has(&self, reference: &VaultRef) -> bool {
        self.refs.iter().any(|(r, _)| r == reference)
    }

    /// Where the path's references are used, joined for messages.
    pub(crate) fn places(&self) -> String {
        self.refs
            .iter()
            .flat_map(|(_, places)| places.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn status(&self, vault: &VaultClient) -> PathStatus {
        let path = vault.path_url(&self.path);
        let fields = self
            .refs
            .iter()
            .map(|(r, _)| r.field().to_owned())
            .collect();
        match self.state.lock() {
            Ok(state) => PathStatus {
                path,
                fields,
                age_secs: state.read_at.map(|at| at.elapsed().as_secs()),
                ttl_secs: state.ttl_left(),
                leased: state.lease.is_some(),
                renewable: state.lease.as_ref().is_some_and(|l| l.renewable),
                reissues: state.reissues,
                renewals: state.renewals,
                expired: state.is_expired(),
                deployments: self.deployments.clone(),
                last_error: match (&state.last_error, state.is_expired()) {
                    (error, true) => Some(format!(
                        "the values expired and Vault has not issued new ones{}; deployments that cannot be called: {}",
                        error
                            .as_ref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default(),
                        if self.deployments.is_empty() {
                            "none".to_owned()
                        } else {
                            self.deployments.join(", ")
                        }
                    )),
                    (error, false) => error.clone(),
                },
            },
            Err(_) => PathStatus {
                path,
                fields,
                age_secs: None,
                ttl_secs: None,
                leased: false,
                renewable: false,
                reissues: 0,
                renewals: 0,
                expired: false,
                deployments: self.deployments.clone(),
                last_error: Some("state poisoned".into()),
            },
        }
    }
}
