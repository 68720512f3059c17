//! The Vault mirror seam. This crate only knows the trait; the server implements it with the Vault
//! client, with the prefix (`KeyManagementSettings::virtual_key_prefix()`) applied by the impl.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;
use vaultgate_core::{Error, Result};

use crate::vault_location::{CopyAddr, Location};

/// One version of a copy as read.
#[derive(Debug)]
pub enum CopyState {
    /// Readable: the raw key it holds.
    Live(SecretString),
    /// Soft-deleted: not readable (an operator with the right can undelete it).
    Deleted,
    /// Destroyed: gone for good.
    Destroyed,
    /// Readable but holding no key (not written by the gateway).
    Other,
    /// No such secret, or no version of it.
    Absent,
}

/// What a read saw: the version (0 when the secret has none) and its state.
#[derive(Debug)]
pub struct CopyRead {
    pub version: u64,
    pub state: CopyState,
}

impl CopyRead {
    pub fn value(&self) -> Option<&SecretString> {
        match &self.state {
            CopyState::Live(value) => Some(value),
            _ => None,
        }
    }
}

/// Where virtual keys are copied (Vault KV v2 under the configured prefix).
/// Every `name` is relative to the prefix: `my-alias` or `virtual-key-<sha256 hex>`.
#[async_trait]
pub trait SecretMirror: Send + Sync {
    /// Reads the latest version of `name`, or `version`.
    async fn read(&self, name: &str, version: Option<u64>) -> Result<CopyRead>;

    /// Writes the raw key as the secret's value (`data.key`), with `description` beside it, as a
    /// new version if the latest version is `cas` (0: none yet). Returns the new version, or
    /// `None` when the latest version is another one (nothing written).
    async fn write(
        &self,
        name: &str,
        raw_key: &SecretString,
        description: Option<&str>,
        cas: u64,
    ) -> Result<Option<u64>>;

    /// Sets the secret's custom metadata (creating its metadata entry if there is none).
    async fn write_metadata(&self, name: &str, metadata: &BTreeMap<String, String>) -> Result<()>;

    /// Soft-deletes the latest version; succeeds when it is absent or deleted already.
    async fn delete(&self, name: &str) -> Result<()>;

    /// Names of the secrets under the prefix, folders descended (`team/key`), deleted ones
    /// included (Vault lists a secret while its metadata exists).
    async fn list(&self) -> Result<Vec<String>>;

    /// The same mirror at another location (a team's Vault settings).
    fn at(&self, location: &Location) -> Result<Arc<dyn SecretMirror>> {
        Err(Error::bad_param(
            "metadata",
            format!("this gateway keeps virtual-key copies in one place, not at {location}"),
        ))
    }

    /// The capabilities the token lacks for copies here, as `(policy path, capability)`.
    async fn missing_capabilities(&self) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }
}

/// A configured mirror and the description LiteLLM stores beside each key.
#[derive(Clone)]
pub struct MirrorConfig {
    pub mirror: Arc<dyn SecretMirror>,
    /// `key_management_settings.description`.
    pub description: Option<String>,
}

impl MirrorConfig {
    pub fn new(mirror: Arc<dyn SecretMirror>) -> Self {
        Self {
            mirror,
            description: None,
        }
    }

    pub fn with_description(mut self, description: Option<String>) -> Self {
        self.description = description;
        self
    }

    /// The mirror at `location`.
    pub(crate) fn at(&self, location: &Location) -> Result<Arc<dyn SecretMirror>> {
        if location.is_default() {
            Ok(self.mirror.clone())
        } else {
            self.mirror.at(location)
        }
    }

    /// The mirror of a stored copy address and the name there.
    fn of(&self, stored: &str) -> Result<(Arc<dyn SecretMirror>, String)> {
        let addr = CopyAddr::parse(stored);
        Ok((self.at(&addr.location)?, addr.name))
    }

