//! `/team/*` (but the member routes, in [`super::members`]): LiteLLM's team management. Every
//! write holds the admin lock, runs in one transaction and reloads the team in the directory,
//! so limits and blocks apply to the next request.

use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

use super::access::Actor;
use super::common::{
    CAPS, CapsNames, CapsPatch, after_keys_deleted, delete_keys, id_field, new_id, required_list,
    set, set_list, tokens, unique,
};
use super::members::{NewMember, add_members, parse_members};
use super::model::{BudgetRecord, Caps, OrgRecord, TeamRecord};
use super::store::{self as rows, Val};
use super::team_vault;
use crate::request::{Body, Patch};
use crate::state::Inner;
use crate::store::{ListFilter, db_err};
use crate::vault_location::Location;

/// LiteLLM's names of a team's default member budget.
const MEMBER_CAPS: CapsNames = CapsNames {
    max_budget: "team_member_budget",
    tpm_limit: "team_member_tpm_limit",
    rpm_limit: "team_member_rpm_limit",
    max_parallel_requests: "team_member_max_parallel_requests",
    budget_duration: "team_member_budget_duration",
};

/// The settable fields of `/team/new` and `/team/update`.
struct TeamFields {
    team_alias: Patch<String>,
    organization_id: Patch<String>,
    models: Patch<Vec<String>>,
    metadata: Patch<Map<String, Value>>,
    caps: CapsPatch,
    blocked: Patch<bool>,
    member_caps: CapsPatch,
}

impl TeamFields {
    fn parse(body: &Body) -> Result<Self> {
        let team_alias = body.string("team_alias")?;
        if let Patch::Set(alias) = &team_alias
            && alias.trim().is_empty()
        {
            return Err(Error::bad_param(
                "team_alias",
                "team_alias must not be empty",
            ));
        }
        Ok(Self {
            team_alias,
            organization_id: id_field(body, "organization_id")?,
            models: body.string_list("models")?,
            metadata: body.object("metadata")?,
            caps: CapsPatch::parse(body, &CAPS)?,
            blocked: body.boolean("blocked")?,
            member_caps: CapsPatch::parse(body, &MEMBER_CAPS)?,
        })
    }

    /// Applies the fields; returns whether the budget period changed.
    fn apply(&self, team: &mut TeamRecord, now: i64) -> bool {
        set(&self.team_alias, &mut team.team_alias);
        set(&self.organization_id, &mut team.organization_id);
        set_list(&self.models, &mut team.models);
        match &self.metadata {
            Patch::Set(m) => m.clone_into(&mut team.metadata),
            Patch::Null => team.metadata.clear(),
            Patch::Absent => {}
        }
        let mut blocked = Some(team.blocked);
        set(&self.blocked, &mut blocked);
        team.blocked = blocked.unwrap_or(false);
        match self.caps.apply(&mut team.caps, now) {
            Some(reset_at) => {
                team.budget_reset_at = reset_at;
                true
            }
            None => false,
        }
    }
}

/// `POST /team/new`: the team (LiteLLM_TeamTable).
pub(crate) async fn new(inner: &Inner, actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let team_id = id_field(&body, "team_id")?.value().cloned();
    let fields = TeamFields::parse(&body)?;
    let mut members = parse_members(&body, "members_with_roles")?;
    if let Some(user_id) = &actor.user_id
        && !members.iter().any(|m| m.user_id.as_ref() == Some(user_id))
    {
        // LiteLLM makes a (non-master) creator an admin of the new team.
        members.push(NewMember::admin(user_id));
    }
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    let team_id = team_id.unwrap_or_else(new_id);
    if inner.team_record(&team_id).await?.is_some() {
        return Err(Error::bad_param(
            "team_id",
            format!("Team id = {team_id} already exists. Please use a different team id."),
        ));
    }
    let mut team = TeamRecord {
        team_id: team_id.clone(),
        team_alias: None,
        organization_id: None,
        metadata: Map::new(),
        models: Vec::new(),
        caps: Caps::default(),
        spend: 0.0,
        budget_reset_at: None,
        blocked: false,
        team_member_budget_id: None,
        created_at: now,
        updated_at: now,
    };
    fields.apply(&mut team, now);
    check_alias_free(inner, &team, None).await?;
    check_organization(inner, &team).await?;
    team_vault::checked_location(inner, &team).await?;

    let mut tx = inner.store.begin().await?;
    let member_budget = member_budget(inner, &mut tx, &team, &fields.member_caps, now).await?;
    team.team_member_budget_id = member_budget.map(|b| b.budget_id);
    rows::insert(&mut tx, &team)
        .await
        .map_err(|e| alias_taken(e, &team))?;
    add_members(inner, &mut tx, &team, &members, None, now).await?;
    tx.commit().await?;
    inner.reload_team(&team_id).await;
    tracing::info!(team = %team_id, "team created");
    inner.team_json(&team).await
}

