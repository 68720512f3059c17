//! A team's Vault location for its keys' copies (`metadata.secret_manager_settings`, see
//! [`crate::vault_location`]): checked when saved, and a change moves the copies. A move writes
//! every copy at the new location first; only when all are there does the transaction that
//! saves the team point its keys at them and queue the old copies for deletion. A failure on
//! the way undoes the new copies through the outbox and changes nothing.

use secrecy::{ExposeSecret, SecretString};
use vaultgate_core::{Error, Result};

use super::model::TeamRecord;
use crate::model::{KeyRecord, hash_key, secret_name};
use crate::state::Inner;
use crate::store::{self, ListFilter, Tx, db_err};
use crate::vault_copy::{mirror_error, write_copy};
use crate::vault_location::{CopyAddr, Location};

/// A key's copy written at its team's new location, not yet recorded.
pub(crate) struct Move {
    record: KeyRecord,
    from: String,
}

impl Inner {
    /// Where the copies of a team's keys go (the gateway's location without a team).
    pub(crate) async fn team_location(&self, team_id: Option<&str>) -> Result<Location> {
        let Some(team_id) = team_id else {
            return Ok(Location::default());
        };
        match self.team_record(team_id).await? {
            Some(team) => Location::of_metadata(&team.metadata),
            None => Ok(Location::default()),
        }
    }

    /// The address a key's copy should have: its name at its team's location.
    pub(crate) async fn copy_addr(&self, record: &KeyRecord) -> Result<String> {
        let location = self.team_location(record.team_id.as_deref()).await?;
        let name = secret_name(record.key_alias.as_deref(), &record.token);
        Ok(CopyAddr::new(location, name).encode())
    }
}

/// The location of a team as saved, refused (403) when the gateway's token may not keep
/// copies there. Without a mirror the settings are only validated.
pub(crate) async fn checked_location(inner: &Inner, team: &TeamRecord) -> Result<Location> {
    let location = Location::of_metadata(&team.metadata)?;
    if let Some(mirror) = &inner.mirror
        && !location.is_default()
    {
        mirror.check_access(&location).await.map_err(|e| match e {
            Error::Forbidden(_) | Error::BadRequest { .. } => e,
            other => mirror_error("capabilities", &other),
        })?;
    }
    Ok(location)
}

/// Writes the copy of every key of `team_id` that has one at `to`. All or nothing: when one
/// fails, the copies written so far are queued for deletion and the error returned.
pub(crate) async fn write_moved(inner: &Inner, team_id: &str, to: &Location) -> Result<Vec<Move>> {
    let Some(mirror) = &inner.mirror else {
        return Ok(Vec::new());
    };
    let keys = inner
        .keys_where(ListFilter {
            team_id: Some(team_id.to_owned()),
            ..ListFilter::default()
        })
        .await?;
    let mut moves: Vec<Move> = Vec::new();
    for key in keys {
        let Some(from) = key.vault_secret_name.clone() else {
            continue;
        };
        let target = CopyAddr::new(to.clone(), CopyAddr::parse(&from).name).encode();
        if target == from {
            continue;
        }
        let value = match current_value(inner, &key, &from).await {
            Ok(value) => value,
            Err(e) => {
                undo(inner, &moves).await;
                return Err(e);
            }
        };
        let mut record = key;
        record.vault_secret_name = Some(target.clone());
        if let Err(failure) = write_copy(mirror, &target, &value, &record).await {
            tracing::warn!(team = team_id, key = %record.key_name, error = %failure.error, "team's Vault location not changed: a copy could not be written");
            undo(inner, &moves).await;
            if failure.touched {
                inner.outbox.queue_and_repair(&target).await;
            }
            return Err(failure.error);
        }
        moves.push(Move { record, from });
    }
    Ok(moves)
}

/// The raw key a copy holds; a copy that is gone or holds another key cannot be moved.
async fn current_value(inner: &Inner, key: &KeyRecord, from: &str) -> Result<SecretString> {
    let Some(mirror) = &inner.mirror else {
        return Err(Error::Internal("no Vault mirror".into()));
    };
    let read = mirror
        .read(from, None)
        .await
        .map_err(|e| mirror_error("read", &e))?;
    match read.value() {
        Some(value) if hash_key(value.expose_secret()) == key.token => Ok(value.clone()),
        _ => Err(Error::bad_param(
            "metadata",
            format!(
                "cannot move the Vault copy of key {} ('{from}'): it is missing or holds another \
                 key; repair it (vaultgate check, the console's Vault page) or regenerate the key \
                 first",
                key.key_name
            ),
        )),
    }
}

/// Inside the transaction saving the team: the keys point at their new copies and the old
/// ones are queued for deletion.
pub(crate) async fn record_moved(tx: &mut Tx, moves: &[Move], now: i64) -> Result<()> {
    for m in moves {
        let target = m.record.vault_secret_name.as_deref().unwrap_or_default();
        store::outbox_cancel(tx, target).await.map_err(db_err)?;
        store::update_key(tx, &m.record.token, &m.record)
            .await
            .map_err(db_err)?;
        store::outbox_add(tx, &m.from, now).await.map_err(db_err)?;
    }
    Ok(())
}

/// The team was not saved: the new copies go (no key owns them).
pub(crate) async fn undo(inner: &Inner, moves: &[Move]) {
    for m in moves {
        if let Some(target) = &m.record.vault_secret_name {
            inner.outbox.queue_and_repair(target).await;
        }
    }
}

/// The team was saved: the old copies go now (or by the outbox worker).
pub(crate) async fn finish(inner: &Inner, moves: &[Move]) {
    for m in moves {
        inner.invalidate(&m.record.token);
        inner.outbox.repair_now(&m.from).await;
        tracing::info!(key = %m.record.key_name, from = %m.from, to = ?m.record.vault_secret_name, "Vault copy moved with its team's settings");
    }
}
