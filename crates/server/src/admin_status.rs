//! Admin-only JSON routes for what the LiteLLM API has no shape for: the state of the Vault
//! copies of virtual keys, of Vault itself (`admin_vault`) and of every deployment
//! (`admin_models`). Mounted behind the admin check like `/key/*`; no route here ever
//! returns a secret value. Nothing here runs per model request.
//!
//! - `GET /admin/vault/copies?name=A&name=B`: for each copy name (relative to
//!   `prefix_for_stored_virtual_keys`, as in a key's `vault_secret_name`): its Vault path, status
//!   (`present`, `deleted` (soft-deleted), `destroyed`, `missing`, or `unknown` with the error),
//!   current version, and when it was written or deleted.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::QueryRejection;
use axum::routing::get;
use futures_util::stream::{self, StreamExt};
use serde_json::{Value, json};
use vaultgate_core::{Error, Result};
use vaultgate_secrets::VaultClient;

use crate::state::AppState;

/// Most copies asked for in one call (a page of keys is at most 1000 in `/key/list`).
const MAX_COPIES: usize = 1000;
/// Vault reads at once.
const PARALLEL_READS: usize = 8;

pub fn routes(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .route("/admin/vault/copies", get(copies))
        .route("/admin/models", get(crate::admin_models::models))
        .route("/admin/spend/daily", get(crate::admin_spend::daily))
        .route("/admin/vault", get(crate::admin_vault::status))
        .route("/admin/vault/drift", get(crate::admin_vault::drift))
        .route(
            "/admin/vault/drift/repair",
            axum::routing::post(crate::admin_vault::repair),
        )
        .with_state(state)
}

type Params = std::result::Result<axum::extract::Query<Vec<(String, String)>>, QueryRejection>;

/// The Vault client and the copies' prefix, or why there are no copies.
pub(crate) fn mirror(app: &AppState) -> Result<(&VaultClient, &str)> {
    match (app.secrets.vault(), app.mirror_prefix.as_deref()) {
        (Some(vault), Some(prefix)) => Ok((vault, prefix)),
        _ => Err(Error::bad_request(
            "virtual keys are not copied into Vault: set \
             key_management_settings.store_virtual_keys",
        )),
    }
}

/// What Vault has for one copy.
pub(crate) async fn copy_state(vault: &VaultClient, prefix: &str, name: &str) -> Value {
    let full = format!("{prefix}{name}");
    let path = vault.secret_path(&full).unwrap_or_else(|_| full.clone());
    let (status, version, error) = match vault.secret_version(&full).await {
        Ok(None) => ("missing", None, None),
        Ok(Some(v)) if v.destroyed => ("destroyed", Some(v), None),
        Ok(Some(v)) if v.deleted_at.is_some() => ("deleted", Some(v), None),
        Ok(Some(v)) => ("present", Some(v), None),
        Err(e) => ("unknown", None, Some(e.to_string())),
    };
    json!({
        "name": name,
        "path": path,
        "status": status,
        "version": version.as_ref().map(|v| v.version),
        "written_at": version.as_ref().and_then(|v| v.written_at.clone()),
        "deleted_at": version.as_ref().and_then(|v| v.deleted_at.clone()),
        "error": error,
    })
}

async fn copies(State(app): State<Arc<AppState>>, query: Params) -> Result<Json<Value>> {
    let params = query
        .map(|q| q.0)
        .map_err(|e| Error::bad_request(format!("invalid query string: {e}")))?;
    let mut names: Vec<String> = params
        .into_iter()
        .filter(|(k, v)| k == "name" && !v.trim().is_empty())
        .map(|(_, v)| v)
        .collect();
    names.sort();
    names.dedup();
    if names.len() > MAX_COPIES {
        return Err(Error::bad_param(
            "name",
            format!("at most {MAX_COPIES} names at once"),
        ));
    }
    let (vault, prefix) = mirror(&app)?;
    let copies: Vec<Value> = stream::iter(names)
        .map(|name| async move { copy_state(vault, prefix, &name).await })
        .buffered(PARALLEL_READS)
        .collect()
        .await;
    Ok(Json(json!({ "copies": copies })))
}
