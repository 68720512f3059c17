//! SQL of the management plane's tables, over the key store's pool. Each record type says how it
//! maps to its row ([`Row`]); inserts, updates, deletes and selects are written once here.
//! Spend columns are never written by an update: the batch writer owns them.

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use vaultgate_core::{Error, Result};

use super::directory::Scope;
use super::model::{
    BudgetRecord, Caps, EndUserRecord, MemberRecord, OrgMemberRecord, OrgRecord, Role, TeamRecord,
    TeamRole, UserRecord,
};
use crate::store::{AnyQuery, Store, Tx, col, json_text, to_i64};

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Text(Option<String>),
    Real(Option<f64>),
    Int(Option<i64>),
}

impl Val {
    pub fn text(s: &str) -> Self {
        Val::Text(Some(s.to_owned()))
    }
}

pub(crate) fn bind(query: AnyQuery<'_>, value: Val) -> AnyQuery<'_> {
    match value {
        Val::Text(v) => query.bind(v),
        Val::Real(v) => query.bind(v),
        Val::Int(v) => query.bind(v),
    }
}

/// A record stored as one row of `TABLE`, identified by the `KEY` columns.
pub(crate) trait Row: Sized {
    const TABLE: &'static str;
    const KEY: &'static [&'static str];
    /// Columns written by an insert or an update besides the key; updates skip `spend`.
    fn values(&self) -> Vec<(&'static str, Val)>;
    fn key(&self) -> Vec<Val>;
    fn from_row(row: &AnyRow) -> Result<Self>;
}

/// Columns an update leaves to the spend writer and the budget-reset pass.
const WRITER_OWNED: &[&str] = &["spend", "budget_reset_at"];

fn where_key(keys: &[&str], first: usize) -> String {
    keys.iter()
        .enumerate()
        .map(|(i, k)| format!("{k} = ${}", first + i))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Inserts a new row (statements with nullable floats are not kept prepared: see store.rs).
pub(crate) async fn insert<R: Row>(
    tx: &mut Tx,
    record: &R,
) -> std::result::Result<(), sqlx::Error> {
    let mut cols: Vec<&str> = R::KEY.to_vec();
    let mut values = record.key();
    for (name, value) in record.values() {
        cols.push(name);
        values.push(value);
    }
    let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        R::TABLE,
        cols.join(", "),
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).persistent(false);
    for value in values {
        query = bind(query, value);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Rewrites a row but its spend and budget period (`with` names writer-owned columns to write
/// too, e.g. `budget_reset_at` when the period changed). Returns whether a row matched.
pub(crate) async fn update<R: Row>(
    tx: &mut Tx,
    record: &R,
    with: &[&str],
) -> std::result::Result<bool, sqlx::Error> {
    let values: Vec<(&str, Val)> = record
        .values()
        .into_iter()
        .filter(|(name, _)| !WRITER_OWNED.contains(name) || with.contains(name))
        .collect();
    let sets: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{name} = ${}", i + 1))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE {}",
        R::TABLE,
        sets.join(", "),
        where_key(R::KEY, values.len() + 1)
    );
    let mut query = sqlx::query(&sql).persistent(false);
    for (_, value) in values {
        query = bind(query, value);
    }
    for value in record.key() {
        query = bind(query, value);
    }
    Ok(query.execute(&mut **tx).await?.rows_affected() > 0)
}

/// Deletes the rows whose `column` is `value` from `table`; how many.
pub(crate) async fn delete_where(
    tx: &mut Tx,
    table: &str,
    column: &str,
    value: &str,
) -> std::result::Result<u64, sqlx::Error> {
    let sql = format!("DELETE FROM {table} WHERE {column} = $1");
    let result = sqlx::query(&sql)
        .bind(value.to_owned())
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected())
}

/// Deletes one record's row.
pub(crate) async fn delete<R: Row>(
    tx: &mut Tx,
    record: &R,
) -> std::result::Result<bool, sqlx::Error> {
    let sql = format!("DELETE FROM {} WHERE {}", R::TABLE, where_key(R::KEY, 1));
    let mut query = sqlx::query(&sql);
    for value in record.key() {
        query = bind(query, value);
    }
    Ok(query.execute(&mut **tx).await?.rows_affected() > 0)
}

impl Store {
    /// Rows of `R` matching `filter` (SQL after WHERE, `$n` placeholders for `binds`), ordered.
    pub(crate) async fn select<R: Row>(
        &self,
        filter: Option<&str>,
        binds: &[Val],
        order: &str,
        page: Option<(u64, u64)>,
    ) -> Result<Vec<R>> {
        let mut sql = format!("SELECT * FROM {}", R::TABLE);
        if let Some(filter) = filter {
            sql.push_str(" WHERE ");
            sql.push_str(filter);
        }
        sql.push_str(" ORDER BY ");
        sql.push_str(order);
        if let Some((page, size)) = page {
            let offset = page.saturating_sub(1).saturating_mul(size);
            sql.push_str(&format!(
                " LIMIT {} OFFSET {}",
                size.min(10_000),
                offset.min(1 << 40)
            ));
        }
        let mut query = sqlx::query(&sql);
        for value in binds {
            query = bind(query, value.clone());
        }
        let rows = query
            .fetch_all(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        rows.iter().map(R::from_row).collect()
    }

    /// How many rows of `table` match `filter`.
    pub(crate) async fn count(
        &self,
        table: &str,
        filter: Option<&str>,
        binds: &[Val],
    ) -> Result<u64> {
        let mut sql = format!("SELECT COUNT(*) AS n FROM {table}");
        if let Some(filter) = filter {
            sql.push_str(" WHERE ");
            sql.push_str(filter);
        }
        let mut query = sqlx::query(&sql);
        for value in binds {
            query = bind(query, value.clone());
        }
        let row = query
            .fetch_one(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        let n: i64 = col(&row, "n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The one row of `R` whose `column` is `value`.
    pub(crate) async fn find<R: Row>(&self, column: &str, value: &str) -> Result<Option<R>> {
        let filter = format!("{column} = $1");
        let mut rows = self
            .select::<R>(Some(&filter), &[Val::text(value)], column, None)
            .await?;
        Ok(rows.pop())
    }
}

// ---- columns -------------------------------------------------------------------------------

fn text(v: &Option<String>) -> Val {
    Val::Text(v.clone())
}

fn int(v: Option<u64>) -> Val {
    Val::Int(v.map(to_i64))
}

fn object(m: &Map<String, Value>) -> Val {
    Val::Text(Some(Value::Object(m.clone()).to_string()))
}

fn list(l: &[String]) -> Val {
    Val::Text(Some(json_text(l)))
}

fn caps_values(caps: &Caps, out: &mut Vec<(&'static str, Val)>) {
    out.push(("max_budget", Val::Real(caps.max_budget)));
    out.push(("tpm_limit", int(caps.tpm_limit)));
    out.push(("rpm_limit", int(caps.rpm_limit)));
    out.push(("max_parallel_requests", int(caps.max_parallel_requests)));
    out.push(("budget_duration", text(&caps.budget_duration)));
}

fn get_caps(r: &AnyRow) -> Result<Caps> {
    Ok(Caps {
        max_budget: col(r, "max_budget")?,
        tpm_limit: get_u64(r, "tpm_limit")?,
        rpm_limit: get_u64(r, "rpm_limit")?,
        max_parallel_requests: get_u64(r, "max_parallel_requests")?,
        budget_duration: col(r, "budget_duration")?,
    })
}

fn get_u64(r: &AnyRow, name: &str) -> Result<Option<u64>> {
    let v: Option<i64> = col(r, name)?;
    Ok(v.and_then(|v| u64::try_from(v).ok()))
}

fn get_list(r: &AnyRow, name: &str) -> Result<Vec<String>> {
    let text: String = col(r, name)?;
    serde_json::from_str(&text).map_err(|e| Error::Database(format!("column {name}: {e}")))
}

fn get_object(r: &AnyRow, name: &str) -> Result<Map<String, Value>> {
    let text: String = col(r, name)?;
    serde_json::from_str(&text).map_err(|e| Error::Database(format!("column {name}: {e}")))
}

fn get_bool(r: &AnyRow, name: &str) -> Result<bool> {
    let v: i64 = col(r, name)?;
    Ok(v != 0)
}

impl Row for TeamRecord {
    const TABLE: &'static str = "teams";
    const KEY: &'static [&'static str] = &["team_id"];
    fn key(&self) -> Vec<Val> {
        vec![Val::text(&self.team_id)]
    }
    fn values(&self) -> Vec<(&'static str, Val)> {
        let mut v = vec![
            ("team_alias", text(&self.team_alias)),
            ("organization_id", text(&self.organization_id)),
            ("metadata", object(&self.metadata)),
            ("models", list(&self.models)),
            ("spend", Val::Real(Some(self.spend))),
            ("budget_reset_at", Val::Int(self.budget_reset_at)),
            ("blocked", Val::Int(Some(i64::from(self.blocked)))),
            ("team_member_budget_id", text(&self.team_member_budget_id)),
            ("created_at", Val::Int(Some(self.created_at))),
            ("updated_at", Val::Int(Some(self.updated_at))),
        ];
        caps_values(&self.caps, &mut v);
        v
    }
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            team_id: col(r, "team_id")?,
            team_alias: col(r, "team_alias")?,
            organization_id: col(r, "organization_id")?,
            metadata: get_object(r, "metadata")?,
            models: get_list(r, "models")?,
            caps: get_caps(r)?,
            spend: col(r, "spend")?,
            budget_reset_at: col(r, "budget_reset_at")?,
            blocked: get_bool(r, "blocked")?,
            team_member_budget_id: col(r, "team_member_budget_id")?,
            created_at: col(r, "created_at")?,
            updated_at: col(r, "updated_at")?,
        })
    }
}

impl Row for MemberRecord {
    const TABLE: &'static str = "team_memberships";
    const KEY: &'static [&'static str] = &["team_id", "user_id"];
    fn key(&self) -> Vec<Val> {
        vec![Val::text(&self.team_id), Val::text(&self.user_id)]
    }
    fn values(&self) -> Vec<(&'static str, Val)> {
        vec![
            ("role", Val::text(self.role.as_str())),
            ("spend", Val::Real(Some(self.spend))),
            ("budget_id", text(&self.budget_id)),
            ("budget_reset_at", Val::Int(self.budget_reset_at)),
            ("created_at", Val::Int(Some(self.created_at))),
            ("updated_at", Val::Int(Some(self.updated_at))),
        ]
    }
    fn from_row(r: &AnyRow) -> Result<Self> {
        let role: String = col(r, "role")?;
        Ok(Self {
            team_id: col(r, "team_id")?,
            user_id: col(r, "user_id")?,
            role: TeamRole::from_stored(&role),
            spend: col(r, "spend")?,
            budget_id: col(r, "budget_id")?,
            budget_reset_at: col(r, "budget_reset_at")?,
            created_at: col(r, "created_at")?,
            updated_at: col(r, "updated_at")?,
        })
    }
}

impl Row for UserRecord {
    const TABLE: &'static str = "users";
    const KEY: &'static [&'static str] = &["user_id"];
    fn key(&self) -> Vec<Val> {
        vec![Val::text(&self.user_id)]
    }
    fn values(&self) -> Vec<(&'static str, Val)> {
        let mut v = vec![
            ("user_alias", text(&self.user_alias)),
            ("user_email", text(&self.user_email)),
            ("user_role", Val::text(self.user_role.as_str())),
            ("organization_id", text(&self.organization_id)),
            ("models", list(&self.models)),
            ("metadata", object(&self.metadata)),
            ("spend", Val::Real(Some(self.spend))),
            ("budget_reset_at", Val::Int(self.budget_reset_at)),
            ("created_at", Val::Int(Some(self.created_at))),
            ("updated_at", Val::Int(Some(self.updated_at))),
        ];
        caps_values(&self.caps, &mut v);
        v
    }
    fn from_row(r: &AnyRow) -> Result<Self> {
        let role: String = col(r, "user_role")?;
        Ok(Self {
            user_id: col(r, "user_id")?,
            user_alias: col(r, "user_alias")?,
            user_email: col(r, "user_email")?,
            user_role: Role::from_stored(&role),
            organization_id: col(r, "organization_id")?,
            models: get_list(r, "models")?,
            metadata: get_object(r, "metadata")?,
            caps: get_caps(r)?,
            spend: col(r, "spend")?,
            budget_reset_at: col(r, "budget_reset_at")?,
            created_at: col(r, "created_at")?,
            updated_at: col(r, "updated_at")?,
        })
    }
}

impl Row for BudgetRecord {
    const TABLE: &'static str = "budgets";
    const KEY: &'static [&'static str] = &["budget_id"];
    fn key(&self) -> Vec<Val> {
        vec![Val::text(&self.budget_id)]
    }
    fn values(&self) -> Vec<(&'static str, Val)> {
        let mut v = vec![
            ("soft_budget", Val::Real(self.soft_budget)),
            ("model_max_budget", object(&self.model_max_budget)),
            ("created_at", Val::Int(Some(self.created_at))),
            ("created_by", Val::text(&self.created_by)),
            ("updated_at", Val::Int(Some(self.updated_at))),
            ("updated_by", Val::text(&self.updated_by)),
        ];
        caps_values(&self.caps, &mut v);
        v
    }
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            budget_id: col(r, "budget_id")?,
            caps: get_caps(r)?,
            soft_budget: col(r, "soft_budget")?,
            model_max_budget: get_object(r, "model_max_budget")?,
            created_at: col(r, "created_at")?,
            created_by: col(r, "created_by")?,
            updated_at: col(r, "updated_at")?,
            updated_by: col(r, "updated_by")?,
        })
    }
}

