//! The write side of the LiteLLM key-management API: generate, update, regenerate, delete,
//! block and unblock, each with its Vault copy kept in step (the copy is written before the key
//! is committed; copies of removed keys go through the outbox). Every write holds the admin lock
//! and invalidates the cached record on this instance.

use std::collections::HashSet;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use vaultgate_core::{Error, Result};

use crate::mirror::CopyState;
use crate::model::{KeyRecord, generate_raw_key, hash_key, is_raw_key, key_name, secret_name};
use crate::request::{Body, KeyFields, Patch};
use crate::state::{Inner, not_found};
use crate::store::{self, db_err, is_unique_violation};
use crate::vault_copy::{mirror_error, write_copy};

/// `POST /key/generate`. The response holds the raw `key`, shown this once.
pub(crate) async fn generate(inner: &Inner, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let fields = KeyFields::parse(&body)?;
    let custom = body.custom_key("key")?;
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    ensure_alias_free(inner, &fields, None).await?;
    let raw = SecretString::from(custom.clone().unwrap_or_else(generate_raw_key));
    let token = hash_key(raw.expose_secret());
    ensure_token_free(inner, &token, "key").await?;
    let mut record = KeyRecord {
        token: token.clone(),
        key_id: uuid::Uuid::new_v4().to_string(),
        key_name: key_name(raw.expose_secret()),
        key_alias: None,
        models: Vec::new(),
        max_budget: None,
        budget_duration: None,
        budget_reset_at: None,
        spend: 0.0,
        metadata: serde_json::Map::new(),
        tpm_limit: None,
        rpm_limit: None,
        max_parallel_requests: None,
        user_id: None,
        team_id: None,
        tags: Vec::new(),
        blocked: false,
        expires: None,
        created_at: now,
        updated_at: now,
        vault_secret_name: None,
    };
    fields.apply(&mut record, now);
    if inner.mirror.is_some() {
        // At the key's team's Vault location (the gateway's without one).
        record.vault_secret_name = Some(inner.copy_addr(&record).await?);
    }

    let mut tx = inner.store.begin().await?;
    store::insert_key(&mut tx, &record)
        .await
        .map_err(|e| map_write_error(e, &record, "key"))?;
    if let (Some(mirror), Some(name)) = (&inner.mirror, &record.vault_secret_name) {
        store::outbox_cancel(&mut tx, name).await.map_err(db_err)?;
        // The copy is written before the key exists: no key without its Vault copy.
        if let Err(failure) = write_copy(mirror, name, &raw, &record).await {
            let _ = tx.rollback().await;
            tracing::warn!(key = %record.key_name, error = %failure.error, "key not created: Vault write failed");
            if failure.touched {
                inner.outbox.queue_and_repair(name).await;
            }
            return Err(failure.error);
        }
    }
    if let Err(e) = tx.commit().await {
        if let Some(name) = &record.vault_secret_name {
            inner.outbox.queue_and_repair(name).await;
        }
        return Err(e);
    }
    inner.invalidate(&token);
    metrics::counter!("vaultgate_key_admin_total", "op" => "generate").increment(1);
    tracing::info!(key = %record.key_name, alias = ?record.key_alias, "virtual key generated");

    Ok(with_raw_key(record.to_json(), &raw, &fields))
}

/// `POST /key/update` (`key` + fields). Renaming the alias moves the Vault copy.
pub(crate) async fn update(inner: &Inner, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let key_input = body.required_string("key")?;
    let fields = KeyFields::parse(&body)?;
    let _admin = inner.admin.lock().await;
    let current = inner.find(&key_input).await?;
    let now = inner.now();
    prepare_change(inner, &current, &fields).await?;
    let mut record = current.clone();
    fields.apply(&mut record, now);
    record.updated_at = now;

    let raw = is_raw_key(&key_input).then(|| SecretString::from(key_input.clone()));
    let record = write_changed(inner, &current, record, raw, &fields, now, "key").await?;
    metrics::counter!("vaultgate_key_admin_total", "op" => "update").increment(1);
    tracing::info!(key = %record.key_name, "virtual key updated");
    let mut response = inner.with_live(record).to_json();
    if let Some(obj) = response.as_object_mut() {
        let token = obj.get("token").cloned().unwrap_or(Value::Null);
        obj.insert("key".into(), token);
    }
    Ok(response)
}

