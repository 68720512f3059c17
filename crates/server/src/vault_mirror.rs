//! Virtual keys mirrored into Vault: the key service's [`SecretMirror`] on our Vault client,
//! under `prefix_for_stored_virtual_keys`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use vaultgate_core::{Result, SecretString};
use vaultgate_keys::{CopyRead, CopyState, Location, SecretMirror};
use vaultgate_secrets::{KvLocation, KvState, VaultClient};

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
    async fn read(&self, name: &str, version: Option<u64>) -> Result<CopyRead> {
        let read = self.client.read_kv(&self.path(name), version).await?;
        let state = match read.state {
            KvState::Live(value) => CopyState::Live(value),
            KvState::Deleted => CopyState::Deleted,
            KvState::Destroyed => CopyState::Destroyed,
            KvState::Other => CopyState::Other,
            KvState::Absent => CopyState::Absent,
        };
        Ok(CopyRead {
            version: read.version,
            state,
        })
    }

    async fn write(
        &self,
        name: &str,
        raw_key: &SecretString,
        description: Option<&str>,
        cas: u64,
    ) -> Result<Option<u64>> {
        self.client
            .write_kv(&self.path(name), raw_key, description, cas)
            .await
    }

    async fn write_metadata(&self, name: &str, metadata: &BTreeMap<String, String>) -> Result<()> {
        self.client
            .write_kv_metadata(&self.path(name), metadata)
            .await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.client.delete_secret(&self.path(name)).await
    }

    async fn list(&self) -> Result<Vec<String>> {
        self.client.list_kv_tree(&self.prefix).await
    }

    /// A team's location: its namespace and mount instead of the gateway's; its `path_prefix`
    /// instead of both `HCP_VAULT_PATH_PREFIX` and `prefix_for_stored_virtual_keys`.
    fn at(&self, location: &Location) -> Result<Arc<dyn SecretMirror>> {
        let client = self.client.at_location(KvLocation {
            namespace: location.namespace.clone(),
            mount: location.mount.clone(),
            path_prefix: location.path_prefix.clone(),
        });
        let prefix = match location.path_prefix {
            Some(_) => String::new(),
            None => self.prefix.clone(),
        };
        Ok(Arc::new(Self { client, prefix }))
    }

    async fn missing_capabilities(&self) -> Result<Vec<(String, String)>> {
        self.client.missing_kv_capabilities(&self.prefix).await
    }
}