/// `POST /team/update` (`team_id` + fields): `{"team_id", "data": team}`.
pub(crate) async fn update(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let team_id = body.required_string("team_id")?;
    let fields = TeamFields::parse(&body)?;
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    let current = inner.team_or_404(&team_id).await?;
    let mut team = current.clone();
    let period_changed = fields.apply(&mut team, now);
    team.updated_at = now;
    check_alias_free(inner, &team, Some(&current)).await?;
    if team.organization_id != current.organization_id {
        check_organization(inner, &team).await?;
    }
    // A new Vault location: every copy is written there before anything is saved.
    let moves = match team_vault::checked_location(inner, &team).await? {
        to if Location::of_metadata(&current.metadata).ok().as_ref() != Some(&to) => {
            team_vault::write_moved(inner, &team_id, &to).await?
        }
        _ => Vec::new(),
    };
    let saved = async {
        let mut tx = inner.store.begin().await?;
        if !fields.member_caps.is_absent() {
            let budget = member_budget(inner, &mut tx, &team, &fields.member_caps, now).await?;
            team.team_member_budget_id = budget.map(|b| b.budget_id);
        }
        let with: &[&str] = if period_changed {
            &["budget_reset_at"]
        } else {
            &[]
        };
        rows::update(&mut tx, &team, with)
            .await
            .map_err(|e| alias_taken(e, &team))?;
        team_vault::record_moved(&mut tx, &moves, now).await?;
        tx.commit().await
    };
    if let Err(e) = saved.await {
        team_vault::undo(inner, &moves).await;
        return Err(e);
    }
    team_vault::finish(inner, &moves).await;
    inner.reload_team(&team_id).await;
    if period_changed && let Some(entry) = inner.directory.team(&team_id) {
        entry.team.live.lock().budget_reset_at = team.budget_reset_at;
    }
    tracing::info!(team = %team_id, "team updated");
    Ok(json!({"team_id": team_id, "data": inner.team_json(&team).await?}))
}

/// `POST /team/delete` `{"team_ids": [...]}`: the teams, their memberships and (like LiteLLM)
/// their keys, whose Vault copies go too.
pub(crate) async fn delete(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let ids = required_list(&body, "team_ids", "team")?;
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    let mut teams = Vec::new();
    for id in &ids {
        teams.push(inner.team_or_404(id).await?);
    }
    let mut keys = Vec::new();
    for team in &teams {
        keys.extend(
            inner
                .keys_where(ListFilter {
                    team_id: Some(team.team_id.clone()),
                    ..ListFilter::default()
                })
                .await?,
        );
    }
    let mut tx = inner.store.begin().await?;
    delete_keys(&mut tx, &keys, now).await.map_err(db_err)?;
    for team in &teams {
        rows::delete_where(&mut tx, "team_memberships", "team_id", &team.team_id)
            .await
            .map_err(db_err)?;
        if let Some(budget_id) = &team.team_member_budget_id {
            rows::delete_where(&mut tx, "budgets", "budget_id", budget_id)
                .await
                .map_err(db_err)?;
        }
        rows::delete(&mut tx, team).await.map_err(db_err)?;
    }
    tx.commit().await?;
    for team in &teams {
        inner.reload_team(&team.team_id).await;
        tracing::info!(team = %team.team_id, keys = keys.len(), "team deleted");
    }
    after_keys_deleted(inner, &keys).await;
    Ok(json!({"deleted_teams": ids, "deleted_keys": tokens(&keys)}))
}

