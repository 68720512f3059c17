//! The Vault mirror seam. This crate only knows the trait; the server implements it with the Vault
//! client, with the prefix (`KeyManagementSettings::virtual_key_prefix()`) applied by the impl.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;
use vaultgate_core::Result;

/// Where virtual keys are copied (Vault KV v2 under the configured prefix).
/// Every `name` is relative to the prefix: `my-alias` or `virtual-key-<sha256 hex>`.
#[async_trait]
pub trait SecretMirror: Send + Sync {
    /// Writes the raw key as the secret's value (`data.key`), with `description` beside it and
    /// `metadata` as the secret's custom metadata. Overwrites an existing secret.
    async fn put(
        &self,
        name: &str,
        raw_key: &SecretString,
        description: Option<&str>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()>;

    /// Reads the raw key back; `None` when absent or deleted. Used to move a key's copy when its
    /// alias is renamed through `/key/update` with the key given by hash (no raw key at hand).
    async fn get(&self, name: &str) -> Result<Option<SecretString>>;

    /// Deletes the secret; succeeding when it is already absent.
    async fn delete(&self, name: &str) -> Result<()>;

    /// Names of the secrets under the prefix (for the drift report).
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
    /// Keys whose Vault copy is missing.
    pub keys_without_secret: Vec<DriftKey>,
    /// Secrets under the prefix that no key owns (and that are not queued for deletion).
    pub secrets_without_key: Vec<String>,
    /// Secrets queued for deletion in the outbox (still in Vault until the retry succeeds).
    pub pending_deletions: Vec<String>,
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
}
