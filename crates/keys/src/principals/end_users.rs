//! `/end_user/*` (also `/customer/*`): the end users of model requests (their `user` field), with
//! a budget of their own or a shared one, a block, and LiteLLM's `allowed_model_region`.

use serde_json::{Value, json};
use vaultgate_core::{Error, Result};

use super::access::Actor;
use super::budgets::{budget_from, existing_budget, save};
use super::chain::Limit;
use super::common::{CAPS, CapsPatch, required_list, set, validate_id};
use super::model::{BudgetRecord, EndUserRecord};
use super::store::{self as rows};
use crate::request::{Body, Patch};
use crate::state::Inner;
use crate::store::db_err;

fn region(body: &Body) -> Result<Patch<String>> {
    let patch = body.string("allowed_model_region")?;
    if let Patch::Set(r) = &patch
        && r != "eu"
        && r != "us"
    {
        return Err(Error::bad_param(
            "allowed_model_region",
            format!("allowed_model_region '{r}' is not a region; use eu or us"),
        ));
    }
    Ok(patch)
}

async fn end_user_or_404(inner: &Inner, id: &str) -> Result<EndUserRecord> {
    let found: Option<EndUserRecord> = inner.store.find("user_id", id).await?;
    found.ok_or_else(|| Error::NotFound(format!("End User Id={id} does not exist in db")))
}

/// Applies the fields of new and update; a budget of the end user's own is made or changed
/// from the limit fields unless `budget_id` names a shared one. Returns the budget to write.
async fn apply(
    inner: &Inner,
    body: &Body,
    end_user: &mut EndUserRecord,
    now: i64,
) -> Result<Option<(BudgetRecord, bool)>> {
    set(&body.string("alias")?, &mut end_user.alias);
    set(&region(body)?, &mut end_user.allowed_model_region);
    set(&body.string("default_model")?, &mut end_user.default_model);
    if let Patch::Set(blocked) = body.boolean("blocked")? {
        end_user.blocked = blocked;
    }
    let caps = CapsPatch::parse(body, &CAPS)?;
    let mut write = None;
    if let Some(shared) = existing_budget(inner, body).await? {
        end_user.budget_id = Some(shared.budget_id.clone());
        end_user.budget_reset_at = Limit::of(&shared.caps)
            .period_ms
            .map(|ms| now.saturating_add(ms));
    } else if !caps.is_absent() {
        let existing = match &end_user.budget_id {
            Some(id) => inner.budget_record(id).await?,
            None => None,
        };
        let exists = existing.is_some();
        let mut budget = match existing {
            Some(b) => b,
            None => budget_from(&CapsPatch::default(), body, super::common::new_id(), now)?,
        };
        if let Some(reset_at) = caps.apply(&mut budget.caps, now) {
            end_user.budget_reset_at = reset_at;
        }
        budget.updated_at = now;
        end_user.budget_id = Some(budget.budget_id.clone());
        write = Some((budget, exists));
    }
    Ok(write)
}

/// `POST /end_user/new` (`/customer/new`) `{"user_id", ...}`.
pub(crate) async fn new(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let user_id = body.required_string("user_id")?;
    validate_id("user_id", &user_id)?;
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    let existing: Option<EndUserRecord> = inner.store.find("user_id", &user_id).await?;
    if existing.is_some() {
        return Err(Error::bad_param(
            "user_id",
            format!("Customer with user_id={user_id} already exists"),
        ));
    }
    let mut end_user = EndUserRecord {
        user_id: user_id.clone(),
        alias: None,
        spend: 0.0,
        allowed_model_region: None,
        default_model: None,
        budget_id: None,
        budget_reset_at: None,
        blocked: false,
        created_at: now,
        updated_at: now,
    };
    let budget = apply(inner, &body, &mut end_user, now).await?;
    let mut tx = inner.store.begin().await?;
    if let Some((budget, exists)) = &budget {
        save(&mut tx, budget, *exists).await?;
    }
    rows::insert(&mut tx, &end_user).await.map_err(|e| {
        super::common::unique(e, "user_id", || {
            format!("Customer with user_id={user_id} already exists")
        })
    })?;
    tx.commit().await?;
    inner.reload_end_user(&end_user).await;
    end_user_json(inner, &end_user).await
}