/// `POST /team/block` and `/team/unblock` `{"team_id"}`: every key of the team stops (or
/// starts again) at once.
pub(crate) async fn set_blocked(
    inner: &Inner,
    _actor: &Actor,
    request: Value,
    blocked: bool,
) -> Result<Value> {
    let body = Body::from_value(request)?;
    let team_id = body.required_string("team_id")?;
    let _admin = inner.admin.lock().await;
    let mut team = inner.team_or_404(&team_id).await?;
    team.blocked = blocked;
    team.updated_at = inner.now();
    let mut tx = inner.store.begin().await?;
    rows::update(&mut tx, &team, &[]).await.map_err(db_err)?;
    tx.commit().await?;
    inner.reload_team(&team_id).await;
    tracing::info!(team = %team_id, blocked, "team {}", if blocked { "blocked" } else { "unblocked" });
    inner.team_json(&team).await
}

/// `POST /team/model/add` and `/team/model/delete` `{"team_id", "models": [...]}`.
pub(crate) async fn change_models(
    inner: &Inner,
    actor: &Actor,
    request: Value,
    add: bool,
) -> Result<Value> {
    let body = Body::from_value(request)?;
    let team_id = body.required_string("team_id")?;
    let models = match body.string_list("models")? {
        Patch::Set(models) if !models.is_empty() => models,
        _ => {
            return Err(Error::bad_param(
                "models",
                "models must list at least one model",
            ));
        }
    };
    let _admin = inner.admin.lock().await;
    let mut team = inner.team_or_404(&team_id).await?;
    if let Some(entry) = inner.directory.team(&team_id) {
        actor.check_team_admin(&entry)?;
    }
    if add {
        for model in models {
            if !team.models.contains(&model) {
                team.models.push(model);
            }
        }
        check_organization(inner, &team).await?;
    } else {
        team.models.retain(|m| !models.contains(m));
    }
    team.updated_at = inner.now();
    let mut tx = inner.store.begin().await?;
    rows::update(&mut tx, &team, &[]).await.map_err(db_err)?;
    tx.commit().await?;
    inner.reload_team(&team_id).await;
    inner.team_json(&team).await
}

async fn check_alias_free(
    inner: &Inner,
    team: &TeamRecord,
    current: Option<&TeamRecord>,
) -> Result<()> {
    let Some(alias) = &team.team_alias else {
        return Ok(());
    };
    if current.is_some_and(|c| c.team_alias.as_ref() == Some(alias)) {
        return Ok(());
    }
    let taken: Option<TeamRecord> = inner.store.find("team_alias", alias).await?;
    match taken {
        Some(other) => Err(Error::bad_param(
            "team_alias",
            format!(
                "team_alias '{alias}' is already used by team {}",
                other.team_id
            ),
        )),
        None => Ok(()),
    }
}

fn alias_taken(e: sqlx::Error, team: &TeamRecord) -> Error {
    unique(e, "team_alias", || {
        format!(
            "team_alias '{}' is already used by another team",
            team.team_alias.as_deref().unwrap_or_default()
        )
    })
}

