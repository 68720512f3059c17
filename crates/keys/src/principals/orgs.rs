//! `/organization/*`: organizations own teams; their limits live in a budget of their own (made
//! from the limit fields, or an existing `budget_id`), and a team may not exceed them.

use serde_json::{Value, json};
use vaultgate_core::{Error, Result};

use super::access::Actor;
use super::budgets::{budget_from, existing_budget, save};
use super::common::{CAPS, CapsPatch, id_field, new_id, required_list, set_list, validate_id};
use super::model::{OrgMemberRecord, OrgRecord, TeamRecord, UserRecord};
use super::store::{self as rows, Val};
use crate::request::{Body, Patch};
use crate::state::Inner;
use crate::store::db_err;

/// The roles a user may have in an organization.
pub(super) const ORG_ROLES: [&str; 3] = ["org_admin", "internal_user", "internal_user_viewer"];

pub(super) async fn org_or_404(inner: &Inner, id: &str) -> Result<OrgRecord> {
    let org: Option<OrgRecord> = inner.store.find("organization_id", id).await?;
    org.ok_or_else(|| {
        Error::NotFound(format!(
            "Organization not found, passed organization_id={id}"
        ))
    })
}

async fn check_alias_free(inner: &Inner, org: &OrgRecord) -> Result<()> {
    let taken: Option<OrgRecord> = inner
        .store
        .find("organization_alias", &org.organization_alias)
        .await?;
    match taken {
        Some(other) if other.organization_id != org.organization_id => Err(Error::bad_param(
            "organization_alias",
            format!(
                "organization_alias '{}' is already used by organization {}",
                org.organization_alias, other.organization_id
            ),
        )),
        _ => Ok(()),
    }
}

/// `POST /organization/new`.
pub(crate) async fn new(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let alias = body.required_string("organization_alias")?;
    let id = id_field(&body, "organization_id")?.value().cloned();
    let caps = CapsPatch::parse(&body, &CAPS)?;
    let models = body
        .string_list("models")?
        .value()
        .cloned()
        .unwrap_or_default();
    let metadata = body
        .object("metadata")?
        .value()
        .cloned()
        .unwrap_or_default();
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    let id = id.unwrap_or_else(new_id);
    if inner
        .store
        .find::<OrgRecord>("organization_id", &id)
        .await?
        .is_some()
    {
        return Err(Error::bad_param(
            "organization_id",
            format!("Organization id = {id} already exists"),
        ));
    }
    let given = existing_budget(inner, &body).await?;
    let made = given
        .is_none()
        .then(|| budget_from(&caps, &body, new_id(), now))
        .transpose()?;
    let budget = given.clone().or(made.clone());
    let org = OrgRecord {
        organization_id: id.clone(),
        organization_alias: alias,
        budget_id: budget.as_ref().map(|b| b.budget_id.clone()),
        metadata,
        models,
        spend: 0.0,
        budget_reset_at: budget
            .as_ref()
            .and_then(|b| super::chain::Limit::of(&b.caps).period_ms)
            .map(|ms| now.saturating_add(ms)),
        created_at: now,
        created_by: String::new(),
        updated_at: now,
        updated_by: String::new(),
    };
    check_alias_free(inner, &org).await?;
    let mut tx = inner.store.begin().await?;
    if let Some(made) = &made {
        save(&mut tx, made, false).await?;
    }
    rows::insert(&mut tx, &org).await.map_err(|e| {
        super::common::unique(e, "organization_alias", || {
            format!(
                "organization_alias '{}' is already used",
                org.organization_alias
            )
        })
    })?;
    tx.commit().await?;
    inner.reload_org(&org).await;
    tracing::info!(organization = %id, "organization created");
    org_json(inner, &org).await
}

