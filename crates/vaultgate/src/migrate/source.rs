//! The LiteLLM database: connecting (with Prisma's URL parameters understood), checking that
//! its tables are there and new enough, and reading every row in one consistent snapshot.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use vaultgate_core::{Error, Result};

use super::mapping::Tables;

/// Longest wait for the LiteLLM database to answer a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Prisma's parameters in a `DATABASE_URL` that PostgreSQL itself does not know.
const PRISMA_PARAMS: &[&str] = &[
    "schema",
    "connection_limit",
    "pool_timeout",
    "pgbouncer",
    "socket_timeout",
    "statement_cache_size",
    "connect_timeout",
];

/// The tables read, each with the columns it must have and its key (for a stable order). The
/// columns are those of LiteLLM releases since mid-2024; anything else is optional.
const TABLES: &[(&str, &[&str], &str)] = &[
    (
        "LiteLLM_BudgetTable",
        &[
            "budget_id",
            "max_budget",
            "tpm_limit",
            "rpm_limit",
            "max_parallel_requests",
            "budget_duration",
            "budget_reset_at",
            "created_at",
            "updated_at",
        ],
        "budget_id",
    ),
    (
        "LiteLLM_OrganizationTable",
        &[
            "organization_id",
            "organization_alias",
            "budget_id",
            "models",
            "spend",
            "metadata",
        ],
        "organization_id",
    ),
    (
        "LiteLLM_OrganizationMembership",
        &[
            "organization_id",
            "user_id",
            "user_role",
            "spend",
            "budget_id",
        ],
        "organization_id, user_id",
    ),
    (
        "LiteLLM_TeamTable",
        &[
            "team_id",
            "team_alias",
            "organization_id",
            "members_with_roles",
            "metadata",
            "max_budget",
            "spend",
            "models",
            "tpm_limit",
            "rpm_limit",
            "budget_duration",
            "budget_reset_at",
            "blocked",
        ],
        "team_id",
    ),
    (
        "LiteLLM_TeamMembership",
        &["team_id", "user_id", "spend", "budget_id"],
        "team_id, user_id",
    ),
    (
        "LiteLLM_UserTable",
        &[
            "user_id",
            "user_email",
            "user_role",
            "max_budget",
            "spend",
            "models",
            "tpm_limit",
            "rpm_limit",
            "budget_duration",
            "budget_reset_at",
        ],
        "user_id",
    ),
    (
        "LiteLLM_EndUserTable",
        &["user_id", "alias", "spend", "budget_id", "blocked"],
        "user_id",
    ),
    (
        "LiteLLM_VerificationToken",
        &[
            "token",
            "key_name",
            "key_alias",
            "spend",
            "expires",
            "models",
            "user_id",
            "team_id",
            "metadata",
            "max_budget",
            "budget_duration",
            "budget_reset_at",
            "tpm_limit",
            "rpm_limit",
            "max_parallel_requests",
            "blocked",
        ],
        "token",
    ),
];

/// Columns never read: the admin UI's password hashes stay in the LiteLLM database.
const NEVER_READ: &[&str] = &["password"];

/// Where `--from` points, for messages (password hidden).
pub struct Source {
    pub shown: String,
    pub schema: String,
    options: PgConnectOptions,
}

