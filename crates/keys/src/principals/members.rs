//! `/team/member_add`, `/team/member_delete`, `/team/member_update`: who is in a team, with
//! which role and which budget. Members are named by `user_id` or `user_email`; a user not yet
//! known is created (as LiteLLM does).

use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

use super::access::Actor;
use super::common::{after_keys_deleted, delete_keys, new_id, validate_id};
use super::model::{BudgetRecord, Caps, MemberRecord, TeamRecord, TeamRole, UserRecord};
use super::store::{self as rows};
use crate::request::{Body, Patch};
use crate::state::Inner;
use crate::store::{ListFilter, Tx, db_err};

/// One member of a request: `{"role", "user_id"?, "user_email"?}`.
#[derive(Debug, Clone)]
pub(crate) struct NewMember {
    pub role: TeamRole,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
}

impl NewMember {
    pub fn admin(user_id: &str) -> Self {
        Self {
            role: TeamRole::Admin,
            user_id: Some(user_id.to_owned()),
            user_email: None,
        }
    }

    fn parse(field: &str, value: &Value) -> Result<Self> {
        let Some(obj) = value.as_object() else {
            return Err(Error::bad_param(
                field,
                format!(
                    "{field} entries must be objects like {{\"role\": \"user\", \"user_id\": \"...\"}}"
                ),
            ));
        };
        let text = |name: &str| -> Result<Option<String>> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
                Some(_) => Err(Error::bad_param(
                    field,
                    format!("{field}: {name} must be a non-empty string"),
                )),
            }
        };
        let role = match text("role")? {
            Some(role) => TeamRole::parse("role", &role)?,
            None => TeamRole::User,
        };
        let user_id = text("user_id")?;
        if let Some(id) = &user_id {
            validate_id("user_id", id)?;
        }
        let user_email = text("user_email")?;
        if user_id.is_none() && user_email.is_none() {
            return Err(Error::bad_param(
                field,
                "Either user_id or user_email needs to be passed in",
            ));
        }
        Ok(Self {
            role,
            user_id,
            user_email,
        })
    }
}

/// A member object or a list of them under `field` (absent: none).
pub(crate) fn parse_members(body: &Body, field: &str) -> Result<Vec<NewMember>> {
    let members = match body.field(field) {
        Patch::Set(Value::Array(items)) => items
            .iter()
            .map(|item| NewMember::parse(field, item))
            .collect::<Result<Vec<_>>>()?,
        Patch::Set(item @ Value::Object(_)) => vec![NewMember::parse(field, item)?],
        Patch::Set(_) => {
            return Err(Error::bad_param(
                field,
                format!("{field} must be a member object or a list of them"),
            ));
        }
        _ => Vec::new(),
    };
    for (i, m) in members.iter().enumerate() {
        let same = |o: &NewMember| {
            (m.user_id.is_some() && o.user_id == m.user_id)
                || (m.user_email.is_some() && o.user_email == m.user_email)
        };
        if members[i + 1..].iter().any(same) {
            return Err(Error::bad_param(
                field,
                format!(
                    "{} is listed twice",
                    m.user_id
                        .as_deref()
                        .or(m.user_email.as_deref())
                        .unwrap_or_default()
                ),
            ));
        }
    }
    Ok(members)
}

/// The user a member names: found by id or email, or a new internal user.
async fn resolve_user(
    inner: &Inner,
    tx: &mut Tx,
    member: &NewMember,
    now: i64,
) -> Result<(UserRecord, bool)> {
    let found = match (&member.user_id, &member.user_email) {
        (Some(id), _) => inner.user_record(id).await?,
        (None, Some(email)) => inner.user_by_email(email).await?,
        (None, None) => None,
    };
    if let Some(user) = found {
        return Ok((user, false));
    }
    let user = UserRecord::new(
        member.user_id.clone().unwrap_or_else(new_id),
        member.user_email.clone(),
        now,
    );
    rows::insert(tx, &user).await.map_err(|e| {
        super::common::unique(e, "user_email", || {
            format!(
                "a user with email {} already exists",
                user.user_email.as_deref().unwrap_or_default()
            )
        })
    })?;
    Ok((user, true))
}

