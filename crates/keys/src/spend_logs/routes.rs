//! The spend routes, behind the permission table: admins and admin viewers read everything,
//! internal users the rows of their own user, a key without a user its own rows.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use vaultgate_core::{Error, Result};

use super::dates;
use super::query::{self, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use super::report::{self, ReportBy};
use super::store::LogFilter;
use crate::model::token_of;
use crate::principals::access::Actor;
use crate::routes::{CallerExt, Params, actor, param, params, positive};
use crate::service::KeyService;

pub(crate) fn routes() -> Router<KeyService> {
    Router::new()
        .route("/spend/logs", get(spend_logs))
        .route("/spend/tags", get(spend_tags))
        .route("/global/spend/logs", get(global_logs))
        .route("/global/spend/keys", get(global_keys))
        .route("/global/spend/models", get(global_models))
        .route("/global/spend/teams", get(global_teams))
        .route("/global/spend/tags", get(global_tags))
        .route("/global/spend/report", get(global_report))
}

/// What a caller limited to their own things may see: their user's rows, or (a key without a
/// user) the key's own rows.
fn own_filter(actor: &Actor, filter: &mut LogFilter) -> Result<()> {
    if !actor.own_only {
        return Ok(());
    }
    match (&actor.user_id, &actor.key) {
        (Some(user), _) => filter.user = Some(user.clone()),
        (None, Some(key)) => filter.api_key = Some(key.token.clone()),
        (None, None) => return Err(Error::Forbidden("no user or key to show spend of".into())),
    }
    Ok(())
}

/// `api_key` given raw (`sk-…`) or as its hash, as LiteLLM takes it.
fn api_key_param(params: &[(String, String)], name: &str) -> Option<String> {
    param(params, name).map(|k| token_of(k.trim()))
}

fn page_size(params: &[(String, String)]) -> Result<u64> {
    let size = positive(params, "page_size", DEFAULT_PAGE_SIZE)?;
    if size > MAX_PAGE_SIZE {
        return Err(Error::bad_param(
            "page_size",
            format!("page_size must be at most {MAX_PAGE_SIZE}"),
        ));
    }
    Ok(size)
}

fn status_param(params: &[(String, String)]) -> Result<Option<String>> {
    match param(params, "status") {
        None => Ok(None),
        Some(status @ ("success" | "failure")) => Ok(Some(status.to_owned())),
        Some(_) => Err(Error::bad_param(
            "status",
            "status must be success or failure",
        )),
    }
}

fn flag(params: &[(String, String)], name: &str, default: bool) -> Result<bool> {
    match param(params, name).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(_) => Err(Error::bad_param(
            name,
            format!("{name} must be true or false"),
        )),
    }
}

/// `GET /spend/logs`: the rows (newest first, paged with `page` and `page_size`) matching
/// `api_key`, `user_id`, `team_id`, `request_id`, `end_user` (and, beyond LiteLLM, `model` and
/// `status`: `success` or `failure`); with `start_date` and `end_date`
/// the spend per day instead (LiteLLM's `summarize`, on by default).
async fn spend_logs(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/spend/logs")?;
    let params = params(query)?;
    let (from_ms, to_ms) = dates::range(param(&params, "start_date"), param(&params, "end_date"))?;
    let mut filter = LogFilter {
        api_key: api_key_param(&params, "api_key"),
        user: param(&params, "user_id").map(str::to_owned),
        team_id: param(&params, "team_id").map(str::to_owned),
        request_id: param(&params, "request_id").map(str::to_owned),
        end_user: param(&params, "end_user").map(str::to_owned),
        model: param(&params, "model").map(str::to_owned),
        status: status_param(&params)?,
        from_ms,
        to_ms,
    };
    own_filter(&actor, &mut filter)?;
    let inner = service.inner();
    let dated = from_ms.is_some() && to_ms.is_some();
    if dated && flag(&params, "summarize", true)? {
        return query::daily_summary(inner, &filter).await.map(Json);
    }
    let page = positive(&params, "page", 1)?;
    query::rows(inner, &filter, page, page_size(&params)?)
        .await
        .map(Json)
}

