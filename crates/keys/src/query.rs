//! The read side of the management API: `/key/info`, `/key/list`, a key's record and its daily
//! spend. Records carry this instance's live spend.

use serde_json::{Value, json};
use vaultgate_core::{Error, Result};

use crate::model::{KeyRecord, token_of};
use crate::state::Inner;
use crate::store::ListFilter;

/// `GET /key/list` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub page: u64,
    pub size: u64,
    /// LiteLLM's `key_hash`: a raw key or its hash, finding that one key (or none).
    pub key_hash: Option<String>,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub return_full_object: bool,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            page: 1,
            size: 10,
            key_hash: None,
            key_alias: None,
            user_id: None,
            team_id: None,
            return_full_object: false,
        }
    }
}

/// Spend of one key on one UTC day, from the batch writer's log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DailySpend {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub spend: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub requests: i64,
}

/// `GET /key/info?key=` (raw key or hash): `{"key": token, "info": {...}}`.
pub(crate) async fn info(inner: &Inner, key: &str) -> Result<Value> {
    if key.trim().is_empty() {
        return Err(Error::bad_param("key", "key is required"));
    }
    let record = inner.find(key).await?;
    let record = inner.with_live(record);
    Ok(json!({"key": record.token, "info": record.to_json()}))
}

/// The stored record of a key given raw or hashed, with live spend; `None` when unknown.
pub(crate) async fn get_key(inner: &Inner, key: &str) -> Result<Option<KeyRecord>> {
    Ok(inner
        .store
        .get_by_token(&token_of(key.trim()))
        .await?
        .map(|r| inner.with_live(r)))
}

/// Per-day spend of a key (raw or hash) as written so far by the batch writer.
pub(crate) async fn spend_logs(inner: &Inner, key: &str) -> Result<Vec<DailySpend>> {
    let record = inner.find(key).await?;
    let rows = inner.store.spend_logs(&record.key_id).await?;
    Ok(rows
        .into_iter()
        .map(
            |(day, spend, prompt_tokens, completion_tokens, requests)| DailySpend {
                day,
                spend,
                prompt_tokens,
                completion_tokens,
                requests,
            },
        )
        .collect())
}

/// `GET /key/list`: `{keys, total_count, current_page, total_pages}`; `keys` are tokens, or
/// full objects with `return_full_object`.
pub(crate) async fn list(inner: &Inner, query: &ListQuery) -> Result<Value> {
    if query.page == 0 {
        return Err(Error::bad_param("page", "page must be >= 1"));
    }
    if query.size == 0 || query.size > 1000 {
        return Err(Error::bad_param("size", "size must be between 1 and 1000"));
    }
    let filter = ListFilter {
        token: query.key_hash.as_deref().map(|k| token_of(k.trim())),
        key_alias: query.key_alias.clone(),
        user_id: query.user_id.clone(),
        team_id: query.team_id.clone(),
    };
    let (records, total) = inner.store.list(&filter, query.page, query.size).await?;
    let keys: Vec<Value> = records
        .into_iter()
        .map(|r| {
            if query.return_full_object {
                inner.with_live(r).to_json()
            } else {
                Value::String(r.token)
            }
        })
        .collect();
    Ok(json!({
        "keys": keys,
        "total_count": total,
        "current_page": query.page,
        "total_pages": total.div_ceil(query.size),
    }))
}
