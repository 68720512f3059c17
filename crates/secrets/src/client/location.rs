//! A client scoped to another KV v2 location (namespace, mount, path prefix) than the settings'
//! — a team's Vault settings — sharing the token, the HTTP client and the renewal of the one it
//! was made from.

use std::sync::Arc;

use vaultgate_core::Result;

use super::{VaultClient, segments};

/// Where KV calls go: `{namespace}/{mount}/data/{path_prefix}/…`. A field left `None` is the
/// settings' (`HCP_VAULT_SECRET_NAMESPACE`, `HCP_VAULT_MOUNT_NAME`, `HCP_VAULT_PATH_PREFIX`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvLocation {
    pub namespace: Option<String>,
    pub mount: Option<String>,
    pub path_prefix: Option<String>,
}

impl VaultClient {
    /// The same client with KV calls (and `capabilities-self`) going to `location`.
    pub fn at_location(&self, location: KvLocation) -> VaultClient {
        VaultClient {
            inner: self.inner.clone(),
            location: Some(Arc::new(location)),
        }
    }

    pub(crate) fn kv_namespace(&self) -> Option<&str> {
        self.location
            .as_ref()
            .and_then(|l| l.namespace.as_deref())
            .or(self.inner.settings.secret_namespace.as_deref())
    }

    pub(crate) fn kv_mount(&self) -> &str {
        self.location
            .as_ref()
            .and_then(|l| l.mount.as_deref())
            .unwrap_or(&self.inner.settings.mount)
    }

    pub(crate) fn kv_path_prefix(&self) -> Option<&str> {
        self.location
            .as_ref()
            .and_then(|l| l.path_prefix.as_deref())
            .or(self.inner.settings.path_prefix.as_deref())
    }

    /// The capabilities a KV v2 folder `dir` (relative to the path prefix) is missing for the
    /// virtual-key copies: `(policy path, capability)` pairs, empty when the token has them all.
    /// Asked of `sys/capabilities-self` for a name inside the folder, so `…/*` policies count.
    pub async fn missing_kv_capabilities(&self, dir: &str) -> Result<Vec<(String, String)>> {
        let probe = format!("{}/vaultgate-capability-probe", dir.trim_end_matches('/'));
        let folder = self.policy_path("metadata", dir.trim_end_matches('/'))?;
        let checks = [
            (
                self.policy_path("data", &probe)?,
                &["create", "read", "update", "delete"][..],
            ),
            (
                self.policy_path("metadata", &probe)?,
                &["create", "update"][..],
            ),
            (format!("{folder}/"), &["list"][..]),
        ];
        let mut missing = Vec::new();
        for (path, wanted) in checks {
            let held = self.capabilities_self(&path).await?;
            if held.iter().any(|c| c == "root") {
                continue;
            }
            for capability in wanted {
                if !held.iter().any(|c| c == capability) || held.iter().any(|c| c == "deny") {
                    missing.push((path.clone(), (*capability).to_owned()));
                }
            }
        }
        Ok(missing)
    }
}

/// The parts of a policy path below the mount: `kind/prefix/name`.
pub(crate) fn below_mount<'a>(
    kind: &'a str,
    prefix: Option<&'a str>,
    name: &'a str,
) -> Vec<&'a str> {
    let mut parts = vec![kind];
    parts.extend(segments(prefix.unwrap_or("")));
    parts.extend(segments(name));
    parts
}