/// `GET /spend/tags`: requests and spend per request tag (optionally in a date range).
async fn spend_tags(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    actor(&service, &caller, "/spend/tags")?;
    let params = params(query)?;
    let (from, to) = dates::range(param(&params, "start_date"), param(&params, "end_date"))?;
    query::tags(service.inner(), from, to).await.map(Json)
}

/// `GET /global/spend/tags` (LiteLLM's UI shape): needs both dates; `tags` is a comma list.
async fn global_tags(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    actor(&service, &caller, "/global/spend/tags")?;
    let params = params(query)?;
    let (from, to) = dates::required(param(&params, "start_date"), param(&params, "end_date"))?;
    let wanted = param(&params, "tags").map(|t| {
        t.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    });
    query::ui_tags(service.inner(), from, to, wanted)
        .await
        .map(Json)
}

/// `GET /global/spend/logs?api_key=`: spend per day of the last 30 days.
async fn global_logs(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/global/spend/logs")?;
    let params = params(query)?;
    let mut filter = LogFilter {
        api_key: api_key_param(&params, "api_key"),
        ..LogFilter::default()
    };
    own_filter(&actor, &mut filter)?;
    let per_user = actor.own_only && actor.user_id.is_some();
    report::daily(service.inner(), filter, per_user)
        .await
        .map(Json)
}

fn limit(params: &[(String, String)]) -> Result<usize> {
    let limit = positive(params, "limit", 10)?;
    Ok(usize::try_from(limit.min(1_000)).unwrap_or(1_000))
}

/// `GET /global/spend/keys?limit=`: the keys that spent most in the last 30 days.
async fn global_keys(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/global/spend/keys")?;
    let params = params(query)?;
    let mut filter = LogFilter::default();
    own_filter(&actor, &mut filter)?;
    report::top_keys(service.inner(), filter, limit(&params)?)
        .await
        .map(Json)
}

/// `GET /global/spend/models?limit=`: the models that cost most in the last 30 days.
async fn global_models(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/global/spend/models")?;
    let params = params(query)?;
    let mut filter = LogFilter::default();
    own_filter(&actor, &mut filter)?;
    report::top_models(service.inner(), filter, limit(&params)?)
        .await
        .map(Json)
}

/// `GET /global/spend/teams`: spend per team and day of the last 30 days.
async fn global_teams(State(service): State<KeyService>, caller: CallerExt) -> Result<Json<Value>> {
    actor(&service, &caller, "/global/spend/teams")?;
    report::teams(service.inner()).await.map(Json)
}

/// `GET /global/spend/report?start_date&end_date&group_by=team|customer|api_key|model`, narrowed
/// by `api_key`, `internal_user_id`, `team_id`, `customer_id`.
async fn global_report(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    actor(&service, &caller, "/global/spend/report")?;
    let params = params(query)?;
    let (from, to) = dates::required(param(&params, "start_date"), param(&params, "end_date"))?;
    let api_key = api_key_param(&params, "api_key");
    let user = param(&params, "internal_user_id").map(str::to_owned);
    // LiteLLM answers a key's or a user's report per key whatever `group_by` says.
    let by = if api_key.is_some() || user.is_some() {
        ReportBy::ApiKey
    } else {
        ReportBy::parse(param(&params, "group_by"))?
    };
    let filter = LogFilter {
        api_key,
        user,
        team_id: param(&params, "team_id").map(str::to_owned),
        end_user: param(&params, "customer_id").map(str::to_owned),
        from_ms: Some(from),
        to_ms: Some(to),
        ..LogFilter::default()
    };
    report::report(service.inner(), &filter, by).await.map(Json)
}