impl Source {
    /// Parses `--from`: a PostgreSQL URL as LiteLLM's `DATABASE_URL` is written.
    pub fn parse(from: &str) -> Result<Self> {
        let wrong = || {
            Error::Config(
                "--from must be the PostgreSQL URL of LiteLLM's database (its DATABASE_URL), \
                 like postgres://user:password@host:5432/litellm"
                    .into(),
            )
        };
        let mut url = url::Url::parse(from.trim()).map_err(|_| wrong())?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(wrong());
        }
        let mut schema = "public".to_owned();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter_map(|(name, value)| {
                if name == "schema" && !value.is_empty() {
                    schema = value.to_string();
                }
                (!PRISMA_PARAMS.contains(&name.as_ref()))
                    .then(|| (name.into_owned(), value.into_owned()))
            })
            .collect();
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
        let options = PgConnectOptions::from_str(url.as_str())
            .map_err(|e| Error::Config(format!("--from is not a usable PostgreSQL URL: {e}")))?
            .application_name("vaultgate-migrate");
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        Ok(Self {
            shown: url.to_string(),
            schema,
            options,
        })
    }

    /// Every row of every table, in one read-only snapshot.
    pub async fn read(&self) -> Result<Tables> {
        let unreachable = |e: String| {
            Error::Unavailable(format!(
                "cannot reach the LiteLLM database at {}: {e}",
                self.shown
            ))
        };
        let mut conn =
            tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&self.options))
                .await
                .map_err(|_| {
                    unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))
                })?
                .map_err(|e| unreachable(e.to_string()))?;
        let result = self.read_on(&mut conn).await;
        let _ = conn.close().await;
        result
    }

    async fn read_on(&self, conn: &mut PgConnection) -> Result<Tables> {
        let db = |e: sqlx::Error| Error::Database(format!("reading the LiteLLM database: {e}"));
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        self.check_tables(conn).await?;
        let mut read: HashMap<&str, Vec<Map<String, Value>>> = HashMap::new();
        for (table, _, order) in TABLES {
            let mut sql = String::from("SELECT (to_jsonb(t)");
            for column in NEVER_READ {
                sql.push_str(&format!(" - '{column}'"));
            }
            sql.push_str(&format!(
                ")::text FROM {}.{} t ORDER BY {order}",
                quote(&self.schema),
                quote(table)
            ));
            let texts: Vec<String> = sqlx::query_scalar(&sql)
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
            let rows = texts
                .iter()
                .map(|text| match serde_json::from_str(text) {
                    Ok(Value::Object(row)) => Ok(row),
                    _ => Err(Error::Database(format!(
                        "{table}: a row that is not an object"
                    ))),
                })
                .collect::<Result<Vec<_>>>()?;
            read.insert(table, rows);
        }
        sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        let mut take = |table: &str| read.remove(table).unwrap_or_default();
        Ok(Tables {
            budgets: take("LiteLLM_BudgetTable"),
            organizations: take("LiteLLM_OrganizationTable"),
            organization_members: take("LiteLLM_OrganizationMembership"),
            teams: take("LiteLLM_TeamTable"),
            team_members: take("LiteLLM_TeamMembership"),
            users: take("LiteLLM_UserTable"),
            end_users: take("LiteLLM_EndUserTable"),
            keys: take("LiteLLM_VerificationToken"),
        })
    }

    /// A clear error unless every table and column read is there.
    async fn check_tables(&self, conn: &mut PgConnection) -> Result<()> {
        let found: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name LIKE 'LiteLLM%'",
        )
        .bind(&self.schema)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::Database(format!("reading the LiteLLM database: {e}")))?;
        let found: BTreeSet<(&str, &str)> = found
            .iter()
            .map(|(t, c)| (t.as_str(), c.as_str()))
            .collect();
        if !found.iter().any(|(t, _)| *t == "LiteLLM_VerificationToken") {
            return Err(Error::Config(format!(
                "{} has no LiteLLM tables in schema {:?} (no \"LiteLLM_VerificationToken\"): \
                 --from must be the database LiteLLM's DATABASE_URL names (a Prisma \
                 ?schema=NAME in the URL is honoured)",
                self.shown, self.schema
            )));
        }
        let mut missing = Vec::new();
        for (table, columns, _) in TABLES {
            if !found.iter().any(|(t, _)| t == table) {
                missing.push(format!("table {table}"));
                continue;
            }
            for column in *columns {
                if !found.contains(&(table, column)) {
                    missing.push(format!("{table}.{column}"));
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::Config(format!(
            "this LiteLLM database was written by a LiteLLM too old to migrate from: it lacks {}. \
             Upgrade LiteLLM and start it once against this database (it updates its tables at \
             start), then run the migration again",
            missing.join(", ")
        )))
    }
}

/// A PostgreSQL identifier in double quotes.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn urls() {
        let source =
            Source::parse("postgresql://llm:s3cret@db:5432/litellm?schema=proxy&connection_limit=5&sslmode=disable")
                .unwrap();
        assert_eq!(source.schema, "proxy");
        assert!(!source.shown.contains("s3cret"), "{}", source.shown);
        assert!(source.shown.contains("sslmode=disable") && !source.shown.contains("schema="));
        assert_eq!(Source::parse("postgres://db/x").unwrap().schema, "public");
        for wrong in ["sqlite://x.db", "db:5432/litellm", "", "mysql://db/x"] {
            let error = Source::parse(wrong).err().unwrap().to_string();
            assert!(error.contains("--from must be"), "{wrong}: {error}");
        }
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