/// `POST /end_user/update` (`user_id` + fields).
pub(crate) async fn update(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let user_id = body.required_string("user_id")?;
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    let mut end_user = end_user_or_404(inner, &user_id).await?;
    let before = end_user.budget_reset_at;
    let budget = apply(inner, &body, &mut end_user, now).await?;
    end_user.updated_at = now;
    let mut tx = inner.store.begin().await?;
    if let Some((budget, exists)) = &budget {
        save(&mut tx, budget, *exists).await?;
    }
    let with: &[&str] = if end_user.budget_reset_at != before {
        &["budget_reset_at"]
    } else {
        &[]
    };
    rows::update(&mut tx, &end_user, with)
        .await
        .map_err(db_err)?;
    tx.commit().await?;
    inner.reload_end_user(&end_user).await;
    end_user_json(inner, &end_user).await
}

/// `POST /end_user/delete` `{"user_ids": [...]}`.
pub(crate) async fn delete(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let ids = required_list(&body, "user_ids", "end user")?;
    let _admin = inner.admin.lock().await;
    let mut found = Vec::new();
    for id in &ids {
        found.push(end_user_or_404(inner, id).await?);
    }
    let mut tx = inner.store.begin().await?;
    for end_user in &found {
        rows::delete(&mut tx, end_user).await.map_err(db_err)?;
    }
    tx.commit().await?;
    for end_user in &found {
        inner.reload_end_user(end_user).await;
    }
    Ok(json!({"deleted_customers": ids}))
}

/// `POST /end_user/block` and `/end_user/unblock` `{"user_ids": [...]}`: an end user not yet
/// known is created blocked (as LiteLLM does).
pub(crate) async fn set_blocked(
    inner: &Inner,
    _actor: &Actor,
    request: Value,
    blocked: bool,
) -> Result<Value> {
    let body = Body::from_value(request)?;
    let ids = required_list(&body, "user_ids", "end user")?;
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    let mut changed = Vec::new();
    let mut tx = inner.store.begin().await?;
    for id in &ids {
        validate_id("user_ids", id)?;
        let existing: Option<EndUserRecord> = inner.store.find("user_id", id).await?;
        let mut end_user = match existing {
            Some(e) => e,
            None if blocked => {
                let e = EndUserRecord {
                    user_id: id.clone(),
                    alias: None,
                    spend: 0.0,
                    allowed_model_region: None,
                    default_model: None,
                    budget_id: None,
                    budget_reset_at: None,
                    blocked,
                    created_at: now,
                    updated_at: now,
                };
                rows::insert(&mut tx, &e).await.map_err(db_err)?;
                changed.push(e);
                continue;
            }
            None => {
                return Err(Error::NotFound(format!(
                    "End User Id={id} does not exist in db"
                )));
            }
        };
        end_user.blocked = blocked;
        end_user.updated_at = now;
        rows::update(&mut tx, &end_user, &[])
            .await
            .map_err(db_err)?;
        changed.push(end_user);
    }
    tx.commit().await?;
    for end_user in &changed {
        inner.reload_end_user(end_user).await;
    }
    Ok(
        json!({"blocked_users": if blocked { ids.clone() } else { Vec::new() }, "unblocked_users": if blocked { Vec::new() } else { ids }}),
    )
}

/// `GET /end_user/info?end_user_id=`.
pub(crate) async fn info(inner: &Inner, _actor: &Actor, id: Option<&str>) -> Result<Value> {
    let id = id.ok_or_else(|| Error::bad_param("end_user_id", "end_user_id is required"))?;
    let end_user = end_user_or_404(inner, id).await?;
    end_user_json(inner, &end_user).await
}

/// `GET /end_user/list`.
pub(crate) async fn list(inner: &Inner, _actor: &Actor) -> Result<Value> {
    let all: Vec<EndUserRecord> = inner.store.select(None, &[], "user_id", None).await?;
    let mut out = Vec::with_capacity(all.len());
    for end_user in &all {
        out.push(end_user_json(inner, end_user).await?);
    }
    Ok(Value::Array(out))
}

async fn end_user_json(inner: &Inner, end_user: &EndUserRecord) -> Result<Value> {
    let budget = match &end_user.budget_id {
        Some(id) => inner.budget_record(id).await?,
        None => None,
    };
    let mut end_user = end_user.clone();
    if let Some(entry) = inner.directory.end_user(&end_user.user_id) {
        end_user.spend = end_user.spend.max(entry.live.lock().spend);
    }
    Ok(end_user.to_json(budget.as_ref()))
}

impl Inner {
    pub(crate) async fn reload_end_user(&self, end_user: &EndUserRecord) {
        self.announce("end_user", &end_user.user_id);
        if let Some(budget_id) = &end_user.budget_id {
            self.reload_budget(budget_id).await;
        }
        if let Err(e) = self
            .directory
            .reload_end_user(&self.store, &end_user.user_id)
            .await
        {
            tracing::warn!(end_user = %end_user.user_id, error = %e, "end user not reloaded; the next full reload will");
        }
    }
}
