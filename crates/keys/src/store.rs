//! The key store: one code path over SQLite and PostgreSQL through sqlx's `AnyPool`, with portable
//! SQL (`$n` placeholders, BIGINT/DOUBLE PRECISION/TEXT columns) and forward-only migrations.

use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use vaultgate_core::{Error, Result};

use crate::model::KeyRecord;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub(crate) struct Store {
    pool: AnyPool,
    backend: Backend,
}

pub(crate) type Tx = Transaction<'static, Any>;

pub(crate) fn db_err(e: sqlx::Error) -> Error {
    Error::Database(e.to_string())
}

/// Whether a database error is a unique-constraint violation (duplicate alias or key).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

const COLUMNS: &str = "token, key_id, key_name, key_alias, models, max_budget, budget_duration, \
    budget_reset_at, spend, metadata, tpm_limit, rpm_limit, max_parallel_requests, user_id, \
    team_id, tags, blocked, expires, created_at, updated_at, vault_secret_name";

/// Filters for `/key/list`.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListFilter {
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
}

/// One pending Vault deletion.
#[derive(Debug, Clone)]
pub(crate) struct OutboxEntry {
    pub secret_name: String,
    pub attempts: i64,
}

/// Summed usage of one key on one day, applied by the batch writer.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct UsageSum {
    pub cost: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub requests: i64,
}

