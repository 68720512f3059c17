//! `/budget/*`: shared budget objects (LiteLLM_BudgetTable) that end users, team members and
//! organizations point to. A change applies at once to everything pointing to the budget.

use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

use super::access::Actor;
use super::common::{CAPS, CapsPatch, id_field, new_id};
use super::model::{BudgetRecord, Caps};
use super::store::{self as rows, Val};
use crate::request::{Body, Patch};
use crate::state::Inner;
use crate::store::{Tx, db_err};

/// A budget from a body's limit fields (LiteLLM's names), for `/budget/new` and for the
/// objects that create one of their own (`/organization/new`, `/end_user/new`).
pub(crate) fn budget_from(
    caps: &CapsPatch,
    body: &Body,
    id: String,
    now: i64,
) -> Result<BudgetRecord> {
    let mut budget = BudgetRecord {
        budget_id: id,
        caps: Caps::default(),
        soft_budget: body.amount("soft_budget")?.value().copied(),
        model_max_budget: body
            .object("model_max_budget")?
            .value()
            .cloned()
            .unwrap_or_default(),
        created_at: now,
        created_by: String::new(),
        updated_at: now,
        updated_by: String::new(),
    };
    caps.apply(&mut budget.caps, now);
    Ok(budget)
}

/// The budget named by `budget_id` in a body, which must exist (400 otherwise).
pub(crate) async fn existing_budget(inner: &Inner, body: &Body) -> Result<Option<BudgetRecord>> {
    match id_field(body, "budget_id")? {
        Patch::Set(id) => match inner.budget_record(&id).await? {
            Some(budget) => Ok(Some(budget)),
            None => Err(Error::bad_param(
                "budget_id",
                format!("budget_id '{id}' does not exist; create it with /budget/new"),
            )),
        },
        _ => Ok(None),
    }
}

/// Writes a budget that was read (`exists`) or made now.
pub(crate) async fn save(tx: &mut Tx, budget: &BudgetRecord, exists: bool) -> Result<()> {
    if exists {
        rows::update(tx, budget, &[]).await.map_err(db_err)?;
    } else {
        rows::insert(tx, budget).await.map_err(|e| {
            super::common::unique(e, "budget_id", || {
                format!("budget_id '{}' already exists", budget.budget_id)
            })
        })?;
    }
    Ok(())
}

/// `POST /budget/new`.
pub(crate) async fn new(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let id = id_field(&body, "budget_id")?.value().cloned();
    let caps = CapsPatch::parse(&body, &CAPS)?;
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    let id = id.unwrap_or_else(new_id);
    if inner.budget_record(&id).await?.is_some() {
        return Err(Error::bad_param(
            "budget_id",
            format!("budget_id '{id}' already exists"),
        ));
    }
    let budget = budget_from(&caps, &body, id, now)?;
    let mut tx = inner.store.begin().await?;
    save(&mut tx, &budget, false).await?;
    tx.commit().await?;
    inner.reload_budget(&budget.budget_id).await;
    Ok(budget.to_json())
}

/// `POST /budget/update` (`budget_id` + fields).
pub(crate) async fn update(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let id = body.required_string("budget_id")?;
    let caps = CapsPatch::parse(&body, &CAPS)?;
    let soft = body.amount("soft_budget")?;
    let model_max = body.object("model_max_budget")?;
    let _admin = inner.admin.lock().await;
    let now = inner.now();
    let mut budget = inner
        .budget_record(&id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("Budget not found, passed budget_id={id}")))?;
    caps.apply(&mut budget.caps, now);
    super::common::set(&soft, &mut budget.soft_budget);
    if let Patch::Set(m) = model_max {
        budget.model_max_budget = m;
    }
    budget.updated_at = now;
    let mut tx = inner.store.begin().await?;
    save(&mut tx, &budget, true).await?;
    tx.commit().await?;
    inner.reload_budget(&id).await;
    Ok(budget.to_json())
}

/// `POST /budget/info` `{"budgets": [ids]}` (or `GET ?budget_id=`): the budgets.
pub(crate) async fn info(inner: &Inner, _actor: &Actor, ids: Vec<String>) -> Result<Value> {
    if ids.is_empty() {
        return Err(Error::bad_param(
            "budgets",
            "budgets must list at least one budget_id",
        ));
    }
    let mut out = Vec::new();
    for id in &ids {
        let budget = inner
            .budget_record(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("Budget not found, passed budget_id={id}")))?;
        out.push(budget.to_json());
    }
    Ok(Value::Array(out))
}

/// `GET /budget/list`.
pub(crate) async fn list(inner: &Inner, _actor: &Actor) -> Result<Value> {
    let budgets: Vec<BudgetRecord> = inner
        .store
        .select(None, &[], "created_at, budget_id", None)
        .await?;
    Ok(Value::Array(
        budgets.iter().map(BudgetRecord::to_json).collect(),
    ))
}

/// `POST /budget/delete` `{"id": budget_id}`: refused while anything points to the budget.
pub(crate) async fn delete(inner: &Inner, _actor: &Actor, request: Value) -> Result<Value> {
    let body = Body::from_value(request)?;
    let id = match body.string("id")? {
        Patch::Set(id) => id,
        _ => body.required_string("budget_id")?,
    };
    let _admin = inner.admin.lock().await;
    let budget = inner
        .budget_record(&id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("Budget not found, passed budget_id={id}")))?;
    let mut users = Map::new();
    for (table, column, what) in [
        ("end_users", "budget_id", "end users"),
        ("team_memberships", "budget_id", "team members"),
        ("organizations", "budget_id", "organizations"),
        ("teams", "team_member_budget_id", "teams"),
    ] {
        let filter = format!("{column} = $1");
        let n = inner
            .store
            .count(table, Some(&filter), &[Val::text(&id)])
            .await?;
        if n > 0 {
            users.insert(what.into(), json!(n));
        }
    }
    if !users.is_empty() {
        return Err(Error::bad_param(
            "id",
            format!(
                "budget {id} is in use ({}); point them to another budget first",
                Value::Object(users)
            ),
        ));
    }
    let mut tx = inner.store.begin().await?;
    rows::delete(&mut tx, &budget).await.map_err(db_err)?;
    tx.commit().await?;
    inner.reload_budget(&id).await;
    Ok(budget.to_json())
}

impl Inner {
    pub(crate) async fn reload_budget(&self, budget_id: &str) {
        self.announce("budget", budget_id);
        if let Err(e) = self.directory.reload_budget(&self.store, budget_id).await {
            tracing::warn!(budget = budget_id, error = %e, "budget not reloaded; the next full reload will");
        }
    }
}
