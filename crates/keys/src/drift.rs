//! Drift between the key table and the Vault copies, for `vaultgate check`. Every location in
//! use (the gateway's, each team's, and wherever a key's copy or a queued repair points) is
//! listed (folders descended), and every listed address and every key's expected address is
//! read, so a copy is judged by what it holds: a key's copy must be readable and hold that key;
//! a soft-deleted or destroyed secret no key owns is what an ordinary delete leaves behind, not
//! drift.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use secrecy::ExposeSecret;
use tokio::task::JoinSet;
use vaultgate_core::{Error, Result};

use crate::mirror::{CopyState, DriftKey, DriftReport, LocationReport, MirrorConfig};
use crate::model::{hash_key, secret_name};
use crate::store::Store;
use crate::vault_copy::mirror_error;
use crate::vault_location::{CopyAddr, Location};

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

/// Keys without a Vault copy and copies without a key, at every location; `teams` are the
/// teams and their locations (the directory's), so each location's report names its teams.
pub(crate) async fn report(
    mirror: &MirrorConfig,
    store: &Store,
    teams: &[(String, Location)],
) -> Result<DriftReport> {
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
    let mut locations: BTreeMap<Location, LocationReport> = BTreeMap::new();
    let mut wanted: Vec<(Location, Option<&String>)> = vec![(Location::default(), None)];
    wanted.extend(
        teams
            .iter()
            .map(|(team, location)| (location.clone(), Some(team))),
    );
    wanted.extend(
        expected
            .iter()
            .chain(&pending)
            .map(|addr| (CopyAddr::parse(addr).location, None)),
    );
    for (location, team) in wanted {
        let at = locations
            .entry(location.clone())
            .or_insert_with(|| LocationReport {
                location: location.encode(),
                description: location.to_string(),
                ..LocationReport::default()
            });
        if let Some(team) = team {
            at.teams.push(team.clone());
        }
    }
    let mut listed: BTreeSet<String> = BTreeSet::new();
    for (location, at) in &mut locations {
        match mirror.list(location).await {
            Ok(names) => listed.extend(names),
            Err(e) => at.error = Some(mirror_error("list", &e).to_string()),
        }
    }
    let names: BTreeSet<String> = listed.iter().chain(&expected).cloned().collect();
    let seen = read_all(mirror, names).await?;

    let mut report = DriftReport::default();
    let mut count = |addr: &str, drift: bool| {
        if let Some(at) = locations.get_mut(&CopyAddr::parse(addr).location) {
            at.copies += usize::from(!drift);
            at.drift += usize::from(drift);
        }
    };
    for (key, name) in keys.iter().zip(&expected) {
        let problem = match seen.get(name) {
            Some(Seen::Holds(token)) if *token == key.token => {
                count(name, false);
                continue;
            }
            Some(Seen::Holds(_) | Seen::Other) => "holds another value",
            Some(Seen::Deleted) => "deleted",
            Some(Seen::Destroyed) => "destroyed",
            Some(Seen::Absent) | None => "missing",
        };
        count(name, true);
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
            Some(Seen::Holds(_) | Seen::Other) => {
                count(name, true);
                report.secrets_without_key.push(name.clone());
            }
            _ => report.deleted_secrets.push(name.clone()),
        }
    }
    report.locations = locations.into_values().collect();
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
            let mirror = mirror.clone();
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
