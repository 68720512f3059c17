//! The LiteLLM key-management routes. The server authenticates the caller and puts a [`Caller`]
//! into the request's extensions; each route asks the permission table what the caller may do
//! ([`crate::principals::access`]): admins manage every key, internal users their own (and team
//! admins their team's), and any key may read its own `/key/info`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde_json::{Value, json};
use vaultgate_core::{Error, Result};

use crate::principals::access::{Actor, Caller};
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
        .merge(crate::principals::routes::routes())
        .merge(crate::spend_logs::routes::routes())
        .with_state(service)
}

/// Our own JSON parsing, so bad JSON is an OpenAI-shaped 400 rather than axum's plain text.
pub(crate) fn json_body(body: &Bytes) -> Result<Value> {
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

pub(crate) type Params = std::result::Result<Query<Vec<(String, String)>>, QueryRejection>;

pub(crate) fn params(query: Params) -> Result<Vec<(String, String)>> {
    query
        .map(|Query(p)| p)
        .map_err(|e| Error::bad_request(format!("invalid query string: {e}")))
}

pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

pub(crate) fn positive(params: &[(String, String)], name: &str, default: u64) -> Result<u64> {
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

/// The caller of a route, which the server's authentication puts into the extensions.
pub(crate) type CallerExt = Option<Extension<Caller>>;

pub(crate) fn actor(
    service: &KeyService,
    caller: &CallerExt,
    route: &'static str,
) -> Result<Actor> {
    match caller {
        Some(Extension(caller)) => service.actor(caller, route),
        None => Err(Error::Internal(format!(
            "{route} is mounted without authentication"
        ))),
    }
}

/// Non-admins: the key named by `field` must be theirs.
async fn check_named_key(
    service: &KeyService,
    actor: &Actor,
    body: &Value,
    field: &str,
) -> Result<()> {
    if !actor.own_only {
        return Ok(());
    }
    let Some(key) = body.get(field).and_then(Value::as_str) else {
        return Ok(()); // the route answers the missing field
    };
    match service.get_key(key).await? {
        Some(record) => service.check_key(actor, &record),
        None => Ok(()), // the route answers 404
    }
}

/// Non-admins: a new owner (`user_id`, `team_id`) must be themselves or their team.
fn check_owner_fields(service: &KeyService, actor: &Actor, body: &Value) -> Result<()> {
    let user_id = body.get("user_id").and_then(Value::as_str);
    let team_id = body.get("team_id").and_then(Value::as_str);
    service.check_new_key(actor, user_id, team_id)
}

async fn generate(
    State(service): State<KeyService>,
    caller: CallerExt,
    body: Bytes,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/key/generate")?;
    let mut body = json_body(&body)?;
    if actor.own_only {
        check_owner_fields(&service, &actor, &body)?;
        if let (Some(obj), Some(user_id)) = (body.as_object_mut(), &actor.user_id) {
            obj.entry("user_id")
                .or_insert_with(|| Value::String(user_id.clone()));
        }
    }
    service.generate(body).await.map(Json)
}

async fn info(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/key/info")?;
    let params = params(query)?;
    let key = match (param(&params, "key"), &actor.key) {
        (Some(key), _) => key.to_owned(),
        // Without `key`, a key asks about itself.
        (None, Some(own)) => own.token.clone(),
        (None, None) => return Err(Error::bad_param("key", "key is required")),
    };
    if actor.own_only
        && let Some(record) = service.get_key(&key).await?
    {
        service.check_key(&actor, &record)?;
    }
    service.info(&key).await.map(Json)
}

async fn list(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/key/list")?;
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
    let mut query = ListQuery {
        page: positive(&params, "page", 1)?,
        size: positive(&params, "size", 10)?,
        key_hash: param(&params, "key_hash").map(str::to_owned),
        key_alias: param(&params, "key_alias").map(str::to_owned),
        user_id: param(&params, "user_id").map(str::to_owned),
        team_id: param(&params, "team_id").map(str::to_owned),
        return_full_object,
    };
    if actor.own_only {
        match (&actor.user_id, &actor.key) {
            (Some(user_id), _) => query.user_id = Some(user_id.clone()),
            // A key without a user sees itself only.
            (None, Some(own)) => {
                let own = service.get_key(&own.token).await?;
                let keys: Vec<Value> = own
                    .into_iter()
                    .map(|k| {
                        if return_full_object {
                            k.to_json()
                        } else {
                            Value::String(k.token)
                        }
                    })
                    .collect();
                let total = keys.len();
                return Ok(Json(json!({
                    "keys": keys, "total_count": total, "current_page": 1, "total_pages": total,
                })));
            }
            (None, None) => {}
        }
    }
    service.list(&query).await.map(Json)
}

async fn update(
    State(service): State<KeyService>,
    caller: CallerExt,
    body: Bytes,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/key/update")?;
    let body = json_body(&body)?;
    check_named_key(&service, &actor, &body, "key").await?;
    if actor.own_only {
        check_owner_fields(&service, &actor, &body)?;
    }
    service.update(body).await.map(Json)
}

async fn delete(
    State(service): State<KeyService>,
    caller: CallerExt,
    body: Bytes,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/key/delete")?;
    let body = json_body(&body)?;
    if actor.own_only {
        let names = |field: &str| -> Vec<String> {
            body.get(field)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        for key in names("keys") {
            if let Some(record) = service.get_key(&key).await? {
                service.check_key(&actor, &record)?;
            }
        }
        for alias in names("key_aliases") {
            if let Some(record) = service.get_key_by_alias(&alias).await? {
                service.check_key(&actor, &record)?;
            }
        }
    }
    service.delete(body).await.map(Json)
}

async fn regenerate(
    State(service): State<KeyService>,
    caller: CallerExt,
    body: Bytes,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/key/regenerate")?;
    let body = json_body(&body)?;
    check_named_key(&service, &actor, &body, "key").await?;
    service.regenerate(None, body).await.map(Json)
}

async fn regenerate_path(
    State(service): State<KeyService>,
    caller: CallerExt,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/key/regenerate")?;
    check_named_key(&service, &actor, &json!({"key": key}), "key").await?;
    service
        .regenerate(Some(&key), json_body(&body)?)
        .await
        .map(Json)
}

async fn block(
    State(service): State<KeyService>,
    caller: CallerExt,
    body: Bytes,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/key/block")?;
    let body = json_body(&body)?;
    check_named_key(&service, &actor, &body, "key").await?;
    service.set_blocked(body, true).await.map(Json)
}

async fn unblock(
    State(service): State<KeyService>,
    caller: CallerExt,
    body: Bytes,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/key/unblock")?;
    let body = json_body(&body)?;
    check_named_key(&service, &actor, &body, "key").await?;
    service.set_blocked(body, false).await.map(Json)
}
