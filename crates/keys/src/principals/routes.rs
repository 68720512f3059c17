//! The management plane's routes (LiteLLM's paths and shapes). Every handler resolves its
//! caller through the one permission table first ([`super::access`]).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::Value;
use vaultgate_core::{Error, Result};

use super::teams::TeamQuery;
use super::users::UserQuery;
use super::{budgets, end_users, members, org_members, orgs, teams, users};
use crate::routes::{CallerExt, Params, actor, json_body, param, params, positive};
use crate::service::KeyService;

pub(crate) fn routes() -> Router<KeyService> {
    Router::new()
        .route("/team/new", post(team_new))
        .route("/team/update", post(team_update))
        .route("/team/delete", post(team_delete))
        .route("/team/block", post(team_block))
        .route("/team/unblock", post(team_unblock))
        .route("/team/info", get(team_info))
        .route("/team/list", get(team_list))
        .route("/v2/team/list", get(team_list_v2))
        .route("/team/member_add", post(member_add))
        .route("/team/member_delete", post(member_delete))
        .route("/team/member_update", post(member_update))
        .route("/team/model/add", post(team_model_add))
        .route("/team/model/delete", post(team_model_delete))
        .route("/user/new", post(user_new))
        .route("/user/info", get(user_info))
        .route("/user/list", get(user_list))
        .route("/user/update", post(user_update))
        .route("/user/delete", post(user_delete))
        .route("/organization/new", post(org_new))
        .route("/organization/update", post(org_update))
        .route("/organization/delete", post(org_delete))
        .route("/organization/member_add", post(org_member_add))
        .route("/organization/member_update", post(org_member_update))
        .route("/organization/member_delete", post(org_member_delete))
        .route("/organization/info", get(org_info))
        .route("/organization/list", get(org_list))
        .route("/budget/new", post(budget_new))
        .route("/budget/update", post(budget_update))
        .route("/budget/delete", post(budget_delete))
        .route("/budget/info", post(budget_info).get(budget_info_get))
        .route("/budget/list", get(budget_list))
        .merge(end_user_routes("/end_user"))
        .merge(end_user_routes("/customer"))
}

/// `/end_user/*`, and LiteLLM's older names `/customer/*`.
fn end_user_routes(prefix: &str) -> Router<KeyService> {
    Router::new()
        .route(&format!("{prefix}/new"), post(end_user_new))
        .route(&format!("{prefix}/update"), post(end_user_update))
        .route(&format!("{prefix}/delete"), post(end_user_delete))
        .route(&format!("{prefix}/block"), post(end_user_block))
        .route(&format!("{prefix}/unblock"), post(end_user_unblock))
        .route(&format!("{prefix}/info"), get(end_user_info))
        .route(&format!("{prefix}/list"), get(end_user_list))
}

/// A POST route: the caller's actor on `$route`, the JSON body, then `$call`.
macro_rules! post_route {
    ($name:ident, $route:literal, |$inner:ident, $actor:ident, $body:ident| $call:expr) => {
        async fn $name(
            State(service): State<KeyService>,
            caller: CallerExt,
            body: Bytes,
        ) -> Result<Json<Value>> {
            let $actor = actor(&service, &caller, $route)?;
            let $body = json_body(&body)?;
            let $inner = service.inner();
            $call.await.map(Json)
        }
    };
}

post_route!(team_new, "/team/new", |inner, actor, body| teams::new(
    inner, &actor, body
));
post_route!(team_update, "/team/update", |inner, actor, body| {
    teams::update(inner, &actor, body)
});
post_route!(team_delete, "/team/delete", |inner, actor, body| {
    teams::delete(inner, &actor, body)
});
post_route!(team_block, "/team/block", |inner, actor, body| {
    teams::set_blocked(inner, &actor, body, true)
});
post_route!(team_unblock, "/team/unblock", |inner, actor, body| {
    teams::set_blocked(inner, &actor, body, false)
});
post_route!(member_add, "/team/member_add", |inner, actor, body| {
    members::add(inner, &actor, body)
});
post_route!(
    member_delete,
    "/team/member_delete",
    |inner, actor, body| { members::delete(inner, &actor, body) }
);
post_route!(
    member_update,
    "/team/member_update",
    |inner, actor, body| { members::update(inner, &actor, body) }
);
post_route!(team_model_add, "/team/model/add", |inner, actor, body| {
    teams::change_models(inner, &actor, body, true)
});
post_route!(
    team_model_delete,
    "/team/model/delete",
    |inner, actor, body| { teams::change_models(inner, &actor, body, false) }
);
post_route!(user_new, "/user/new", |inner, actor, body| users::new(
    inner, &actor, body
));
post_route!(user_update, "/user/update", |inner, actor, body| {
    users::update(inner, &actor, body)
});
post_route!(user_delete, "/user/delete", |inner, actor, body| {
    users::delete(inner, &actor, body)
});

