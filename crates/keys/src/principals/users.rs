//! `/user/*`: LiteLLM's internal users. `/user/new` creates the user and, unless told not to
//! (`auto_create_key: false`), a key of theirs; deleting a user deletes their keys (and the keys'
//! Vault copies) and memberships.

use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

use super::access::Actor;
use super::common::{
    CAPS, CapsPatch, after_keys_deleted, delete_keys, id_field, new_id, required_list, set,
    set_list, tokens,
};
use super::members::{NewMember, add_members};
use super::model::{MemberRecord, Role, TeamRecord, TeamRole, UserRecord};
use super::store::{self as rows, Val};
use crate::request::{Body, Patch};
use crate::state::Inner;
use crate::store::{ListFilter, db_err};

struct UserFields {
    user_alias: Patch<String>,
    user_email: Patch<String>,
    user_role: Option<Role>,
    models: Patch<Vec<String>>,
    metadata: Patch<Map<String, Value>>,
    caps: CapsPatch,
}

impl UserFields {
    fn parse(body: &Body) -> Result<Self> {
        let user_role = match body.string("user_role")? {
            Patch::Set(role) => Some(Role::parse("user_role", &role)?),
            _ => None,
        };
        let user_email = body.string("user_email")?;
        if let Patch::Set(email) = &user_email
            && (email.trim().is_empty() || !email.contains('@'))
        {
            return Err(Error::bad_param(
                "user_email",
                format!("user_email '{email}' is not an email address"),
            ));
        }
        Ok(Self {
            user_alias: body.string("user_alias")?,
            user_email,
            user_role,
            models: body.string_list("models")?,
            metadata: body.object("metadata")?,
            caps: CapsPatch::parse(body, &CAPS)?,
        })
    }

    /// Returns whether the budget period changed.
    fn apply(&self, user: &mut UserRecord, now: i64) -> bool {
        set(&self.user_alias, &mut user.user_alias);
        set(&self.user_email, &mut user.user_email);
        if let Some(role) = self.user_role {
            user.user_role = role;
        }
        set_list(&self.models, &mut user.models);
        match &self.metadata {
            Patch::Set(m) => m.clone_into(&mut user.metadata),
            Patch::Null => user.metadata.clear(),
            Patch::Absent => {}
        }
        match self.caps.apply(&mut user.caps, now) {
            Some(reset_at) => {
                user.budget_reset_at = reset_at;
                true
            }
            None => false,
        }
    }
}

async fn check_email_free(inner: &Inner, user: &UserRecord) -> Result<()> {
    if let Some(email) = &user.user_email
        && let Some(other) = inner.user_by_email(email).await?
        && other.user_id != user.user_id
    {
        return Err(Error::bad_param(
            "user_email",
            format!("User with email {email} already exists"),
        ));
    }
    Ok(())
}