    /// [`SecretMirror::read`] of a stored address (see [`crate::vault_location`]).
    pub(crate) async fn read(&self, stored: &str, version: Option<u64>) -> Result<CopyRead> {
        let (mirror, name) = self.of(stored)?;
        mirror.read(&name, version).await
    }

    pub(crate) async fn write(
        &self,
        stored: &str,
        raw_key: &SecretString,
        cas: u64,
    ) -> Result<Option<u64>> {
        let (mirror, name) = self.of(stored)?;
        mirror
            .write(&name, raw_key, self.description.as_deref(), cas)
            .await
    }

    pub(crate) async fn write_metadata(
        &self,
        stored: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        let (mirror, name) = self.of(stored)?;
        mirror.write_metadata(&name, metadata).await
    }

    pub(crate) async fn delete(&self, stored: &str) -> Result<()> {
        let (mirror, name) = self.of(stored)?;
        mirror.delete(&name).await
    }

    /// Every copy address listed at `location`.
    pub(crate) async fn list(&self, location: &Location) -> Result<Vec<String>> {
        let names = self.at(location)?.list().await?;
        Ok(names
            .into_iter()
            .map(|name| CopyAddr::new(location.clone(), name).encode())
            .collect())
    }

    /// Refuses (403, naming the policy path and capability) a location the token may not keep
    /// copies at: checked when a team's settings are saved, not at its first key.
    pub(crate) async fn check_access(&self, location: &Location) -> Result<()> {
        let missing = self.at(location)?.missing_capabilities().await?;
        let Some((path, capability)) = missing.first() else {
            return Ok(());
        };
        let all: Vec<String> = missing.iter().map(|(p, c)| format!("{c} on {p}")).collect();
        Err(Error::Forbidden(format!(
            "the gateway's Vault token may not keep virtual-key copies at {location}: it lacks \
             \"{capability}\" on \"{path}\" (missing: {}); add to its policy: path \"{path}\" \
             {{ capabilities = [\"{capability}\"] }}",
            all.join(", ")
        )))
    }
}

/// Differences between the key table and the Vault copies, for `vaultgate check`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DriftReport {
    /// Keys whose Vault copy is missing, deleted, or holds another value.
    pub keys_without_secret: Vec<DriftKey>,
    /// Readable secrets under the prefix that no key owns (and that are not queued in the
    /// outbox).
    pub secrets_without_key: Vec<String>,
    /// Secrets queued in the outbox for deletion or repair.
    pub pending_deletions: Vec<String>,
    /// Soft-deleted or destroyed secrets no key owns: what an ordinary delete leaves behind
    /// (Vault keeps versions until destroyed). Not drift; shown by `check --verbose`.
    pub deleted_secrets: Vec<String>,
    /// Each location in use (the gateway's first, then the teams'), with its teams and counts.
    pub locations: Vec<LocationReport>,
}

impl DriftReport {
    pub fn is_clean(&self) -> bool {
        self.keys_without_secret.is_empty()
            && self.secrets_without_key.is_empty()
            && self.locations.iter().all(|l| l.error.is_none())
    }
}

/// One location of the drift report. Names in the report are addresses: a plain name at the
/// gateway's location, `namespace:mount:path_prefix//name` at a team's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LocationReport {
    /// The address prefix (`namespace:mount:path_prefix`; empty for the gateway's location).
    pub location: String,
    /// In words: `namespace team-a, mount kv-a, path_prefix keys`.
    pub description: String,
    /// Teams whose settings point here.
    pub teams: Vec<String>,
    /// Keys whose copy here holds them.
    pub copies: usize,
    /// Keys without their copy here, and copies here without a key.
    pub drift: usize,
    /// The location could not be listed (a refusal, Vault away).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftKey {
    pub token: String,
    pub key_name: String,
    pub key_alias: Option<String>,
    /// The secret name the key's copy should have.
    pub expected_secret: String,
    /// What is there instead: `missing`, `deleted`, `destroyed` or `holds another value`.
    pub problem: &'static str,
}