/// `POST /key/regenerate` and `POST /key/{key}/regenerate`: a new raw key with the same
/// settings (optionally changed by the body's fields; `new_key` picks the value). The old key
/// stops working at once; the Vault copy is rewritten with the new value.
pub(crate) async fn regenerate(
    inner: &Inner,
    path_key: Option<&str>,
    request: Value,
) -> Result<Value> {
    let body = Body::from_value(request)?;
    let key_input = match path_key {
        Some(key) if !key.trim().is_empty() => key.trim().to_owned(),
        _ => body.required_string("key")?,
    };
    let fields = KeyFields::parse(&body)?;
    let new_key = body.custom_key("new_key")?;
    let _admin = inner.admin.lock().await;
    let current = inner.find(&key_input).await?;
    let now = inner.now();
    prepare_change(inner, &current, &fields).await?;
    let raw = SecretString::from(new_key.unwrap_or_else(generate_raw_key));
    let new_token = hash_key(raw.expose_secret());
    ensure_token_free(inner, &new_token, "new_key").await?;
    let mut record = current.clone();
    fields.apply(&mut record, now);
    record.token = new_token;
    record.key_name = key_name(raw.expose_secret());
    record.updated_at = now;

    let record = write_changed(
        inner,
        &current,
        record,
        Some(raw.clone()),
        &fields,
        now,
        "new_key",
    )
    .await?;
    metrics::counter!("vaultgate_key_admin_total", "op" => "regenerate").increment(1);
    tracing::info!(old = %current.key_name, new = %record.key_name, "virtual key regenerated");
    Ok(with_raw_key(
        inner.with_live(record).to_json(),
        &raw,
        &fields,
    ))
}

/// A new alias must not be another key's (`current`, the key being changed, keeps its own).
async fn ensure_alias_free(
    inner: &Inner,
    fields: &KeyFields,
    current: Option<&KeyRecord>,
) -> Result<()> {
    let Some(alias) = fields.key_alias.value() else {
        return Ok(());
    };
    let is_other = |key: &KeyRecord| current.is_none_or(|c| c.token != key.token);
    if inner
        .store
        .get_by_alias(alias)
        .await?
        .is_some_and(|key| is_other(&key))
    {
        return Err(duplicate_alias(alias));
    }
    if inner.mirror.is_some() {
        let name = secret_name(Some(alias), "");
        if let Some(other) = inner.store.get_by_copy_name(&name).await?
            && is_other(&other)
        {
            return Err(Error::bad_param(
                "key_alias",
                format!(
                    "key_alias '{alias}' names the Vault secret '{name}', which is the copy of \
                     key {} (key_alias '{}'): aliases that differ only in spaces or repeated \
                     '/' share one Vault path",
                    other.key_name,
                    other.key_alias.as_deref().unwrap_or("")
                ),
            ));
        }
    }
    Ok(())
}

/// A new key value must not be another key's.
async fn ensure_token_free(inner: &Inner, token: &str, field: &str) -> Result<()> {
    if inner.store.get_by_token(token).await?.is_some() {
        return Err(duplicate_key(field));
    }
    Ok(())
}

/// Checks of update and regenerate before the record changes. Called with the admin lock held.
async fn prepare_change(inner: &Inner, current: &KeyRecord, fields: &KeyFields) -> Result<()> {
    ensure_alias_free(inner, fields, Some(current)).await?;
    if !fields.spend.is_absent() {
        // Pending increments would otherwise land on top of the value being set.
        inner.spend.flush().await?;
    }
    Ok(())
}

