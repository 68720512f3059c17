//! The key table: reads, and the statements of a management write (inside its transaction).

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use std::time::Duration;

use sqlx::Any;
use vaultgate_core::{Error, Result};

use super::{Store, Tx, col, db_err};
use crate::model::KeyRecord;

const COLUMNS: &str = "token, key_id, key_name, key_alias, models, max_budget, budget_duration, \
    budget_reset_at, spend, metadata, tpm_limit, rpm_limit, max_parallel_requests, user_id, \
    team_id, tags, blocked, expires, created_at, updated_at, vault_secret_name";

/// Filters for `/key/list`.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListFilter {
    /// The key's hash (its `token`).
    pub token: Option<String>,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
}

impl Store {
    /// One key per Vault copy: secret names are made canonical (see
    /// [`crate::model::secret_name`]) and a unique index keeps them apart. Databases written
    /// before this rule may hold names that address one Vault path (`"x"` and `"x "`): the key
    /// changed last keeps the name (its value is the one in Vault, it overwrote the other), the
    /// others lose it and show up in `vaultgate check` as keys without a copy. Idempotent, so
    /// instances starting together do the same.
    pub(super) async fn enforce_unique_secret_names(&self) -> Result<()> {
        let rows = sqlx::query(
            "SELECT token, key_name, vault_secret_name FROM keys \
             WHERE vault_secret_name IS NOT NULL ORDER BY updated_at DESC, token",
        )
        .fetch_all(self.pool()?)
        .await
        .map_err(|e| self.fail(e))?;
        let mut owners: std::collections::HashMap<String, String> = Default::default();
        let mut changes: Vec<(String, Option<String>)> = Vec::new();
        for row in &rows {
            let token: String = col(row, "token")?;
            let name: String = col(row, "vault_secret_name")?;
            // Only the name part: a team's location prefix is kept as it is.
            let mut addr = crate::vault_location::CopyAddr::parse(&name);
            addr.name = crate::model::secret_name(Some(&addr.name), &token);
            let canonical = addr.encode();
            if let Some(owner) = owners.get(&canonical) {
                let key_name: String = col(row, "key_name")?;
                tracing::warn!(
                    key = %key_name,
                    owner = %owner,
                    secret = %canonical,
                    "two keys shared one Vault copy; the key changed last keeps it, this one \
                     has none now (regenerate it to give it one)"
                );
                changes.push((token, None));
            } else {
                owners.insert(canonical.clone(), col(row, "key_name")?);
                if canonical != name {
                    changes.push((token, Some(canonical)));
                }
            }
        }
        if !changes.is_empty() {
            let mut tx = self.begin().await?;
            for (token, name) in changes {
                sqlx::query("UPDATE keys SET vault_secret_name = $1 WHERE token = $2")
                    .bind(name)
                    .bind(token)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.fail(e))?;
            }
            tx.commit().await?;
        }
        let mut attempt = 0u32;
        loop {
            let created = sqlx::query(
                "CREATE UNIQUE INDEX IF NOT EXISTS keys_vault_secret_name_unique \
                 ON keys (vault_secret_name)",
            )
            .execute(self.pool()?)
            .await;
            match created {
                Ok(_) => return Ok(()),
                // Another instance created it at the same moment.
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(error = %e, "retrying the secret-name index");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
                Err(e) => return Err(db_err(e)),
            }
        }
    }

    pub async fn get_by_token(&self, token: &str) -> Result<Option<KeyRecord>> {
        self.get_where("token", token).await
    }

    pub async fn get_by_alias(&self, alias: &str) -> Result<Option<KeyRecord>> {
        self.get_where("key_alias", alias).await
    }

    /// The key whose Vault copy has this name.
    pub async fn get_by_secret_name(&self, name: &str) -> Result<Option<KeyRecord>> {
        self.get_where("vault_secret_name", name).await
    }

    /// The key whose Vault copy has this name at any location (names are unique across
    /// locations, so a key can move between teams).
    pub async fn get_by_copy_name(&self, name: &str) -> Result<Option<KeyRecord>> {
        let escaped = name
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let sql = format!(
            "SELECT {COLUMNS} FROM keys WHERE vault_secret_name = $1 \
             OR vault_secret_name LIKE $2 ESCAPE '\\'"
        );
        let rows = sqlx::query(&sql)
            .bind(name)
            .bind(format!("%//{escaped}"))
            .fetch_all(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        // LIKE ignores case on SQLite; Vault paths do not.
        for row in &rows {
            let key = from_row(row)?;
            let stored = key.vault_secret_name.as_deref().unwrap_or_default();
            if crate::vault_location::CopyAddr::parse(stored).name == name {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// The key whose unique `column` holds `value`.
    async fn get_where(&self, column: &str, value: &str) -> Result<Option<KeyRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM keys WHERE {column} = $1");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        row.map(|r| from_row(&r)).transpose()
    }

    pub async fn list(
        &self,
        filter: &ListFilter,
        page: u64,
        size: u64,
    ) -> Result<(Vec<KeyRecord>, u64)> {
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        for (column, value) in [
            ("token", &filter.token),
            ("key_alias", &filter.key_alias),
            ("user_id", &filter.user_id),
            ("team_id", &filter.team_id),
        ] {
            if let Some(value) = value {
                values.push(value.clone());
                clauses.push(format!("{column} = ${}", values.len()));
            }
        }
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let count_sql = format!("SELECT COUNT(*) AS n FROM keys{filter_sql}");
        let mut count = sqlx::query(&count_sql);
        for value in &values {
            count = count.bind(value.clone());
        }
        let row = count
            .fetch_one(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        let total: i64 = col(&row, "n")?;
        let limit = i64::try_from(size).unwrap_or(i64::MAX);
        let offset = i64::try_from(page.saturating_sub(1).saturating_mul(size)).unwrap_or(i64::MAX);
        let list_sql = format!(
            "SELECT {COLUMNS} FROM keys{filter_sql} ORDER BY created_at, token LIMIT ${} OFFSET ${}",
            values.len() + 1,
            values.len() + 2
        );
        let mut query = sqlx::query(&list_sql);
        for value in &values {
            query = query.bind(value.clone());
        }
        let rows = query
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        let keys = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok((keys, u64::try_from(total).unwrap_or(0)))
    }

    pub async fn all_keys(&self) -> Result<Vec<KeyRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM keys ORDER BY created_at, token");
        let rows = sqlx::query(&sql)
            .fetch_all(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        rows.iter().map(from_row).collect()
    }

    /// Keys whose budget period ended at or before `now_ms`: `(key_id, budget_duration)`.
    pub async fn due_budget_resets(&self, now_ms: i64) -> Result<Vec<(String, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT key_id, budget_duration FROM keys \
             WHERE budget_reset_at IS NOT NULL AND budget_reset_at <= $1",
        )
        .bind(now_ms)
        .fetch_all(self.pool()?)
        .await
        .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|r| Ok((col(r, "key_id")?, col(r, "budget_duration")?)))
            .collect()
    }
}

// ---- statements inside a transaction ---------------------------------------------------------

// Statements that bind a nullable float are not kept prepared: sqlx 0.8's Any driver binds a
// NULL f64 as float4 on PostgreSQL, and a statement prepared that way then rejects a real f64
// ("incorrect binary data format"). Unprepared, each execution is typed by its own values.

pub(crate) async fn insert_key(tx: &mut Tx, k: &KeyRecord) -> std::result::Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14, $15, $16, $17, $18, $19, $20, $21)"
    );
    bind_all(sqlx::query(&sql).persistent(false), k)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Rewrites the row whose token was `old_token` (the token changes on regenerate). Spend and
