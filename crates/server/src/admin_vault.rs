//! Vault as the admin console shows it. Admin-only, never a secret value:
//!
//! - `GET /admin/vault`: address, namespaces, mount, auth method, the token (a fresh
//!   `lookup-self`: TTL, renewable, policies, expiry), logins and renewals so far, readiness,
//!   and every secret reference with its source, the age of the value in use and its last
//!   refresh error, and every `vault://` path with its lease (TTL left, renewable, renewals,
//!   re-issues), never the lease id.
//! - `GET /admin/vault/drift`: keys without a Vault copy, copies without a key (each with its
//!   state: a soft-deleted copy of a deleted key is expected, a readable one is drift) and
//!   deletions still queued.
//! - `POST /admin/vault/drift/repair`: makes every copy out of step agree with the key store
//!   (`KeyService::repair_copy`): copies no key owns are soft-deleted, a key's deleted or
//!   overwritten copy gets the key's value back from the copy's version history, queued
//!   deletions are retried. A key whose value is nowhere in Vault's history is left (only its
//!   hash is stored): regenerate it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use futures_util::stream::{self, StreamExt};
use serde_json::{Value, json};
use vaultgate_core::{Error, Result};
use vaultgate_keys::KeyService;

use crate::admin_status::{copy_state, mirror};
use crate::state::AppState;

const PARALLEL_READS: usize = 8;

pub(crate) async fn status(State(app): State<Arc<AppState>>) -> Json<Value> {
    let references = app.secrets.references();
    let readiness = app.secrets.readiness();
    let Some(vault) = app.secrets.vault() else {
        return Json(json!({
            "enabled": false,
            "status": readiness.status,
            "references": references,
        }));
    };
    let settings = vault.settings();
    let token = match vault.token_info().await {
        Ok(info) => json!(info),
        Err(e) => json!({"error": e.to_string()}),
    };
    let stats = vault.stats();
    Json(json!({
        "enabled": true,
        "status": readiness.status,
        "last_error": readiness.last_error,
        "oldest_value_age_secs": readiness.oldest_value_age_secs,
        "address": settings.addr,
        "login_namespace": settings.login_namespace,
        "secret_namespace": settings.secret_namespace,
        "mount": settings.mount,
        "path_prefix": settings.path_prefix,
        "auth_method": settings.auth.method(),
        "token": token,
        "token_ttl_remaining_secs": vault.token_ttl_remaining(),
        "logins": stats.logins,
        "renewals": stats.renewals,
        "auth_error": vault.auth_error(),
        "refresh_interval_secs": app.secrets.refresh_interval().as_secs(),
        "mirror_prefix": app.mirror_prefix,
        "references": references,
        "paths": readiness.paths,
    }))
}

fn keys(app: &AppState) -> Result<&KeyService> {
    app.keys
        .as_ref()
        .ok_or_else(|| Error::bad_request("virtual keys need general_settings.master_key"))
}

/// The drift report, each unowned, deleted or queued copy with what Vault has for it.
async fn report(app: &AppState) -> Result<Value> {
    let (vault, prefix) = mirror(app)?;
    let drift = keys(app)?.drift().await?;
    let states = |names: Vec<String>| async move {
        stream::iter(names)
            .map(|name| async move { copy_state(vault, prefix, &name).await })
            .buffered(PARALLEL_READS)
            .collect::<Vec<Value>>()
            .await
    };
    let keys_without_copy: Vec<Value> = drift
        .keys_without_secret
        .iter()
        .map(|key| {
            json!({
                "token": key.token,
                "key_name": key.key_name,
                "key_alias": key.key_alias,
                "expected_secret": key.expected_secret,
                "problem": key.problem,
                "path": vault.secret_path(&format!("{prefix}{}", key.expected_secret)).ok(),
            })
        })
        .collect();
    Ok(json!({
        "clean": drift.is_clean(),
        "keys_without_copy": keys_without_copy,
        "copies_without_key": states(drift.secrets_without_key).await,
        "deleted_copies": states(drift.deleted_secrets).await,
        "pending_deletions": states(drift.pending_deletions).await,
    }))
}

pub(crate) async fn drift(State(app): State<Arc<AppState>>) -> Result<Json<Value>> {
    report(&app).await.map(Json)
}

/// Every name the report finds out of step, in one list without repeats.
fn drifted_names(report: &Value) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: Option<&str>| {
        if let Some(name) = name
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_owned());
        }
    };
    for key in report["keys_without_copy"].as_array().into_iter().flatten() {
        add(key["expected_secret"].as_str());
    }
    for list in ["copies_without_key", "pending_deletions"] {
        for copy in report[list].as_array().into_iter().flatten() {
            add(copy["name"].as_str());
        }
    }
    names
}

pub(crate) async fn repair(State(app): State<Arc<AppState>>) -> Result<Json<Value>> {
    let keys = keys(&app)?;
    let before = report(&app).await?;
    let names = drifted_names(&before);
    for name in &names {
        keys.repair_copy(name).await;
    }
    let after = report(&app).await?;
    let left = drifted_names(&after);
    let repaired: Vec<&String> = names.iter().filter(|n| !left.contains(n)).collect();
    tracing::info!(
        repaired = repaired.len(),
        left = left.len(),
        "console: Vault copies repaired"
    );
    Ok(Json(json!({
        "repaired": repaired,
        "left": left,
        "drift": after,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drifted_names_are_every_out_of_step_name_once() {
        let report = json!({
            "keys_without_copy": [{"expected_secret": "a"}, {"expected_secret": "b"}],
            "copies_without_key": [{"name": "c"}, {"name": "a"}],
            "deleted_copies": [{"name": "gone"}],
            "pending_deletions": [{"name": "d"}],
        });
        assert_eq!(drifted_names(&report), ["a", "b", "c", "d"]);
        assert!(drifted_names(&json!({})).is_empty());
    }
}