/// Writes a changed record (update or regenerate) with its Vault side effects. Must be called
/// with the admin lock held.
async fn write_changed(
    inner: &Inner,
    current: &KeyRecord,
    mut record: KeyRecord,
    raw: Option<SecretString>,
    fields: &KeyFields,
    now: i64,
    key_field: &str,
) -> Result<KeyRecord> {
    // What to write to Vault, and which old name to delete afterwards.
    let mut put: Option<(String, SecretString)> = None;
    let mut old_to_delete: Option<String> = None;
    if let Some(mirror) = &inner.mirror {
        // The name at the (new) team's location: a key moved between teams moves its copy.
        let new_name = inner.copy_addr(&record).await?;
        let regenerated = record.token != current.token;
        let renamed = current.vault_secret_name.as_deref() != Some(new_name.as_str());
        if regenerated || renamed {
            let value = match raw {
                Some(raw) => Some(raw),
                None => match &current.vault_secret_name {
                    Some(old) => {
                        let read = mirror
                            .read(old, None)
                            .await
                            .map_err(|e| mirror_error("read", &e))?;
                        match read.state {
                            CopyState::Live(v) if hash_key(v.expose_secret()) == current.token => {
                                Some(v)
                            }
                            _ => {
                                return Err(Error::bad_param(
                                    "key",
                                    format!(
                                        "cannot move the Vault copy of {}: the secret '{old}' is \
                                         missing or holds another key; pass the raw key as \
                                         `key` to rename it",
                                        current.key_name
                                    ),
                                ));
                            }
                        }
                    }
                    None => None,
                },
            };
            match value {
                Some(value) => {
                    if let Some(old) = &current.vault_secret_name
                        && *old != new_name
                    {
                        old_to_delete = Some(old.clone());
                    }
                    record.vault_secret_name = Some(new_name.clone());
                    put = Some((new_name, value));
                }
                None => tracing::warn!(
                    key = %current.key_name,
                    "key has no Vault copy (created before mirroring); pass the raw key to add one"
                ),
            }
        }
    }

    let mut tx = inner.store.begin().await?;
    let matched = store::update_key(&mut tx, &current.token, &record)
        .await
        .map_err(|e| map_write_error(e, &record, key_field))?;
    if !matched {
        let _ = tx.rollback().await;
        return Err(not_found(&current.token));
    }
    if !fields.spend.is_absent() {
        store::set_spend(&mut tx, &record.key_id, record.spend)
            .await
            .map_err(db_err)?;
    }
    if !fields.budget_duration.is_absent() {
        store::set_budget_reset(&mut tx, &record.key_id, record.budget_reset_at)
            .await
            .map_err(db_err)?;
    }
    if let (Some(mirror), Some((name, value))) = (&inner.mirror, &put) {
        store::outbox_cancel(&mut tx, name).await.map_err(db_err)?;
        if let Some(old) = &old_to_delete {
            store::outbox_add(&mut tx, old, now).await.map_err(db_err)?;
        }
        if let Err(failure) = write_copy(mirror, name, value, &record).await {
            let _ = tx.rollback().await;
            tracing::warn!(key = %current.key_name, error = %failure.error, "key not changed: Vault write failed");
            if failure.touched {
                inner.outbox.queue_and_repair(name).await;
            }
            return Err(failure.error);
        }
    }
    if let Err(e) = tx.commit().await {
        // Vault may hold the new value, under a new name or over the old key's copy: the
        // repair makes it what the store says.
        if let Some((name, _)) = &put {
            inner.outbox.queue_and_repair(name).await;
        }
        return Err(e);
    }
    inner.invalidate(&current.token);
    inner.invalidate(&record.token);
    if let Some(live) = inner.live.get(&record.key_id) {
        let mut s = live.lock();
        if !fields.spend.is_absent() {
            s.spend = record.spend;
            s.unflushed = 0.0;
        }
        if !fields.budget_duration.is_absent() {
            s.budget_reset_at = record.budget_reset_at;
        }
    }
    if let Some(old) = old_to_delete {
        inner.outbox.repair_now(&old).await;
    }
    Ok(record)
}