/// Adds `members` to `team` inside `tx`: 400 for one already in it. `max_budget_in_team` gives
/// each new member a budget of their own. Returns the users and memberships written.
pub(crate) async fn add_members(
    inner: &Inner,
    tx: &mut Tx,
    team: &TeamRecord,
    members: &[NewMember],
    max_budget_in_team: Option<f64>,
    now: i64,
) -> Result<Vec<(UserRecord, MemberRecord)>> {
    let existing = inner.members_of(&team.team_id).await?;
    let mut added = Vec::with_capacity(members.len());
    for member in members {
        let (user, _created) = resolve_user(inner, tx, member, now).await?;
        if existing.iter().any(|m| m.user_id == user.user_id) {
            let ids: Vec<&str> = existing.iter().map(|m| m.user_id.as_str()).collect();
            return Err(Error::bad_param(
                "member",
                format!(
                    "User={} already in team. Existing members={ids:?}",
                    user.user_id
                ),
            ));
        }
        let budget_id = match max_budget_in_team {
            Some(max) => {
                let budget = own_budget(max, now);
                rows::insert(tx, &budget).await.map_err(db_err)?;
                Some(budget.budget_id)
            }
            None => None,
        };
        let record = MemberRecord {
            team_id: team.team_id.clone(),
            user_id: user.user_id.clone(),
            role: member.role,
            spend: 0.0,
            budget_id,
            budget_reset_at: None,
            created_at: now,
            updated_at: now,
        };
        rows::insert(tx, &record).await.map_err(|e| {
            super::common::unique(e, "member", || {
                format!("User={} already in team", user.user_id)
            })
        })?;
        added.push((user, record));
    }
    Ok(added)
}

fn own_budget(max_budget: f64, now: i64) -> BudgetRecord {
    BudgetRecord {
        budget_id: new_id(),
        caps: Caps {
            max_budget: Some(max_budget),
            ..Caps::default()
        },
        soft_budget: None,
        model_max_budget: Map::new(),
        created_at: now,
        created_by: String::new(),
        updated_at: now,
        updated_by: String::new(),
    }
}

/// The team of a member route, checked for the caller (its admins may manage its members).
async fn team_for(inner: &Inner, actor: &Actor, body: &Body) -> Result<TeamRecord> {
    let team_id = body.required_string("team_id")?;
    let team = inner
        .team_record(&team_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("Team not found for team_id={team_id}")))?;
    if let Some(entry) = inner.directory.team(&team_id) {
        actor.check_team_admin(&entry)?;
    }
    Ok(team)
}

/// `POST /team/member_add` `{"team_id", "member": {...} | [...], "max_budget_in_team"?}`.
pub(crate) async fn add(inner: &Inner, actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let members = parse_members(&body, "member")?;
    if members.is_empty() {
        return Err(Error::bad_param("member", "No member/members passed in"));
    }
    let max_budget_in_team = body.amount("max_budget_in_team")?.value().copied();
    let _admin = inner.admin.lock().await;
    let team = team_for(inner, actor, &body).await?;
    let now = inner.now();
    let mut tx = inner.store.begin().await?;
    let added = add_members(inner, &mut tx, &team, &members, max_budget_in_team, now).await?;
    tx.commit().await?;
    inner.reload_team(&team.team_id).await;
    for (user, _) in &added {
        inner.reload_user(&user.user_id).await;
    }
    let mut response = inner.team_json(&team).await?;
    let mut users = Vec::new();
    for (user, _) in &added {
        let teams: Vec<String> = inner
            .memberships_of(&user.user_id)
            .await?
            .into_iter()
            .map(|m| m.team_id)
            .collect();
        users.push(user.to_json(&teams));
    }
    if let Some(obj) = response.as_object_mut() {
        obj.insert("updated_users".into(), Value::Array(users));
        obj.insert(
            "updated_team_memberships".into(),
            Value::Array(added.iter().map(|(_, m)| m.to_json(None)).collect()),
        );
    }
    Ok(response)
}