/// the budget period are left alone: the batch writer owns them (see [`set_spend`]).
/// Returns whether a row matched.
pub(crate) async fn update_key(
    tx: &mut Tx,
    old_token: &str,
    k: &KeyRecord,
) -> std::result::Result<bool, sqlx::Error> {
    let sql = "UPDATE keys SET token = $1, key_name = $2, key_alias = $3, models = $4, \
         max_budget = $5, budget_duration = $6, metadata = $7, tpm_limit = $8, rpm_limit = $9, \
         max_parallel_requests = $10, user_id = $11, team_id = $12, tags = $13, blocked = $14, \
         expires = $15, updated_at = $16, vault_secret_name = $17 WHERE token = $18 AND key_id = $19";
    let result = sqlx::query(sql)
        .persistent(false)
        .bind(k.token.clone())
        .bind(k.key_name.clone())
        .bind(k.key_alias.clone())
        .bind(json_text(&k.models))
        .bind(k.max_budget)
        .bind(k.budget_duration.clone())
        .bind(Value::Object(k.metadata.clone()).to_string())
        .bind(k.tpm_limit.map(to_i64))
        .bind(k.rpm_limit.map(to_i64))
        .bind(k.max_parallel_requests.map(to_i64))
        .bind(k.user_id.clone())
        .bind(k.team_id.clone())
        .bind(json_text(&k.tags))
        .bind(i64::from(k.blocked))
        .bind(k.expires)
        .bind(k.updated_at)
        .bind(k.vault_secret_name.clone())
        .bind(old_token.to_owned())
        .bind(k.key_id.clone())
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Sets the spend (an admin's `spend` field), after the writer flushed what was pending.
pub(crate) async fn set_spend(
    tx: &mut Tx,
    key_id: &str,
    spend: f64,
) -> std::result::Result<(), sqlx::Error> {
    set_column(tx, "spend", key_id, spend).await
}

/// Starts a new budget period (an admin changed `budget_duration`).
pub(crate) async fn set_budget_reset(
    tx: &mut Tx,
    key_id: &str,
    reset_at: Option<i64>,
) -> std::result::Result<(), sqlx::Error> {
    set_column(tx, "budget_reset_at", key_id, reset_at).await
}

/// Writes one column of a key alone, so the rest of the row (spend above all) is left as it is.
async fn set_column<T>(
    tx: &mut Tx,
    column: &str,
    key_id: &str,
    value: T,
) -> std::result::Result<(), sqlx::Error>
where
    T: for<'q> sqlx::Encode<'q, Any> + sqlx::Type<Any> + Send + 'static,
{
    let sql = format!("UPDATE keys SET {column} = $1 WHERE key_id = $2");
    sqlx::query(&sql)
        .bind(value)
        .bind(key_id.to_owned())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sets only the blocked flag (so a concurrent spend flush is not overwritten).
pub(crate) async fn set_blocked(
    tx: &mut Tx,
    token: &str,
    blocked: bool,
    now_ms: i64,
) -> std::result::Result<bool, sqlx::Error> {
    let result = sqlx::query("UPDATE keys SET blocked = $1, updated_at = $2 WHERE token = $3")
        .bind(i64::from(blocked))
        .bind(now_ms)
        .bind(token.to_owned())
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected() == 1)
}

pub(crate) async fn delete_key(tx: &mut Tx, token: &str) -> std::result::Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM keys WHERE token = $1")
        .bind(token.to_owned())
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected() == 1)
}

pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

fn bind_all<'q>(query: AnyQuery<'q>, k: &KeyRecord) -> AnyQuery<'q> {
    query
        .bind(k.token.clone())
        .bind(k.key_id.clone())
        .bind(k.key_name.clone())
        .bind(k.key_alias.clone())
        .bind(json_text(&k.models))
        .bind(k.max_budget)
        .bind(k.budget_duration.clone())
        .bind(k.budget_reset_at)
        .bind(k.spend)
        .bind(Value::Object(k.metadata.clone()).to_string())
        .bind(k.tpm_limit.map(to_i64))
        .bind(k.rpm_limit.map(to_i64))
        .bind(k.max_parallel_requests.map(to_i64))
        .bind(k.user_id.clone())
        .bind(k.team_id.clone())
        .bind(json_text(&k.tags))
        .bind(i64::from(k.blocked))
        .bind(k.expires)
        .bind(k.created_at)
        .bind(k.updated_at)
        .bind(k.vault_secret_name.clone())
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn json_text(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn from_row(r: &AnyRow) -> Result<KeyRecord> {
    let get_list = |name: &str| -> Result<Vec<String>> {
        let text: String = col(r, name)?;
        serde_json::from_str(&text).map_err(|e| Error::Database(format!("column {name}: {e}")))
    };
    let get_u64 = |name: &str| -> Result<Option<u64>> {
        let v: Option<i64> = col(r, name)?;
        Ok(v.and_then(|v| u64::try_from(v).ok()))
    };
    let metadata_text: String = col(r, "metadata")?;
    let metadata: Map<String, Value> = serde_json::from_str(&metadata_text)
        .map_err(|e| Error::Database(format!("column metadata: {e}")))?;
    let blocked: i64 = col(r, "blocked")?;
    Ok(KeyRecord {
        token: col(r, "token")?,
        key_id: col(r, "key_id")?,
        key_name: col(r, "key_name")?,
        key_alias: col(r, "key_alias")?,
        models: get_list("models")?,
        max_budget: col(r, "max_budget")?,
        budget_duration: col(r, "budget_duration")?,
        budget_reset_at: col(r, "budget_reset_at")?,
        spend: col(r, "spend")?,
        metadata,
        tpm_limit: get_u64("tpm_limit")?,
        rpm_limit: get_u64("rpm_limit")?,
        max_parallel_requests: get_u64("max_parallel_requests")?,
        user_id: col(r, "user_id")?,
        team_id: col(r, "team_id")?,
        tags: get_list("tags")?,
        blocked: blocked != 0,
        expires: col(r, "expires")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
        vault_secret_name: col(r, "vault_secret_name")?,
    })
}
