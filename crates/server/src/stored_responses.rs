//! Responses translated for non-OpenAI deployments, stored in the key database as OpenAI stores
//! its own: the finished response (whole or streamed) is queued for the batch writer, and
//! `previous_response_id`, `GET`/`DELETE /v1/responses/{id}` and `…/input_items` read it back.
//! A response is visible to the key that made it (and to the master key); to any other caller
//! it does not exist (404).

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};
use vaultgate_keys::{KeyService, MASTER_KEY_LOG_NAME, StoredResponse};
use vaultgate_providers::TranslateStream;
use vaultgate_providers::responses::{ResponsesStreamTranslator, conversation, input_items};

use crate::auth::Principal;
use crate::proxy::json_response;

/// Owner of the responses of a caller without a virtual key when no master key is set.
const OPEN_OWNER: &str = "open";

fn owner_of(principal: &Principal) -> &str {
    match principal {
        Principal::Virtual(record) => &record.token,
        Principal::Master => MASTER_KEY_LOG_NAME,
        Principal::Open => OPEN_OWNER,
    }
}

/// The stored response `id` if `principal` may see it.
async fn find(
    keys: &KeyService,
    principal: &Principal,
    id: &str,
) -> Result<Option<Arc<StoredResponse>>> {
    let found = keys.stored_response(id).await?;
    Ok(found.filter(|stored| {
        stored.owner == owner_of(principal) || matches!(principal, Principal::Master)
    }))
}

fn list(text: &str) -> Result<Vec<Value>> {
    serde_json::from_str(text).map_err(|e| Error::Database(format!("a stored response: {e}")))
}

/// The conversation a follow-up continues: the earlier turns of the response `id` (its
/// history, input and output items). A response that is unknown, deleted, expired, made with
/// `store: false` or by another key is OpenAI's 400 `Previous response … not found.`.
pub(crate) async fn previous(
    keys: &KeyService,
    principal: &Principal,
    id: &str,
) -> Result<Vec<Value>> {
    let Some(stored) = find(keys, principal, id).await? else {
        return Err(Error::bad_param(
            "previous_response_id",
            format!("Previous response with id '{id}' not found."),
        ));
    };
    let response: Value = serde_json::from_str(&stored.response)
        .map_err(|e| Error::Database(format!("a stored response: {e}")))?;
    Ok(conversation(
        list(&stored.history)?,
        list(&stored.input_items)?,
        &response,
    ))
}

/// What storing a translated response needs besides the response: who made it, and its input
/// and history (as JSON text, made once per request).
#[derive(Clone)]
pub(crate) struct Keep {
    keys: KeyService,
    owner: Arc<str>,
    input_items: Arc<str>,
    history: Arc<str>,
}

impl Keep {
    /// For the response to `request` of `principal`, after `history` (the earlier turns, if
    /// any): the input and history are made JSON once.
    pub fn new(
        keys: &KeyService,
        principal: &Principal,
        request: &Map<String, Value>,
        history: &[Value],
    ) -> Self {
        Self {
            keys: keys.clone(),
            owner: owner_of(principal).into(),
            input_items: Value::Array(input_items(request)).to_string().into(),
            history: serde_json::to_string(history)
                .unwrap_or_else(|_| "[]".into())
                .into(),
        }
    }

    /// Queues the finished response object for storing (never waits).
    pub fn keep(&self, response: &Value) {
        let Some(id) = response.get("id").and_then(Value::as_str) else {
            return;
        };
        self.keys.keep_response(StoredResponse {
            id: id.to_owned(),
            owner: self.owner.to_string(),
            created_ms: crate::spend_log::now_ms(),
            response: response.to_string(),
            input_items: self.input_items.to_string(),
            history: self.history.to_string(),
        });
    }
}

/// A Responses stream translator that stores the response once the stream completes.
pub(crate) struct Keeping {
    inner: ResponsesStreamTranslator,
    keep: Option<Keep>,
}

impl Keeping {
    pub fn new(inner: ResponsesStreamTranslator, keep: Keep) -> Self {
        Self {
            inner,
            keep: Some(keep),
        }
    }

    fn check(&mut self) {
        if let Some(response) = self.inner.take_completed()
            && let Some(keep) = self.keep.take()
        {
            keep.keep(&response);
        }
    }
}

