//! The LiteLLM key-management routes. No authentication here: the server mounts this router
//! behind its master-key check.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::Value;
use vaultgate_core::{Error, Result};

use crate::query::ListQuery;
use crate::service::KeyService;

/// `POST /key/generate`, `GET /key/info`, `GET /key/list`, `POST /key/update`, `POST /key/delete`,
/// `POST /key/regenerate`, `POST /key/{key}/regenerate`, `POST /key/block`, `POST /key/unblock`.
pub fn routes(service: KeyService) -> Router {
    Router::new()
        .route("/key/generate", post(generate))
        .route("/key/info", get(info))
        .route("/key/list", get(list))
        .route("/key/update", post(update))
        .route("/key/delete", post(delete))
        .route("/key/regenerate", post(regenerate))
        .route("/key/{key}/regenerate", post(regenerate_path))
        .route("/key/block", post(block))
        .route("/key/unblock", post(unblock))
        .with_state(service)
}

/// Our own JSON parsing, so bad JSON is an OpenAI-shaped 400 rather than axum's plain text.
fn json_body(body: &Bytes) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(Error::bad_request("request body must be a JSON object")),
        Err(e) => Err(Error::bad_request(format!(
            "request body is not valid JSON: {e}"
        ))),
    }
}

type Params = std::result::Result<Query<Vec<(String, String)>>, QueryRejection>;

fn params(query: Params) -> Result<Vec<(String, String)>> {
    query
        .map(|Query(p)| p)
        .map_err(|e| Error::bad_request(format!("invalid query string: {e}")))
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn positive(params: &[(String, String)], name: &str, default: u64) -> Result<u64> {
    match param(params, name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::bad_param(name, format!("{name} must be a positive integer"))),
    }
}

async fn generate(State(service): State<KeyService>, body: Bytes) -> Result<Json<Value>> {
    service.generate(json_body(&body)?).await.map(Json)
}

async fn info(State(service): State<KeyService>, query: Params) -> Result<Json<Value>> {
    let params = params(query)?;
    let key = param(&params, "key").ok_or_else(|| Error::bad_param("key", "key is required"))?;
    service.info(key).await.map(Json)
}

async fn list(State(service): State<KeyService>, query: Params) -> Result<Json<Value>> {
    let params = params(query)?;
    let return_full_object = match param(&params, "return_full_object") {
        None => false,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                return Err(Error::bad_param(
                    "return_full_object",
                    "return_full_object must be true or false",
                ));
            }
        },
    };
    let query = ListQuery {
        page: positive(&params, "page", 1)?,
        size: positive(&params, "size", 10)?,
        key_alias: param(&params, "key_alias").map(str::to_owned),
        user_id: param(&params, "user_id").map(str::to_owned),
        team_id: param(&params, "team_id").map(str::to_owned),
        return_full_object,
    };
    service.list(&query).await.map(Json)
}

async fn update(State(service): State<KeyService>, body: Bytes) -> Result<Json<Value>> {
    service.update(json_body(&body)?).await.map(Json)
}

async fn delete(State(service): State<KeyService>, body: Bytes) -> Result<Json<Value>> {
    service.delete(json_body(&body)?).await.map(Json)
}

async fn regenerate(State(service): State<KeyService>, body: Bytes) -> Result<Json<Value>> {
    service.regenerate(None, json_body(&body)?).await.map(Json)
}

async fn regenerate_path(
    State(service): State<KeyService>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    service
        .regenerate(Some(&key), json_body(&body)?)
        .await
        .map(Json)
}

async fn block(State(service): State<KeyService>, body: Bytes) -> Result<Json<Value>> {
    service.set_blocked(json_body(&body)?, true).await.map(Json)
}

async fn unblock(State(service): State<KeyService>, body: Bytes) -> Result<Json<Value>> {
    service
        .set_blocked(json_body(&body)?, false)
        .await
        .map(Json)
}