impl Row for OrgRecord {
    const TABLE: &'static str = "organizations";
    const KEY: &'static [&'static str] = &["organization_id"];
    fn key(&self) -> Vec<Val> {
        vec![Val::text(&self.organization_id)]
    }
    fn values(&self) -> Vec<(&'static str, Val)> {
        vec![
            ("organization_alias", Val::text(&self.organization_alias)),
            ("budget_id", text(&self.budget_id)),
            ("metadata", object(&self.metadata)),
            ("models", list(&self.models)),
            ("spend", Val::Real(Some(self.spend))),
            ("budget_reset_at", Val::Int(self.budget_reset_at)),
            ("created_at", Val::Int(Some(self.created_at))),
            ("created_by", Val::text(&self.created_by)),
            ("updated_at", Val::Int(Some(self.updated_at))),
            ("updated_by", Val::text(&self.updated_by)),
        ]
    }
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            organization_id: col(r, "organization_id")?,
            organization_alias: col(r, "organization_alias")?,
            budget_id: col(r, "budget_id")?,
            metadata: get_object(r, "metadata")?,
            models: get_list(r, "models")?,
            spend: col(r, "spend")?,
            budget_reset_at: col(r, "budget_reset_at")?,
            created_at: col(r, "created_at")?,
            created_by: col(r, "created_by")?,
            updated_at: col(r, "updated_at")?,
            updated_by: col(r, "updated_by")?,
        })
    }
}

