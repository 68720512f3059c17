//! Drift between the key table and the Vault copies, for `vaultgate check`.

use std::collections::HashSet;

use vaultgate_core::Result;

use crate::mirror::{DriftKey, DriftReport, MirrorConfig};
use crate::model::secret_name;
use crate::store::Store;
use crate::vault_copy::unavailable;

/// Keys without a Vault copy and copies without a key.
pub(crate) async fn report(mirror: &MirrorConfig, store: &Store) -> Result<DriftReport> {
    let secrets: HashSet<String> = mirror
        .mirror
        .list()
        .await
        .map_err(|e| unavailable("list", &e))?
        .into_iter()
        .collect();
    let pending = store.outbox_all().await?;
    let keys = store.all_keys().await?;
    let mut report = DriftReport::default();
    let mut owned = HashSet::new();
    for key in keys {
        let expected = key
            .vault_secret_name
            .clone()
            .unwrap_or_else(|| secret_name(key.key_alias.as_deref(), &key.token));
        if !secrets.contains(&expected) {
            report.keys_without_secret.push(DriftKey {
                token: key.token.clone(),
                key_name: key.key_name.clone(),
                key_alias: key.key_alias.clone(),
                expected_secret: expected.clone(),
            });
        }
        owned.insert(expected);
    }
    let pending_set: HashSet<&String> = pending.iter().collect();
    let mut orphans: Vec<String> = secrets
        .iter()
        .filter(|s| !s.ends_with('/') && !owned.contains(*s) && !pending_set.contains(s))
        .cloned()
        .collect();
    orphans.sort();
    report.secrets_without_key = orphans;
    report.pending_deletions = pending
        .into_iter()
        .filter(|p| secrets.contains(p))
        .collect();
    Ok(report)
}