/// `POST /key/delete` with `keys` (raw or hash) or `key_aliases`: `{"deleted_keys": [tokens]}`.
/// The keys stop working at once; their Vault copies are deleted now or by the outbox.
pub(crate) async fn delete(inner: &Inner, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let keys = body
        .string_list("keys")?
        .value()
        .cloned()
        .unwrap_or_default();
    let aliases = body
        .string_list("key_aliases")?
        .value()
        .cloned()
        .unwrap_or_default();
    if keys.is_empty() && aliases.is_empty() {
        return Err(Error::bad_param(
            "keys",
            "keys (or key_aliases) must list at least one key",
        ));
    }
    let _admin = inner.admin.lock().await;
    let mut records: Vec<KeyRecord> = Vec::new();
    for key in &keys {
        records.push(inner.find(key).await?);
    }
    for alias in &aliases {
        match inner.store.get_by_alias(alias).await? {
            Some(record) => records.push(record),
            None => return Err(Error::NotFound(format!("no key with key_alias '{alias}'"))),
        }
    }
    let mut seen = HashSet::new();
    records.retain(|r| seen.insert(r.token.clone()));

    let now = inner.now();
    let mut tx = inner.store.begin().await?;
    for record in &records {
        store::delete_key(&mut tx, &record.token)
            .await
            .map_err(db_err)?;
        // Queued even without a mirror configured now: the copy goes once one is again.
        if let Some(name) = &record.vault_secret_name {
            store::outbox_add(&mut tx, name, now)
                .await
                .map_err(db_err)?;
        }
    }
    tx.commit().await?;
    for record in &records {
        inner.invalidate(&record.token);
        inner.live.remove(&record.key_id);
        tracing::info!(key = %record.key_name, "virtual key deleted");
    }
    metrics::counter!("vaultgate_key_admin_total", "op" => "delete")
        .increment(records.len() as u64);
    if inner.mirror.is_some() {
        for record in &records {
            if let Some(name) = &record.vault_secret_name {
                inner.outbox.repair_now(name).await;
            }
        }
    }
    let deleted: Vec<&str> = records.iter().map(|r| r.token.as_str()).collect();
    Ok(json!({"deleted_keys": deleted}))
}

/// `POST /key/block` (`blocked = true`) and `/key/unblock`: takes effect at once here.
pub(crate) async fn set_blocked(inner: &Inner, request: Value, blocked: bool) -> Result<Value> {
    let body = Body::from_value(request)?;
    let key_input = body.required_string("key")?;
    let _admin = inner.admin.lock().await;
    let mut record = inner.find(&key_input).await?;
    let now = inner.now();
    let mut tx = inner.store.begin().await?;
    if !store::set_blocked(&mut tx, &record.token, blocked, now)
        .await
        .map_err(db_err)?
    {
        let _ = tx.rollback().await;
        return Err(not_found(&key_input));
    }
    tx.commit().await?;
    inner.invalidate(&record.token);
    record.blocked = blocked;
    record.updated_at = now;
    let op = if blocked { "block" } else { "unblock" };
    metrics::counter!("vaultgate_key_admin_total", "op" => op).increment(1);
    tracing::info!(key = %record.key_name, blocked, "virtual key {op}ed");
    Ok(inner.with_live(record).to_json())
}

fn duplicate_alias(alias: &str) -> Error {
    Error::bad_param(
        "key_alias",
        format!("key_alias '{alias}' is already used by another key"),
    )
}

fn map_write_error(e: sqlx::Error, record: &KeyRecord, key_field: &str) -> Error {
    if is_unique_violation(&e) {
        if e.to_string().contains("vault_secret_name") {
            // Another instance took the name between the check and the write.
            return Error::bad_param(
                "key_alias",
                format!(
                    "key_alias '{}' names the Vault secret of another key",
                    record.key_alias.as_deref().unwrap_or_default()
                ),
            );
        }
        if e.to_string().contains("key_alias") {
            return duplicate_alias(record.key_alias.as_deref().unwrap_or_default());
        }
        return duplicate_key(key_field);
    }
    db_err(e)
}

/// A custom key (`key`, `new_key`) that another key already has.
fn duplicate_key(field: &str) -> Error {
    Error::bad_param(
        field,
        format!("{field}: a key with this value already exists"),
    )
}

/// The answer of generate and regenerate: the record with the raw `key`, shown this once, and
/// the `duration` asked for.
fn with_raw_key(mut response: Value, raw: &SecretString, fields: &KeyFields) -> Value {
    if let Some(obj) = response.as_object_mut() {
        obj.insert("key".into(), Value::String(raw.expose_secret().to_owned()));
        if let Patch::Set((text, _)) = &fields.duration {
            obj.insert("duration".into(), Value::String(text.clone()));
        }
    }
    response
}