impl Row for OrgMemberRecord {
    const TABLE: &'static str = "organization_memberships";
    const KEY: &'static [&'static str] = &["organization_id", "user_id"];
    fn key(&self) -> Vec<Val> {
        vec![Val::text(&self.organization_id), Val::text(&self.user_id)]
    }
    fn values(&self) -> Vec<(&'static str, Val)> {
        vec![
            ("user_role", Val::text(&self.user_role)),
            ("spend", Val::Real(Some(self.spend))),
            ("budget_id", text(&self.budget_id)),
            ("created_at", Val::Int(Some(self.created_at))),
            ("updated_at", Val::Int(Some(self.updated_at))),
        ]
    }
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            organization_id: col(r, "organization_id")?,
            user_id: col(r, "user_id")?,
            user_role: col(r, "user_role")?,
            spend: col(r, "spend")?,
            budget_id: col(r, "budget_id")?,
            created_at: col(r, "created_at")?,
            updated_at: col(r, "updated_at")?,
        })
    }
}

impl Row for EndUserRecord {
    const TABLE: &'static str = "end_users";
    const KEY: &'static [&'static str] = &["user_id"];
    fn key(&self) -> Vec<Val> {
        vec![Val::text(&self.user_id)]
    }
    fn values(&self) -> Vec<(&'static str, Val)> {
        vec![
            ("alias", text(&self.alias)),
            ("spend", Val::Real(Some(self.spend))),
            ("allowed_model_region", text(&self.allowed_model_region)),
            ("default_model", text(&self.default_model)),
            ("budget_id", text(&self.budget_id)),
            ("budget_reset_at", Val::Int(self.budget_reset_at)),
            ("blocked", Val::Int(Some(i64::from(self.blocked)))),
            ("created_at", Val::Int(Some(self.created_at))),
            ("updated_at", Val::Int(Some(self.updated_at))),
        ]
    }
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(Self {
            user_id: col(r, "user_id")?,
            alias: col(r, "alias")?,
            spend: col(r, "spend")?,
            allowed_model_region: col(r, "allowed_model_region")?,
            default_model: col(r, "default_model")?,
            budget_id: col(r, "budget_id")?,
            budget_reset_at: col(r, "budget_reset_at")?,
            blocked: get_bool(r, "blocked")?,
            created_at: col(r, "created_at")?,
            updated_at: col(r, "updated_at")?,
        })
    }
}

