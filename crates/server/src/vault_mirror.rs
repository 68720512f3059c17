//! Virtual keys mirrored into Vault: the key service's [`SecretMirror`] on our Vault client,
//! under `prefix_for_stored_virtual_keys`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use vaultgate_core::{Result, SecretString};
use vaultgate_keys::SecretMirror;
use vaultgate_secrets::VaultClient;

pub struct VaultMirror {
    client: VaultClient,
    /// Ends with `/` (or is empty), e.g. `litellm/`.
    prefix: String,
}

impl VaultMirror {
    pub fn new(client: VaultClient, prefix: String) -> Self {
        Self { client, prefix }
    }

    fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

#[async_trait]
impl SecretMirror for VaultMirror {
    async fn put(
        &self,
        name: &str,
        raw_key: &SecretString,
        description: Option<&str>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.client
            .write_secret(&self.path(name), raw_key, description, metadata)
            .await
    }

    async fn get(&self, name: &str) -> Result<Option<SecretString>> {
        self.client.read_secret(&self.path(name)).await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.client.delete_secret(&self.path(name)).await
    }

    async fn list(&self) -> Result<Vec<String>> {
        self.client
            .list_secrets(self.prefix.trim_end_matches('/'))
            .await
    }
}