/// `POST /organization/update` (`organization_id` + fields).
pub(crate) async fn update(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let id = body.required_string("organization_id")?;
    let caps = CapsPatch::parse(&body, &CAPS)?;
    let alias = body.string("organization_alias")?;
    let models = body.string_list("models")?;
    let metadata = body.object("metadata")?;
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    let mut org = org_or_404(inner, &id).await?;
    if let Patch::Set(alias) = alias {
        org.organization_alias = alias;
        check_alias_free(inner, &org).await?;
    }
    set_list(&models, &mut org.models);
    if let Patch::Set(m) = metadata {
        org.metadata = m;
    }
    let mut tx = inner.store.begin().await?;
    let mut period_changed = false;
    if let Some(given) = existing_budget(inner, &body).await? {
        org.budget_id = Some(given.budget_id);
    } else if !caps.is_absent() {
        let existing = match &org.budget_id {
            Some(b) => inner.budget_record(b).await?,
            None => None,
        };
        let exists = existing.is_some();
        let mut budget = match existing {
            Some(b) => b,
            None => budget_from(&CapsPatch::default(), &body, new_id(), now)?,
        };
        if let Some(reset_at) = caps.apply(&mut budget.caps, now) {
            org.budget_reset_at = reset_at;
            period_changed = true;
        }
        budget.updated_at = now;
        save(&mut tx, &budget, exists).await?;
        org.budget_id = Some(budget.budget_id);
    }
    org.updated_at = now;
    let with: &[&str] = if period_changed {
        &["budget_reset_at"]
    } else {
        &[]
    };
    rows::update(&mut tx, &org, with).await.map_err(|e| {
        super::common::unique(e, "organization_alias", || {
            "organization_alias is already used".into()
        })
    })?;
    tx.commit().await?;
    inner.reload_org(&org).await;
    org_json(inner, &org).await
}

/// `POST /organization/delete` `{"organization_ids": [...]}`: refused while a team belongs to
/// one (move or delete the teams first); memberships go with the organization.
pub(crate) async fn delete(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let ids = required_list(&body, "organization_ids", "organization")?;
    let _admin = inner.admin.lock().await;
    let mut orgs = Vec::new();
    for id in &ids {
        let org = org_or_404(inner, id).await?;
        let teams = inner
            .store
            .count("teams", Some("organization_id = $1"), &[Val::text(id)])
            .await?;
        if teams > 0 {
            return Err(Error::bad_param(
                "organization_ids",
                format!(
                    "organization {id} still has {teams} team(s); delete them or move them to another organization first"
                ),
            ));
        }
        orgs.push(org);
    }
    let mut out = Vec::new();
    for org in &orgs {
        out.push(org_json(inner, org).await?);
    }
    let mut tx = inner.store.begin().await?;
    for org in &orgs {
        rows::delete_where(
            &mut tx,
            "organization_memberships",
            "organization_id",
            &org.organization_id,
        )
        .await
        .map_err(db_err)?;
        rows::delete(&mut tx, org).await.map_err(db_err)?;
    }
    tx.commit().await?;
    for org in &orgs {
        inner.reload_org(org).await;
    }
    Ok(Value::Array(out))
}

/// `GET /organization/info?organization_id=`.
pub(crate) async fn info(inner: &Inner, _actor: &Actor, id: Option<&str>) -> Result<Value> {
    let id =
        id.ok_or_else(|| Error::bad_param("organization_id", "organization_id is required"))?;
    let org = org_or_404(inner, id).await?;
    org_json(inner, &org).await
}

/// `GET /organization/list`.
pub(crate) async fn list(inner: &Inner, _actor: &Actor) -> Result<Value> {
    let orgs: Vec<OrgRecord> = inner
        .store
        .select(None, &[], "organization_alias", None)
        .await?;
    let mut out = Vec::new();
    for org in &orgs {
        out.push(org_json(inner, org).await?);
    }
    Ok(Value::Array(out))
}