impl TranslateStream for Keeping {
    fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        let out = self.inner.push(chunk);
        self.check();
        out
    }

    fn finish(&mut self) -> Vec<Bytes> {
        let out = self.inner.finish();
        self.check();
        out
    }

    fn is_done(&self) -> bool {
        self.inner.is_done()
    }
}

/// What a call about a stored response asks for.
#[derive(Clone, Copy)]
pub(crate) enum Ask {
    Retrieve,
    Delete,
    InputItems,
}

/// `GET`, `DELETE` or `…/input_items` of a stored response, in OpenAI's shapes.
pub(crate) async fn answer(
    keys: &KeyService,
    principal: &Principal,
    id: &str,
    ask: Ask,
    query: Option<&str>,
) -> Result<Response> {
    let not_found = || Error::NotFound(format!("Response with id '{id}' not found."));
    let stored = find(keys, principal, id).await?.ok_or_else(not_found)?;
    let body = match ask {
        Ask::Retrieve => Bytes::from(stored.response.clone()),
        Ask::Delete => {
            if !keys.delete_stored_response(id).await? {
                return Err(not_found());
            }
            Bytes::from(json!({"id": id, "object": "response", "deleted": true}).to_string())
        }
        Ask::InputItems => {
            let page = Page::parse(query)?.of(list(&stored.input_items)?);
            Bytes::from(page.to_string())
        }
    };
    Ok(json_response(
        StatusCode::OK,
        Some(HeaderValue::from_static("application/json")),
        body,
    ))
}

/// OpenAI's list options for input items: `limit` (1 to 100, default 20), `order` (`desc`
/// by default), `after` and `before` (item ids).
#[derive(Debug, Default)]
struct Page {
    limit: Option<usize>,
    ascending: bool,
    after: Option<String>,
    before: Option<String>,
}

impl Page {
    fn parse(query: Option<&str>) -> Result<Self> {
        let mut page = Self::default();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "limit" => {
                    let limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| {
                            Error::bad_param("limit", "`limit` must be a number from 1 to 100")
                        })?;
                    page.limit = Some(limit);
                }
                "order" => {
                    page.ascending = match value.as_ref() {
                        "asc" => true,
                        "desc" => false,
                        _ => {
                            return Err(Error::bad_param(
                                "order",
                                "`order` must be \"asc\" or \"desc\"",
                            ));
                        }
                    };
                }
                "after" => page.after = Some(value.into_owned()),
                "before" => page.before = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(page)
    }

    /// OpenAI's list object of `items` (oldest first) as this page asks.
    fn of(&self, mut items: Vec<Value>) -> Value {
        if !self.ascending {
            items.reverse();
        }
        let id_of = |item: &Value| item.get("id").and_then(Value::as_str).map(str::to_owned);
        let position = |id: &Option<String>| {
            id.as_ref().and_then(|id| {
                items
                    .iter()
                    .position(|item| id_of(item).as_ref() == Some(id))
            })
        };
        let start = position(&self.after).map_or(0, |i| i + 1);
        let end = position(&self.before).unwrap_or(items.len()).max(start);
        let limit = self.limit.unwrap_or(20);
        let window = items.get(start..end).unwrap_or_default();
        let data: Vec<Value> = window.iter().take(limit).cloned().collect();
        json!({
            "object": "list",
            "data": data,
            "first_id": data.first().and_then(id_of),
            "last_id": data.last().and_then(id_of),
            "has_more": window.len() > data.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn input_items_are_paged_as_openai_pages_them() {
        let items: Vec<Value> = (1..=5).map(|n| json!({"id": format!("i{n}")})).collect();
        let ids = |page: &Value| -> Vec<String> {
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let all = Page::parse(None).unwrap().of(items.clone());
        assert_eq!(ids(&all), ["i5", "i4", "i3", "i2", "i1"]);
        assert_eq!(all["has_more"], false);
        assert_eq!(all["first_id"], "i5");
        let page = Page::parse(Some("order=asc&limit=2&after=i1"))
            .unwrap()
            .of(items.clone());
        assert_eq!(ids(&page), ["i2", "i3"]);
        assert_eq!(page["has_more"], true);
        let page = Page::parse(Some("order=asc&before=i3")).unwrap().of(items);
        assert_eq!(ids(&page), ["i1", "i2"]);
        for bad in ["limit=0", "limit=101", "limit=x", "order=up"] {
            assert!(Page::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