/// The membership a member route names by `user_id` or `user_email`, or LiteLLM's 400.
async fn find_member(inner: &Inner, team: &TeamRecord, body: &Body) -> Result<MemberRecord> {
    let user_id = body.string("user_id")?.value().cloned();
    let email = body.string("user_email")?.value().cloned();
    let user_id = match (user_id, email) {
        (Some(id), _) => Some(id),
        (None, Some(email)) => inner.user_by_email(&email).await?.map(|u| u.user_id),
        (None, None) => {
            return Err(Error::bad_param(
                "user_id",
                "Either user_id or user_email needs to be passed in",
            ));
        }
    };
    let members = inner.members_of(&team.team_id).await?;
    user_id
        .and_then(|id| members.into_iter().find(|m| m.user_id == id))
        .ok_or_else(|| Error::bad_param("user_id", "User not found in team"))
}

/// `POST /team/member_delete` `{"team_id", "user_id" | "user_email"}`: the member and their
/// keys of this team go (with the keys' Vault copies).
pub(crate) async fn delete(inner: &Inner, actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let _admin = inner.admin.lock().await;
    let team = team_for(inner, actor, &body).await?;
    let member = find_member(inner, &team, &body).await?;
    let now = inner.now();
    let keys = inner
        .keys_where(ListFilter {
            team_id: Some(team.team_id.clone()),
            user_id: Some(member.user_id.clone()),
            ..ListFilter::default()
        })
        .await?;
    let mut tx = inner.store.begin().await?;
    delete_keys(&mut tx, &keys, now).await.map_err(db_err)?;
    rows::delete(&mut tx, &member).await.map_err(db_err)?;
    if let Some(budget_id) = &member.budget_id {
        rows::delete_where(&mut tx, "budgets", "budget_id", budget_id)
            .await
            .map_err(db_err)?;
    }
    tx.commit().await?;
    inner.reload_team(&team.team_id).await;
    after_keys_deleted(inner, &keys).await;
    tracing::info!(team = %team.team_id, user = %member.user_id, "team member removed");
    inner.team_json(&team).await
}

/// `POST /team/member_update` `{"team_id", "user_id" | "user_email", "role"?,
/// "max_budget_in_team"?, "tpm_limit"?, "rpm_limit"?}`.
pub(crate) async fn update(inner: &Inner, actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let role = match body.string("role")? {
        Patch::Set(role) => Some(TeamRole::parse("role", &role)?),
        _ => None,
    };
    let max_budget = body.amount("max_budget_in_team")?;
    let tpm = body.count("tpm_limit")?;
    let rpm = body.count("rpm_limit")?;
    let _admin = inner.admin.lock().await;
    let team = team_for(inner, actor, &body).await?;
    let mut member = find_member(inner, &team, &body).await?;
    let now = inner.now();
    let mut tx = inner.store.begin().await?;
    let mut budget = match &member.budget_id {
        Some(id) => inner.budget_record(id).await?,
        None => None,
    };
    if !(max_budget.is_absent() && tpm.is_absent() && rpm.is_absent()) {
        let exists = budget.is_some();
        let mut b = budget.unwrap_or_else(|| own_budget(0.0, now));
        if !exists {
            b.caps.max_budget = None;
        }
        super::common::set(&max_budget, &mut b.caps.max_budget);
        super::common::set(&tpm, &mut b.caps.tpm_limit);
        super::common::set(&rpm, &mut b.caps.rpm_limit);
        b.updated_at = now;
        if exists {
            rows::update(&mut tx, &b, &[]).await.map_err(db_err)?;
        } else {
            rows::insert(&mut tx, &b).await.map_err(db_err)?;
        }
        member.budget_id = Some(b.budget_id.clone());
        budget = Some(b);
    }
    if let Some(role) = role {
        member.role = role;
    }
    member.updated_at = now;
    rows::update(&mut tx, &member, &[]).await.map_err(db_err)?;
    tx.commit().await?;
    inner.reload_team(&team.team_id).await;
    let email = inner
        .user_record(&member.user_id)
        .await?
        .and_then(|u| u.user_email);
    let caps = budget.map(|b| b.caps).unwrap_or_default();
    Ok(json!({
        "team_id": team.team_id,
        "user_id": member.user_id,
        "user_email": email,
        "role": member.role.as_str(),
        "max_budget_in_team": caps.max_budget,
        "tpm_limit": caps.tpm_limit,
        "rpm_limit": caps.rpm_limit,
    }))
}