/// A team's organization must exist, and the team may not exceed it: its models are among
/// the organization's (when it lists any) and its budget is within the organization's.
async fn check_organization(inner: &Inner, team: &TeamRecord) -> Result<()> {
    let Some(org_id) = &team.organization_id else {
        return Ok(());
    };
    let org: Option<OrgRecord> = inner.store.find("organization_id", org_id).await?;
    let Some(org) = org else {
        return Err(Error::bad_param(
            "organization_id",
            format!("organization_id '{org_id}' does not exist; create it with /organization/new"),
        ));
    };
    if !org.models.is_empty()
        && let Some(model) = team.models.iter().find(|m| !org.models.contains(m))
    {
        return Err(Error::bad_param(
            "models",
            format!(
                "Model not in organization's allowed models. Model={model}, organization \
                 models={:?}",
                org.models
            ),
        ));
    }
    if let (Some(budget_id), Some(team_max)) = (&org.budget_id, team.caps.max_budget)
        && let Some(budget) = inner.budget_record(budget_id).await?
        && let Some(org_max) = budget.caps.max_budget
        && team_max > org_max
    {
        return Err(Error::bad_param(
            "max_budget",
            format!(
                "team max_budget {team_max} is more than the organization's max_budget {org_max}"
            ),
        ));
    }
    Ok(())
}

/// Creates or updates the team's default member budget from the `team_member_*` fields; the
/// budget the team points to afterwards.
async fn member_budget(
    inner: &Inner,
    tx: &mut crate::store::Tx,
    team: &TeamRecord,
    patch: &CapsPatch,
    now: i64,
) -> Result<Option<BudgetRecord>> {
    if patch.is_absent() {
        return Ok(None);
    }
    let existing = match &team.team_member_budget_id {
        Some(id) => inner.budget_record(id).await?,
        None => None,
    };
    let mut budget = existing.clone().unwrap_or(BudgetRecord {
        budget_id: new_id(),
        caps: Caps::default(),
        soft_budget: None,
        model_max_budget: Map::new(),
        created_at: now,
        created_by: String::new(),
        updated_at: now,
        updated_by: String::new(),
    });
    patch.apply(&mut budget.caps, now);
    budget.updated_at = now;
    if existing.is_some() {
        rows::update(tx, &budget, &[]).await.map_err(db_err)?;
    } else {
        rows::insert(tx, &budget).await.map_err(db_err)?;
    }
    Ok(Some(budget))
}

/// `GET /team/info?team_id=`: `{team_id, team_info, keys, team_memberships}`.
pub(crate) async fn info(inner: &Inner, actor: &Actor, team_id: Option<&str>) -> Result<Value> {
    let team_id = match team_id {
        Some(id) => id.to_owned(),
        None => match actor.key.as_ref().and_then(|k| k.team_id.clone()) {
            Some(id) => id,
            None => return Err(Error::bad_param("team_id", "team_id is required")),
        },
    };
    let team = inner
        .team_record(&team_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("Team not found, passed team id: {team_id}.")))?;
    if let Some(entry) = inner.directory.team(&team_id) {
        actor.check_team_read(&entry)?;
    }
    let keys = inner
        .keys_json_where(ListFilter {
            team_id: Some(team_id.clone()),
            ..ListFilter::default()
        })
        .await?;
    let memberships = memberships_json(inner, &team_id).await?;
    Ok(json!({
        "team_id": team_id,
        "team_info": inner.team_json(&team).await?,
        "keys": keys,
        "team_memberships": memberships,
    }))
}

async fn memberships_json(inner: &Inner, team_id: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for member in inner.members_of(team_id).await? {
        let budget = match &member.budget_id {
            Some(id) => inner.budget_record(id).await?,
            None => None,
        };
        let mut member = member;
        if let Some(entry) = inner.directory.team(team_id)
            && let Some(live) = entry.members.get(&member.user_id)
        {
            member.spend = member.spend.max(live.live.lock().spend);
        }
        out.push(member.to_json(budget.as_ref()));
    }
    Ok(out)
}

/// Filters of the team lists.
#[derive(Debug, Default, Clone)]
pub struct TeamQuery {
    pub user_id: Option<String>,
    pub organization_id: Option<String>,
    pub team_id: Option<String>,
    pub team_alias: Option<String>,
    pub page: u64,
    pub page_size: u64,
}