post_route!(org_new, "/organization/new", |inner, actor, body| {
    orgs::new(inner, &actor, body)
});
post_route!(org_update, "/organization/update", |inner, actor, body| {
    orgs::update(inner, &actor, body)
});
post_route!(org_delete, "/organization/delete", |inner, actor, body| {
    orgs::delete(inner, &actor, body)
});
post_route!(
    org_member_add,
    "/organization/member_add",
    |inner, actor, body| { orgs::member_add(inner, &actor, body) }
);
post_route!(
    org_member_update,
    "/organization/member_update",
    |inner, actor, body| { org_members::update(inner, &actor, body) }
);
post_route!(
    org_member_delete,
    "/organization/member_delete",
    |inner, actor, body| { org_members::delete(inner, &actor, body) }
);
post_route!(budget_new, "/budget/new", |inner, actor, body| {
    budgets::new(inner, &actor, body)
});
post_route!(budget_update, "/budget/update", |inner, actor, body| {
    budgets::update(inner, &actor, body)
});
post_route!(budget_delete, "/budget/delete", |inner, actor, body| {
    budgets::delete(inner, &actor, body)
});
post_route!(budget_info, "/budget/info", |inner, actor, body| {
    budgets::info(inner, &actor, budget_ids(&body))
});
post_route!(end_user_new, "/end_user/new", |inner, actor, body| {
    end_users::new(inner, &actor, body)
});
post_route!(end_user_update, "/end_user/update", |inner, actor, body| {
    end_users::update(inner, &actor, body)
});
post_route!(end_user_delete, "/end_user/delete", |inner, actor, body| {
    end_users::delete(inner, &actor, body)
});
post_route!(end_user_block, "/end_user/block", |inner, actor, body| {
    end_users::set_blocked(inner, &actor, body, true)
});
post_route!(
    end_user_unblock,
    "/end_user/unblock",
    |inner, actor, body| { end_users::set_blocked(inner, &actor, body, false) }
);

/// `{"budgets": [ids]}` of `POST /budget/info`.
fn budget_ids(body: &Value) -> Vec<String> {
    body.get("budgets")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A GET route: the caller's actor on `$route`, the query parameters, then `$call`.
macro_rules! get_route {
    ($name:ident, $route:literal, |$inner:ident, $actor:ident, $params:ident| $call:expr) => {
        async fn $name(
            State(service): State<KeyService>,
            caller: CallerExt,
            query: Params,
        ) -> Result<Json<Value>> {
            let $actor = actor(&service, &caller, $route)?;
            let $params = params(query)?;
            let $inner = service.inner();
            $call.await.map(Json)
        }
    };
}

get_route!(org_info, "/organization/info", |inner, actor, params| {
    orgs::info(inner, &actor, param(&params, "organization_id"))
});
get_route!(org_list, "/organization/list", |inner, actor, _params| {
    orgs::list(inner, &actor)
});
get_route!(budget_info_get, "/budget/info", |inner, actor, params| {
    budgets::info(
        inner,
        &actor,
        owned(&params, "budget_id").into_iter().collect(),
    )
});
get_route!(budget_list, "/budget/list", |inner, actor, _params| {
    budgets::list(inner, &actor)
});
get_route!(end_user_info, "/end_user/info", |inner, actor, params| {
    end_users::info(
        inner,
        &actor,
        param(&params, "end_user_id").or(param(&params, "user_id")),
    )
});
get_route!(end_user_list, "/end_user/list", |inner, actor, _params| {
    end_users::list(inner, &actor)
});

fn owned(params: &[(String, String)], name: &str) -> Option<String> {
    param(params, name).map(str::to_owned)
}

fn page_size(params: &[(String, String)], name: &str, default: u64) -> Result<u64> {
    let size = positive(params, name, default)?;
    if size > 1000 {
        return Err(Error::bad_param(
            name,
            format!("{name} must be between 1 and 1000"),
        ));
    }
    Ok(size)
}

async fn team_info(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/team/info")?;
    let params = params(query)?;
    teams::info(service.inner(), &actor, param(&params, "team_id"))
        .await
        .map(Json)
}

fn team_query(params: &[(String, String)]) -> Result<TeamQuery> {
    Ok(TeamQuery {
        user_id: owned(params, "user_id"),
        organization_id: owned(params, "organization_id"),
        team_id: owned(params, "team_id"),
        team_alias: owned(params, "team_alias"),
        page: positive(params, "page", 1)?,
        page_size: page_size(params, "page_size", 10)?,
    })
}

async fn team_list(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/team/list")?;
    let query = team_query(&params(query)?)?;
    teams::list(service.inner(), &actor, &query).await.map(Json)
}

async fn team_list_v2(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/v2/team/list")?;
    let query = team_query(&params(query)?)?;
    teams::list_v2(service.inner(), &actor, &query)
        .await
        .map(Json)
}

async fn user_info(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/user/info")?;
    let params = params(query)?;
    users::info(service.inner(), &actor, param(&params, "user_id"))
        .await
        .map(Json)
}

async fn user_list(
    State(service): State<KeyService>,
    caller: CallerExt,
    query: Params,
) -> Result<Json<Value>> {
    let actor = actor(&service, &caller, "/user/list")?;
    let params = params(query)?;
    let query = UserQuery {
        role: owned(&params, "role"),
        user_ids: param(&params, "user_ids").map(|ids| {
            ids.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
        team: owned(&params, "team"),
        page: positive(&params, "page", 1)?,
        page_size: page_size(&params, "page_size", 25)?,
    };
    users::list(service.inner(), &actor, &query).await.map(Json)
}