/// `POST /organization/member_add` `{"organization_id", "member": {...} | [...],
/// "max_budget_in_organization"?}`: users not yet known are created.
pub(crate) async fn member_add(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let id = body.required_string("organization_id")?;
    let items: Vec<Value> = match body.field("member") {
        Patch::Set(Value::Array(items)) => items.clone(),
        Patch::Set(item @ Value::Object(_)) => vec![item.clone()],
        _ => {
            return Err(Error::bad_param(
                "member",
                "member must be a member object or a list of them",
            ));
        }
    };
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    let org = org_or_404(inner, &id).await?;
    let existing: Vec<OrgMemberRecord> = inner
        .store
        .select(
            Some("organization_id = $1"),
            &[Val::text(&id)],
            "user_id",
            None,
        )
        .await?;
    let mut tx = inner.store.begin().await?;
    let mut users = Vec::new();
    let mut memberships = Vec::new();
    for item in &items {
        let text = |name: &str| item.get(name).and_then(Value::as_str).map(str::to_owned);
        let role = text("role").unwrap_or_else(|| "internal_user".into());
        if !ORG_ROLES.contains(&role.as_str()) {
            return Err(Error::bad_param(
                "role",
                format!(
                    "role '{role}' is not an organization role; use org_admin, internal_user or internal_user_viewer"
                ),
            ));
        }
        let (user_id, email) = (text("user_id"), text("user_email"));
        if let Some(user_id) = &user_id {
            validate_id("user_id", user_id)?;
        }
        let found = match (&user_id, &email) {
            (Some(u), _) => inner.user_record(u).await?,
            (None, Some(e)) => inner.user_by_email(e).await?,
            (None, None) => {
                return Err(Error::bad_param(
                    "member",
                    "Either user_id or user_email needs to be passed in",
                ));
            }
        };
        let user = match found {
            Some(user) => user,
            None => {
                let user = UserRecord::new(user_id.unwrap_or_else(new_id), email, now);
                rows::insert(&mut tx, &user).await.map_err(db_err)?;
                user
            }
        };
        if existing
            .iter()
            .chain(memberships.iter())
            .any(|m: &OrgMemberRecord| m.user_id == user.user_id)
        {
            return Err(Error::bad_param(
                "member",
                format!("User={} already in organization {id}", user.user_id),
            ));
        }
        let membership = OrgMemberRecord {
            organization_id: id.clone(),
            user_id: user.user_id.clone(),
            user_role: role,
            spend: 0.0,
            budget_id: None,
            created_at: now,
            updated_at: now,
        };
        rows::insert(&mut tx, &membership).await.map_err(db_err)?;
        users.push(user);
        memberships.push(membership);
    }
    tx.commit().await?;
    for user in &users {
        inner.reload_user(&user.user_id).await;
    }
    Ok(json!({
        "organization_id": org.organization_id,
        "updated_users": users.iter().map(|u| u.to_json(&[])).collect::<Vec<_>>(),
        "updated_organization_memberships": memberships
            .iter()
            .zip(&users)
            .map(|(m, u)| m.to_json(u.user_email.as_deref()))
            .collect::<Vec<_>>(),
    }))
}

async fn org_json(inner: &Inner, org: &OrgRecord) -> Result<Value> {
    let budget = match &org.budget_id {
        Some(id) => inner.budget_record(id).await?,
        None => None,
    };
    let teams: Vec<TeamRecord> = inner
        .store
        .select(
            Some("organization_id = $1"),
            &[Val::text(&org.organization_id)],
            "team_alias, team_id",
            None,
        )
        .await?;
    let mut team_json = Vec::new();
    for team in &teams {
        team_json.push(inner.team_json(team).await?);
    }
    let members: Vec<OrgMemberRecord> = inner
        .store
        .select(
            Some("organization_id = $1"),
            &[Val::text(&org.organization_id)],
            "user_id",
            None,
        )
        .await?;
    let mut member_json = Vec::new();
    for member in &members {
        let email = inner
            .user_record(&member.user_id)
            .await?
            .and_then(|u| u.user_email);
        member_json.push(member.to_json(email.as_deref()));
    }
    let mut org = org.clone();
    if let Some(entry) = inner.directory.org(&org.organization_id) {
        org.spend = org.spend.max(entry.live.lock().spend);
    }
    Ok(org.to_json(budget.as_ref(), &team_json, &member_json))
}

impl Inner {
    /// The directory's copy of an organization (and its budget) after a committed write.
    pub(crate) async fn reload_org(&self, org: &OrgRecord) {
        self.announce("organization", &org.organization_id);
        if let Some(budget_id) = &org.budget_id {
            self.reload_budget(budget_id).await;
        }
        if let Err(e) = self
            .directory
            .reload_org(&self.store, &org.organization_id)
            .await
        {
            tracing::warn!(organization = %org.organization_id, error = %e, "organization not reloaded; the next full reload will");
        }
    }
}