/// The teams matching `query` (non-admins: only their own user's teams).
async fn find_teams(
    inner: &Inner,
    actor: &Actor,
    query: &TeamQuery,
    page: Option<(u64, u64)>,
) -> Result<(Vec<TeamRecord>, u64)> {
    if actor.own_only && (query.user_id.is_none() || query.user_id != actor.user_id) {
        return Err(Error::Unauthorized(format!(
            "Only admin users can query all teams/other teams. Your user role={}",
            match actor.kind {
                super::access::Kind::InternalUser => "internal_user",
                super::access::Kind::InternalUserViewer => "internal_user_viewer",
                _ => "unknown",
            }
        )));
    }
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    let mut add = |clause: &str, value: &str| {
        binds.push(Val::text(value));
        clauses.push(clause.replace("$?", &format!("${}", binds.len())));
    };
    if let Some(user_id) = &query.user_id {
        add(
            "team_id IN (SELECT team_id FROM team_memberships WHERE user_id = $?)",
            user_id,
        );
    }
    match query.organization_id.as_deref() {
        Some("default_organization") => add("organization_id IS NULL AND $? = $?", ""),
        Some(org) => add("organization_id = $?", org),
        None => {}
    }
    if let Some(team_id) = &query.team_id {
        add("team_id = $?", team_id);
    }
    if let Some(alias) = &query.team_alias {
        add("LOWER(team_alias) LIKE LOWER($?)", &format!("%{alias}%"));
    }
    let filter = (!clauses.is_empty()).then(|| clauses.join(" AND "));
    let total = inner
        .store
        .count("teams", filter.as_deref(), &binds)
        .await?;
    let teams = inner
        .store
        .select(filter.as_deref(), &binds, "team_alias, team_id", page)
        .await?;
    Ok((teams, total))
}

/// `GET /team/list?user_id=&organization_id=`: every team, with its keys and memberships.
pub(crate) async fn list(inner: &Inner, actor: &Actor, query: &TeamQuery) -> Result<Value> {
    let (teams, _) = find_teams(inner, actor, query, None).await?;
    let mut out = Vec::with_capacity(teams.len());
    for team in teams {
        let mut json = inner.team_json(&team).await?;
        let keys = inner
            .keys_where(ListFilter {
                team_id: Some(team.team_id.clone()),
                ..ListFilter::default()
            })
            .await?;
        if let Some(obj) = json.as_object_mut() {
            obj.insert(
                "keys".into(),
                Value::Array(keys.into_iter().map(|k| k.to_json()).collect()),
            );
            obj.insert(
                "team_memberships".into(),
                Value::Array(memberships_json(inner, &team.team_id).await?),
            );
        }
        out.push(json);
    }
    Ok(Value::Array(out))
}

/// `GET /v2/team/list?page=&page_size=&...`: `{teams, total, page, page_size, total_pages}`.
pub(crate) async fn list_v2(inner: &Inner, actor: &Actor, query: &TeamQuery) -> Result<Value> {
    let (teams, total) =
        find_teams(inner, actor, query, Some((query.page, query.page_size))).await?;
    let mut out = Vec::with_capacity(teams.len());
    for team in teams {
        out.push(inner.team_json(&team).await?);
    }
    Ok(json!({
        "teams": out,
        "total": total,
        "page": query.page,
        "page_size": query.page_size,
        "total_pages": total.div_ceil(query.page_size.max(1)),
    }))
}

impl Inner {
    /// Brings the directory's copy of a team up to date after a committed write (a failed read
    /// is logged; the periodic reload catches up).
    pub(crate) async fn reload_team(&self, team_id: &str) {
        self.announce("team", team_id);
        if let Err(e) = self.directory.reload_team(&self.store, team_id).await {
            tracing::warn!(team = team_id, error = %e, "team not reloaded; the next full reload will");
        }
    }

    pub(crate) async fn reload_user(&self, user_id: &str) {
        self.announce("user", user_id);
        if let Err(e) = self.directory.reload_user(&self.store, user_id).await {
            tracing::warn!(user = user_id, error = %e, "user not reloaded; the next full reload will");
        }
    }
}
