//! The key store: one code path over SQLite and PostgreSQL through sqlx's `AnyPool`, with portable
//! SQL (`$n` placeholders, BIGINT/DOUBLE PRECISION/TEXT columns) and forward-only migrations.

mod breaker;
mod keys;
mod outbox;
mod spend;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Executor, Row};
use vaultgate_core::{Error, Result};

use self::breaker::Breaker;
pub(crate) use self::keys::{
    AnyQuery, ListFilter, delete_key, from_row as key_from_row, insert_key, json_text, set_blocked,
    set_budget_reset, set_spend, to_i64, update_key,
};
pub(crate) use self::outbox::{OutboxEntry, outbox_add, outbox_cancel};
pub(crate) use self::spend::UsageSum;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub(crate) struct Store {
    pool: AnyPool,
    backend: Backend,
    breaker: Arc<Breaker>,
}

/// A write transaction on a connection of its own. A transaction that did not end in a clean
/// `COMMIT` or `ROLLBACK` (an error on the way, a failed commit on a full disk, a dropped
/// future) closes its connection instead of returning it to the pool: SQLite keeps a
/// transaction open when `COMMIT` fails, and a pooled connection in that state would hold the
/// write lock for good (every later write "database is locked", later "commits" only nested
/// savepoints that are never stored).
pub(crate) struct Tx {
    conn: PoolConnection<Any>,
    open: bool,
}

impl Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl Tx {
    pub async fn commit(mut self) -> Result<()> {
        let result = self.conn.execute("COMMIT").await;
        self.finish(result.is_ok());
        result.map(|_| ()).map_err(db_err)
    }

    pub async fn rollback(mut self) -> Result<()> {
        let result = self.conn.execute("ROLLBACK").await;
        self.finish(result.is_ok());
        result.map(|_| ()).map_err(db_err)
    }

    fn finish(&mut self, clean: bool) {
        self.open = false;
        if !clean {
            self.conn.close_on_drop();
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

pub(crate) fn db_err(e: sqlx::Error) -> Error {
    Error::Database(e.to_string())
}

/// Whether SQLite said another connection holds the lock (SQLITE_BUSY, SQLITE_LOCKED).
fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("5" | "6")))
}

/// Whether a database error is a unique-constraint violation (duplicate alias or key).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    /// Connects and runs the migrations. Safe to call from several instances at once: sqlx holds a
    /// Postgres advisory lock while migrating; on SQLite (WAL, busy_timeout) a racing instance
    /// retries, and the migration SQL is idempotent.
    /// `acquire_timeout` bounds the wait for a connection (and so for an unreachable database);
    /// after one such failure the breaker makes calls fail at once for a while.
    pub async fn open(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<Self> {
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
            .acquire_timeout(acquire_timeout);
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
                            Err(e) if attempt < 50 && is_busy(&e) => {
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
        let store = Self {
            pool,
            backend,
            breaker: Arc::new(Breaker::default()),
        };
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

    /// The pool, unless the breaker says the database is unreachable.
    pub(crate) fn pool(&self) -> Result<&AnyPool> {
        self.breaker.check()?;
        Ok(&self.pool)
    }

    /// How many times the database was reached again after being unreachable.
    pub(crate) fn recoveries(&self) -> u64 {
        self.breaker.recoveries()
    }

    /// A database error of a call on the pool, noted by the breaker.
    pub(crate) fn fail(&self, e: sqlx::Error) -> Error {
        self.breaker.record(Some(&e));
        db_err(e)
    }

    /// A call on the pool that succeeded (closes the breaker).
    pub(crate) fn ok<T>(&self, value: T) -> T {
        self.breaker.record(None);
        value
    }

    pub async fn begin(&self) -> Result<Tx> {
        let mut conn = self.pool()?.acquire().await.map_err(|e| self.fail(e))?;
        conn.execute("BEGIN").await.map_err(|e| self.fail(e))?;
        Ok(self.ok(Tx { conn, open: true }))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The rows of `{select} WHERE {column} IN (…values)`, in statements of at most 100 values
    /// (both databases cap the bind parameters of one statement).
    pub(crate) async fn rows_where_in(
        &self,
        select: &str,
        column: &str,
        values: &[String],
    ) -> Result<Vec<AnyRow>> {
        let mut out = Vec::new();
        for chunk in values.chunks(VALUES_PER_STATEMENT) {
            let marks: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!("{select} WHERE {column} IN ({})", marks.join(", "));
            // One statement per list length: not kept prepared (see insert_request_logs).
            let mut query = sqlx::query(&sql).persistent(false);
            for value in chunk {
                query = query.bind(value.clone());
            }
            let rows = query
                .fetch_all(self.pool()?)
                .await
                .map_err(|e| self.fail(e))?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// A round trip to the database, for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(self.pool()?)
            .await
            .map(|_| self.ok(()))
            .map_err(|e| self.fail(e))
    }
}

/// Bound values per statement of [`Store::rows_where_in`].
const VALUES_PER_STATEMENT: usize = 100;

/// One column of a row; a missing or mistyped column is a database error.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(name).map_err(db_err)
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