/// `POST /user/new`: the user, in teams given by `teams`, and (unless `auto_create_key` is
/// false) a new key of theirs: `{key, token, key_name, expires, user_id, ...}`.
pub(crate) async fn new(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let user_id = id_field(&body, "user_id")?.value().cloned();
    let fields = UserFields::parse(&body)?;
    let teams = body
        .string_list("teams")?
        .value()
        .cloned()
        .unwrap_or_default();
    let auto_create_key = body
        .boolean("auto_create_key")?
        .value()
        .copied()
        .unwrap_or(true);
    let key_request = key_request(&body)?;
    let user = {
        let _admin = inner.admin.lock().await;
        let now = inner.now();
        let user_id = user_id.unwrap_or_else(new_id);
        if inner.user_record(&user_id).await?.is_some() {
            return Err(Error::bad_param(
                "user_id",
                format!("User with id {user_id} already exists"),
            ));
        }
        let mut user = UserRecord::new(user_id.clone(), None, now);
        fields.apply(&mut user, now);
        check_email_free(inner, &user).await?;
        let mut team_records: Vec<TeamRecord> = Vec::new();
        for team_id in &teams {
            team_records.push(inner.team_record(team_id).await?.ok_or_else(|| {
                Error::bad_param("teams", format!("team {team_id} does not exist"))
            })?);
        }
        let mut tx = inner.store.begin().await?;
        rows::insert(&mut tx, &user).await.map_err(|e| {
            super::common::unique(e, "user_email", || {
                "a user with this email or id already exists".into()
            })
        })?;
        let member = NewMember {
            role: TeamRole::User,
            user_id: Some(user_id.clone()),
            user_email: None,
        };
        for team in &team_records {
            add_members(
                inner,
                &mut tx,
                team,
                std::slice::from_ref(&member),
                None,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        inner.reload_user(&user_id).await;
        for team in &team_records {
            inner.reload_team(&team.team_id).await;
        }
        tracing::info!(user = %user_id, role = %user.user_role, "user created");
        user
    };
    let mut response = user.to_json(&teams);
    if auto_create_key {
        let mut key_request = key_request;
        key_request.insert("user_id".into(), Value::String(user.user_id.clone()));
        match crate::admin::generate(inner, Value::Object(key_request)).await {
            Ok(key) => merge_key(&mut response, &key),
            Err(e) => {
                // No user left behind without the key asked for.
                let _ = remove_user(inner, &user.user_id).await;
                return Err(e);
            }
        }
    } else if let Some(obj) = response.as_object_mut() {
        obj.insert("key".into(), Value::Null);
    }
    Ok(response)
}

/// The key fields `/user/new` passes on to the new key.
fn key_request(body: &Body) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for name in ["key_alias", "duration"] {
        if let Patch::Set(value) = body.string(name)? {
            out.insert(name.into(), Value::String(value));
        }
    }
    Ok(out)
}

fn merge_key(response: &mut Value, key: &Value) {
    if let (Some(obj), Some(key)) = (response.as_object_mut(), key.as_object()) {
        for name in ["key", "token", "key_name", "key_alias", "expires"] {
            obj.insert(name.into(), key.get(name).cloned().unwrap_or(Value::Null));
        }
    }
}

/// Removes a user created a moment ago whose key could not be made.
async fn remove_user(inner: &Inner, user_id: &str) -> Result<()> {
    let _admin = inner.admin.lock().await;
    let mut tx = inner.store.begin().await?;
    rows::delete_where(&mut tx, "team_memberships", "user_id", user_id)
        .await
        .map_err(db_err)?;
    rows::delete_where(&mut tx, "users", "user_id", user_id)
        .await
        .map_err(db_err)?;
    tx.commit().await?;
    inner.reload_user(user_id).await;
    Ok(())
}

/// `GET /user/info?user_id=`: `{user_id, user_info, keys, teams}` (without `user_id`: the
/// caller's own user).
pub(crate) async fn info(inner: &Inner, actor: &Actor, user_id: Option<&str>) -> Result<Value> {
    let user_id = match (user_id, &actor.user_id) {
        (Some(id), _) => id.to_owned(),
        (None, Some(own)) => own.clone(),
        (None, None) => return Err(Error::bad_param("user_id", "user_id is required")),
    };
    actor.check_user(&user_id)?;
    let user = inner
        .user_record(&user_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("User not found, passed user_id={user_id}")))?;
    let memberships = inner.memberships_of(&user_id).await?;
    let team_ids: Vec<String> = memberships.iter().map(|m| m.team_id.clone()).collect();
    let mut teams = Vec::new();
    for team_id in &team_ids {
        if let Some(team) = inner.team_record(team_id).await? {
            teams.push(inner.team_json(&team).await?);
        }
    }
    let keys = inner
        .keys_json_where(ListFilter {
            user_id: Some(user_id.clone()),
            ..ListFilter::default()
        })
        .await?;
    let mut user = user;
    if let Some(entry) = inner.directory.user(&user_id) {
        user.spend = user.spend.max(entry.live.lock().spend);
    }
    Ok(json!({
        "user_id": user_id,
        "user_info": user.to_json(&team_ids),
        "keys": keys,
        "teams": teams,
    }))
}

/// `GET /user/list` filters.
#[derive(Debug, Default, Clone)]
pub struct UserQuery {
    pub role: Option<String>,
    pub user_ids: Option<Vec<String>>,
    pub team: Option<String>,
    pub page: u64,
    pub page_size: u64,
}