impl Store {
    /// Connects and runs the migrations. Safe to call from several instances at once: sqlx holds a
    /// Postgres advisory lock while migrating; on SQLite (WAL, busy_timeout) a racing instance
    /// retries, and the migration SQL is idempotent.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(Error::Config(
                "database_url must start with sqlite: or postgres:// (postgresql://)".into(),
            ));
        };
        let in_memory =
            backend == Backend::Sqlite && url.contains(":memory:") || url.contains("mode=memory");
        let mut options = AnyPoolOptions::new()
            .max_connections(if in_memory { 1 } else { max_connections.max(1) })
            .acquire_timeout(Duration::from_secs(30));
        if in_memory {
            // Every connection to `:memory:` is a separate database: keep the one forever.
            options = options
                .idle_timeout(None)
                .max_lifetime(None)
                .min_connections(1);
        }
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    // Changing the journal mode needs a lock busy_timeout does not wait for.
                    let mut attempt = 0;
                    loop {
                        match conn.execute("PRAGMA journal_mode = WAL").await {
                            Ok(_) => break,
                            Err(e) if attempt < 50 => {
                                attempt += 1;
                                tracing::debug!(error = %e, "retrying PRAGMA journal_mode");
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await.map_err(|e| {
            Error::Database(format!(
                "cannot open the key database ({}): {e}",
                redact_url(url)
            ))
        })?;
        let store = Self { pool, backend };
        store.migrate().await?;
        store.enforce_unique_secret_names().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<()> {
        let mut attempt = 0u32;
        loop {
            match MIGRATOR.run(&self.pool).await {
                Ok(()) => return Ok(()),
                // Another instance migrated the same SQLite file at the same moment: the
                // next run sees its work as applied.
                Err(e) if self.backend == Backend::Sqlite && attempt < 20 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "retrying migrations");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
                Err(e) => return Err(Error::Database(format!("migrations failed: {e}"))),
            }
        }
    }

    /// One key per Vault copy: secret names are made canonical (see
    /// [`crate::model::secret_name`]) and a unique index keeps them apart. Databases written
    /// before this rule may hold names that address one Vault path (`"x"` and `"x "`): the key
    /// changed last keeps the name (its value is the one in Vault, it overwrote the other), the
    /// others lose it and show up in `vaultgate check` as keys without a copy. Idempotent, so
    /// instances starting together do the same.
    async fn enforce_unique_secret_names(&self) -> Result<()> {
        let rows = sqlx::query(
            "SELECT token, key_name, vault_secret_name FROM keys \
             WHERE vault_secret_name IS NOT NULL ORDER BY updated_at DESC, token",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut owners: std::collections::HashMap<String, String> = Default::default();
        let mut changes: Vec<(String, Option<String>)> = Vec::new();
        for row in &rows {
            let token: String = col(row, "token")?;
            let name: String = col(row, "vault_secret_name")?;
            let canonical = crate::model::secret_name(Some(&name), &token);
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
                    .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
        }
        let mut attempt = 0u32;
        loop {
            let created = sqlx::query(
                "CREATE UNIQUE INDEX IF NOT EXISTS keys_vault_secret_name_unique \
                 ON keys (vault_secret_name)",
            )
            .execute(&self.pool)
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

    pub async fn begin(&self) -> Result<Tx> {
        self.pool.begin().await.map_err(db_err)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A round trip to the database, for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db_err)
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

    /// The key whose unique `column` holds `value`.
    async fn get_where(&self, column: &str, value: &str) -> Result<Option<KeyRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM keys WHERE {column} = $1");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
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
        let row = count.fetch_one(&self.pool).await.map_err(db_err)?;
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
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let keys = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok((keys, u64::try_from(total).unwrap_or(0)))
    }

    pub async fn all_keys(&self) -> Result<Vec<KeyRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM keys ORDER BY created_at, token");
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(from_row).collect()
    }

    /// Keys whose budget period ended at or before `now_ms`: `(key_id, budget_duration)`.
    pub async fn due_budget_resets(&self, now_ms: i64) -> Result<Vec<(String, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT key_id, budget_duration FROM keys \
             WHERE budget_reset_at IS NOT NULL AND budget_reset_at <= $1",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((col(r, "key_id")?, col(r, "budget_duration")?)))
            .collect()
    }

    // ---- outbox --------------------------------------------------------------------------

    pub async fn outbox_due(&self, now_ms: i64) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(
            "SELECT secret_name, attempts FROM vault_outbox WHERE next_attempt_at <= $1 \
             ORDER BY next_attempt_at, secret_name",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(OutboxEntry {
                    secret_name: col(r, "secret_name")?,
                    attempts: col(r, "attempts")?,
                })
            })
            .collect()
    }

    pub async fn outbox_all(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT secret_name FROM vault_outbox ORDER BY secret_name")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(|r| col(r, "secret_name")).collect()
    }

    /// The earliest time an outbox entry is due, if any.
    pub async fn outbox_next_due(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MIN(next_attempt_at) AS t FROM vault_outbox")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        col::<Option<i64>>(&row, "t")
    }

    pub async fn outbox_remove(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM vault_outbox WHERE secret_name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    pub async fn outbox_failed(
        &self,
        name: &str,
        attempts: i64,
        next_ms: i64,
        error: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE vault_outbox SET attempts = $1, next_attempt_at = $2, last_error = $3 \
             WHERE secret_name = $4",
        )
        .bind(attempts)
        .bind(next_ms)
        .bind(error.to_owned())
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    // ---- spend ---------------------------------------------------------------------------

    /// Applies one batch in one transaction: spend totals, per-day logs, then budget resets.
    pub async fn apply_spend(
        &self,
        usage: &[(String, String, UsageSum)],
        resets: &[(String, i64, i64)],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for (key_id, day, sum) in usage {
            sqlx::query("UPDATE keys SET spend = spend + $1 WHERE key_id = $2")
                .bind(sum.cost)
                .bind(key_id.clone())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO spend_logs (key_id, day, spend, prompt_tokens, completion_tokens, requests) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id, day) DO UPDATE SET \
                 spend = spend_logs.spend + excluded.spend, \
                 prompt_tokens = spend_logs.prompt_tokens + excluded.prompt_tokens, \
                 completion_tokens = spend_logs.completion_tokens + excluded.completion_tokens, \
                 requests = spend_logs.requests + excluded.requests",
            )
            .bind(key_id.clone())
            .bind(day.clone())
            .bind(sum.cost)
            .bind(sum.prompt_tokens)
            .bind(sum.completion_tokens)
            .bind(sum.requests)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        for (key_id, now_ms, next_reset) in resets {
            // Only if the stored period is over too: another instance may have reset it already.
            sqlx::query(
                "UPDATE keys SET spend = 0, budget_reset_at = $1 \
                 WHERE key_id = $2 AND budget_reset_at IS NOT NULL AND budget_reset_at <= $3",
            )
            .bind(*next_reset)
            .bind(key_id.clone())
            .bind(*now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    /// `(day, spend, prompt_tokens, completion_tokens, requests)` rows of one key.
    pub async fn spend_logs(&self, key_id: &str) -> Result<Vec<(String, f64, i64, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT day, spend, prompt_tokens, completion_tokens, requests FROM spend_logs \
             WHERE key_id = $1 ORDER BY day",
        )
        .bind(key_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    col(r, "day")?,
                    col(r, "spend")?,
                    col(r, "prompt_tokens")?,
                    col(r, "completion_tokens")?,
                    col(r, "requests")?,
                ))
            })
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

/// Queues a Vault deletion (due at once).
pub(crate) async fn outbox_add(
    tx: &mut Tx,
    name: &str,
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO vault_outbox (secret_name, attempts, next_attempt_at, created_at) \
         VALUES ($1, 0, $2, $2) ON CONFLICT (secret_name) DO UPDATE SET next_attempt_at = excluded.next_attempt_at",
    )
    .bind(name.to_owned())
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Drops a queued deletion of a name that is being written again (the new copy must survive).
pub(crate) async fn outbox_cancel(tx: &mut Tx, name: &str) -> std::result::Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM vault_outbox WHERE secret_name = $1")
        .bind(name.to_owned())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

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

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn json_text(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

/// One column of a row; a missing or mistyped column is a database error.
fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(name).map_err(db_err)
}

fn from_row(r: &AnyRow) -> Result<KeyRecord> {
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

/// The URL without its password, for error messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
