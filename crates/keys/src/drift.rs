//! Drift between the key table and the Vault copies, for `vaultgate check`. Every listed name
//! (folders descended) and every key's expected name is read, so a copy is judged by what it
//! holds: a key's copy must be readable and hold that key; a soft-deleted or destroyed secret no
//! key owns is what an ordinary delete leaves behind, not drift.

use std::collections::{BTreeSet, HashMap, HashSet};

use secrecy::ExposeSecret;
use tokio::task::JoinSet;
use vaultgate_core::{Error, Result};

use crate::mirror::{CopyState, DriftKey, DriftReport, MirrorConfig};
use crate::model::{hash_key, secret_name};
use crate::store::Store;
use crate::vault_copy::mirror_error;

/// Reads in flight at once while comparing.
const PARALLEL_READS: usize = 8;

/// What is at a name, reduced to what the report needs (no value kept).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Readable, holding the key with this token (a hash, never the value).
    Holds(String),
    /// Readable but holding no key.
    Other,
    Deleted,
    Destroyed,
    Absent,
}

/// Keys without a Vault copy and copies without a key.
pub(crate) async fn report(mirror: &MirrorConfig, store: &Store) -> Result<DriftReport> {
    let listed: BTreeSet<String> = mirror
        .mirror
        .list()
        .await
        .map_err(|e| mirror_error("list", &e))?
        .into_iter()
        .collect();
    let pending: HashSet<String> = store.outbox_all().await?.into_iter().collect();
    let keys = store.all_keys().await?;
    let expected: Vec<String> = keys
        .iter()
        .map(|key| {
            key.vault_secret_name
                .clone()
                .unwrap_or_else(|| secret_name(key.key_alias.as_deref(), &key.token))
        })
        .collect();
    let names: BTreeSet<String> = listed.iter().chain(&expected).cloned().collect();
    let seen = read_all(mirror, names).await?;

    let mut report = DriftReport::default();
    for (key, name) in keys.iter().zip(&expected) {
        let problem = match seen.get(name) {
            Some(Seen::Holds(token)) if *token == key.token => continue,
            Some(Seen::Holds(_) | Seen::Other) => "holds another value",
            Some(Seen::Deleted) => "deleted",
            Some(Seen::Destroyed) => "destroyed",
            Some(Seen::Absent) | None => "missing",
        };
        report.keys_without_secret.push(DriftKey {
            token: key.token.clone(),
            key_name: key.key_name.clone(),
            key_alias: key.key_alias.clone(),
            expected_secret: name.clone(),
            problem,
        });
    }
    let owned: HashSet<&String> = expected.iter().collect();
    for name in listed.iter().filter(|name| !owned.contains(name)) {
        match seen.get(name) {
            Some(Seen::Holds(_) | Seen::Other) if pending.contains(name) => {
                report.pending_deletions.push(name.clone());
            }
            Some(Seen::Holds(_) | Seen::Other) => report.secrets_without_key.push(name.clone()),
            _ => report.deleted_secrets.push(name.clone()),
        }
    }
    Ok(report)
}

/// Reads every name, a few at a time.
async fn read_all(mirror: &MirrorConfig, names: BTreeSet<String>) -> Result<HashMap<String, Seen>> {
    let mut seen = HashMap::with_capacity(names.len());
    let mut names = names.into_iter();
    let mut reads = JoinSet::new();
    loop {
        while reads.len() < PARALLEL_READS {
            let Some(name) = names.next() else { break };
            let mirror = mirror.mirror.clone();
            reads.spawn(async move {
                let read = mirror.read(&name, None).await;
                (name, read)
            });
        }
        let Some(joined) = reads.join_next().await else {
            return Ok(seen);
        };
        let (name, read) = joined.map_err(|e| Error::Internal(format!("drift read: {e}")))?;
        let read = read.map_err(|e| mirror_error("read", &e))?;
        let state = match read.state {
            CopyState::Live(value) => Seen::Holds(hash_key(value.expose_secret())),
            CopyState::Other => Seen::Other,
            CopyState::Deleted => Seen::Deleted,
            CopyState::Destroyed => Seen::Destroyed,
            CopyState::Absent => Seen::Absent,
        };
        seen.insert(name, state);
    }
}