/// `GET /user/list?page=&page_size=&role=&user_ids=&team=`:
/// `{users, total, page, page_size, total_pages}`.
pub(crate) async fn list(inner: &Inner, _actor: &Actor, query: &UserQuery) -> Result<Value> {
    let mut clauses: Vec<String> = Vec::new();
    let mut binds: Vec<Val> = Vec::new();
    if let Some(role) = &query.role {
        let role = Role::parse("role", role)?;
        binds.push(Val::text(role.as_str()));
        clauses.push(format!("user_role = ${}", binds.len()));
    }
    if let Some(team) = &query.team {
        binds.push(Val::text(team));
        clauses.push(format!(
            "user_id IN (SELECT user_id FROM team_memberships WHERE team_id = ${})",
            binds.len()
        ));
    }
    if let Some(ids) = &query.user_ids {
        let mut places = Vec::new();
        for id in ids {
            binds.push(Val::text(id));
            places.push(format!("${}", binds.len()));
        }
        if places.is_empty() {
            clauses.push("1 = 0".into());
        } else {
            clauses.push(format!("user_id IN ({})", places.join(", ")));
        }
    }
    let filter = (!clauses.is_empty()).then(|| clauses.join(" AND "));
    let total = inner
        .store
        .count("users", filter.as_deref(), &binds)
        .await?;
    let users: Vec<UserRecord> = inner
        .store
        .select(
            filter.as_deref(),
            &binds,
            "created_at, user_id",
            Some((query.page, query.page_size)),
        )
        .await?;
    let mut out = Vec::with_capacity(users.len());
    for user in users {
        let teams: Vec<String> = inner
            .memberships_of(&user.user_id)
            .await?
            .into_iter()
            .map(|m| m.team_id)
            .collect();
        let key_count = inner
            .store
            .count("keys", Some("user_id = $1"), &[Val::text(&user.user_id)])
            .await?;
        let mut json = user.to_json(&teams);
        if let Some(obj) = json.as_object_mut() {
            obj.insert("key_count".into(), json!(key_count));
        }
        out.push(json);
    }
    Ok(json!({
        "users": out,
        "total": total,
        "page": query.page,
        "page_size": query.page_size,
        "total_pages": total.div_ceil(query.page_size.max(1)),
    }))
}

/// `POST /user/update` (`user_id` or `user_email` + fields): `{"user_id", "data": user}`.
pub(crate) async fn update(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let fields = UserFields::parse(&body)?;
    let _admin = inner.admin.lock().await;
    let current = match (body.string("user_id")?, body.string("user_email")?) {
        (Patch::Set(id), _) => inner.user_record(&id).await?,
        (_, Patch::Set(email)) => inner.user_by_email(&email).await?,
        _ => {
            return Err(Error::bad_param(
                "user_id",
                "user_id or user_email is required",
            ));
        }
    }
    .ok_or_else(|| Error::NotFound("User not found".into()))?;
    let now = inner.now();
    let mut user = current.clone();
    let period_changed = fields.apply(&mut user, now);
    user.updated_at = now;
    check_email_free(inner, &user).await?;
    let mut tx = inner.store.begin().await?;
    let with: &[&str] = if period_changed {
        &["budget_reset_at"]
    } else {
        &[]
    };
    rows::update(&mut tx, &user, with).await.map_err(|e| {
        super::common::unique(e, "user_email", || {
            "a user with this email already exists".into()
        })
    })?;
    tx.commit().await?;
    inner.reload_user(&user.user_id).await;
    if period_changed && let Some(entry) = inner.directory.user(&user.user_id) {
        entry.live.lock().budget_reset_at = user.budget_reset_at;
    }
    let teams: Vec<String> = inner
        .memberships_of(&user.user_id)
        .await?
        .into_iter()
        .map(|m| m.team_id)
        .collect();
    Ok(json!({"user_id": user.user_id, "data": user.to_json(&teams)}))
}

/// `POST /user/delete` `{"user_ids": [...]}`: the users, their memberships and their keys.
pub(crate) async fn delete(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let ids = required_list(&body, "user_ids", "user")?;
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    let mut users = Vec::new();
    let mut keys = Vec::new();
    let mut teams: Vec<String> = Vec::new();
    for id in &ids {
        let user = inner
            .user_record(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("User not found, passed user_id={id}")))?;
        keys.extend(
            inner
                .keys_where(ListFilter {
                    user_id: Some(id.clone()),
                    ..ListFilter::default()
                })
                .await?,
        );
        let memberships: Vec<MemberRecord> = inner.memberships_of(id).await?;
        teams.extend(memberships.into_iter().map(|m| m.team_id));
        users.push(user);
    }
    let mut tx = inner.store.begin().await?;
    delete_keys(&mut tx, &keys, now).await.map_err(db_err)?;
    for user in &users {
        for table in ["team_memberships", "organization_memberships"] {
            rows::delete_where(&mut tx, table, "user_id", &user.user_id)
                .await
                .map_err(db_err)?;
        }
        rows::delete(&mut tx, user).await.map_err(db_err)?;
    }
    tx.commit().await?;
    for user in &users {
        inner.reload_user(&user.user_id).await;
        tracing::info!(user = %user.user_id, "user deleted");
    }
    teams.sort();
    teams.dedup();
    for team in &teams {
        inner.reload_team(team).await;
    }
    after_keys_deleted(inner, &keys).await;
    Ok(json!({"deleted_users": ids, "deleted_keys": tokens(&keys)}))
}
