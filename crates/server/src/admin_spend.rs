//! `GET /admin/spend/daily?key=K&key=…`: each key's spend, tokens and requests per UTC day, as
//! the batch writer has stored them (admin only). The console's Spend page charts them until
//! LiteLLM's spend-report routes exist; it is read from the store, never per request.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::QueryRejection;
use serde_json::{Value, json};
use vaultgate_core::{Error, Result};

use crate::state::AppState;

/// Most keys in one call (the Spend page asks for its top spenders).
const MAX_KEYS: usize = 50;

type Params = std::result::Result<axum::extract::Query<Vec<(String, String)>>, QueryRejection>;

pub(crate) async fn daily(State(app): State<Arc<AppState>>, query: Params) -> Result<Json<Value>> {
    let keys = app
        .keys
        .as_ref()
        .ok_or_else(|| Error::bad_request("virtual keys need general_settings.master_key"))?;
    let params = query
        .map(|q| q.0)
        .map_err(|e| Error::bad_request(format!("invalid query string: {e}")))?;
    let mut wanted: Vec<String> = params
        .into_iter()
        .filter(|(k, v)| k == "key" && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_owned())
        .collect();
    wanted.dedup();
    if wanted.len() > MAX_KEYS {
        return Err(Error::bad_param(
            "key",
            format!("at most {MAX_KEYS} keys at once"),
        ));
    }
    let mut out = Vec::with_capacity(wanted.len());
    for key in &wanted {
        let Some(record) = keys.get_key(key).await? else {
            return Err(Error::NotFound("key not found".into()));
        };
        let days = keys.spend_logs(&record.token).await?;
        out.push(json!({
            "token": record.token,
            "key_name": record.key_name,
            "key_alias": record.key_alias,
            "team_id": record.team_id,
            "spend": record.spend,
            "days": days,
        }));
    }
    Ok(Json(json!({ "keys": out })))
}
