//! The Vault mirror seam. This crate only knows the trait; the server implements it with the Vault
//! client, with the prefix (`KeyManagementSettings::virtual_key_prefix()`) applied by the impl.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;
use vaultgate_core::Result;

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
}

impl DriftReport {
    pub fn is_clean(&self) -> bool {
        self.keys_without_secret.is_empty() && self.secrets_without_key.is_empty()
    }
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