// ---- spend ---------------------------------------------------------------------------------

/// Spend of the objects besides keys (summed per object) and their budget resets, for one
/// batch of the spend writer.
pub(crate) type ScopeBatch<'a> = (&'a [(&'a Scope, f64)], &'a [(Scope, i64, i64)]);

/// Table, key filter (placeholders from `$first`) and key values of an object's spend row.
pub(crate) fn scope_row(scope: &Scope, first: usize) -> (&'static str, String, Vec<Val>) {
    let (table, columns, keys): (_, &[&str], _) = match scope {
        Scope::Team(id) => ("teams", &["team_id"], vec![Val::text(id)]),
        Scope::User(id) => ("users", &["user_id"], vec![Val::text(id)]),
        Scope::Member(team, user) => (
            "team_memberships",
            &["team_id", "user_id"],
            vec![Val::text(team), Val::text(user)],
        ),
        Scope::Org(id) => ("organizations", &["organization_id"], vec![Val::text(id)]),
        Scope::EndUser(id) => ("end_users", &["user_id"], vec![Val::text(id)]),
    };
    let filter: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| format!("{column} = ${}", first + i))
        .collect();
    (table, filter.join(" AND "), keys)
}

/// Adds spend (an end user seen for the first time gets a row, as in LiteLLM), then applies
/// budget resets whose stored period is over too. Inside the writer's transaction.
pub(crate) async fn apply_scope_spend(
    tx: &mut Tx,
    (usage, resets): ScopeBatch<'_>,
) -> std::result::Result<(), sqlx::Error> {
    for (scope, cost) in usage {
        if let Scope::EndUser(id) = scope {
            sqlx::query(
                "INSERT INTO end_users (user_id, spend, created_at, updated_at) \
                 VALUES ($1, $2, 0, 0) ON CONFLICT (user_id) DO UPDATE SET \
                 spend = end_users.spend + excluded.spend",
            )
            .bind(id.to_string())
            .bind(*cost)
            .execute(&mut **tx)
            .await?;
            continue;
        }
        let (table, filter, keys) = scope_row(scope, 2);
        let sql = format!("UPDATE {table} SET spend = spend + $1 WHERE {filter}");
        let mut query = sqlx::query(&sql).bind(*cost);
        for key in keys {
            query = bind(query, key);
        }
        query.execute(&mut **tx).await?;
    }
    for (scope, now_ms, next_reset) in resets {
        let (table, filter, keys) = scope_row(scope, 2);
        let n = keys.len() + 2;
        let sql = format!(
            "UPDATE {table} SET spend = 0, budget_reset_at = $1 WHERE {filter} AND \
             budget_reset_at IS NOT NULL AND budget_reset_at <= ${n}"
        );
        let mut query = sqlx::query(&sql).bind(*next_reset);
        for key in keys {
            query = bind(query, key);
        }
        query.bind(*now_ms).execute(&mut **tx).await?;
    }
    Ok(())
}
