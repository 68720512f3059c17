//! The spend-log tables: batched inserts, the retention delete, filtered pages of rows and
//! grouped sums, in portable SQL (days are `start_time / 86400000`, never a date function).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;
use sqlx::any::AnyRow;
use vaultgate_core::Result;

use super::SpendLogRow;
use crate::store::{AnyQuery, Backend, Store, col, json_text, to_i64};

/// Most rows per INSERT statement (24 values each, well below both databases' parameter
/// limits). A batch goes in statements of powers of two rows (64, then 32, 16, … 1 for the
/// rest), so each connection keeps at most seven of them prepared, and none is compiled per
/// batch: preparing a statement for each batch's own size cost more than inserting its rows.
const MAX_ROWS_PER_STATEMENT: usize = 64;
pub(crate) const DAY_MS: i64 = 86_400_000;

const COLUMNS: &str = "request_id, call_type, api_key, spend, total_tokens, prompt_tokens, \
    completion_tokens, start_time, end_time, model, model_id, model_group, custom_llm_provider, \
    api_base, user_id, team_id, organization_id, end_user, metadata, request_tags, cache_hit, \
    status, messages, response";
const COLUMN_COUNT: usize = 24;

/// Which rows a read covers; every field set narrows it (AND).
#[derive(Debug, Clone, Default)]
pub(crate) struct LogFilter {
    pub api_key: Option<String>,
    pub user: Option<String>,
    pub team_id: Option<String>,
    pub request_id: Option<String>,
    pub end_user: Option<String>,
    /// The deployment's model (as `/global/spend/models` names it).
    pub model: Option<String>,
    /// `success` or `failure`.
    pub status: Option<String>,
    /// `start_time >= from_ms`.
    pub from_ms: Option<i64>,
    /// `start_time < to_ms`.
    pub to_ms: Option<i64>,
}

enum Bind {
    Text(String),
    Int(i64),
}

impl LogFilter {
    /// ` WHERE …` (or nothing) and its values, numbered from `$1`.
    fn sql(&self, table: &str) -> (String, Vec<Bind>) {
        let mut clauses = Vec::new();
        let mut binds = Vec::new();
        for (column, value) in [
            ("api_key", &self.api_key),
            ("user_id", &self.user),
            ("team_id", &self.team_id),
            ("request_id", &self.request_id),
            ("end_user", &self.end_user),
            ("model", &self.model),
            ("status", &self.status),
        ] {
            if let Some(value) = value {
                binds.push(Bind::Text(value.clone()));
                clauses.push(format!("{table}.{column} = ${}", binds.len()));
            }
        }
        if let Some(from) = self.from_ms {
            binds.push(Bind::Int(from));
            clauses.push(format!("{table}.start_time >= ${}", binds.len()));
        }
        if let Some(to) = self.to_ms {
            binds.push(Bind::Int(to));
            clauses.push(format!("{table}.start_time < ${}", binds.len()));
        }
        let sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        (sql, binds)
    }
}

fn bind<'q>(mut query: AnyQuery<'q>, binds: &[Bind]) -> AnyQuery<'q> {
    for value in binds {
        query = match value {
            Bind::Text(text) => query.bind(text.clone()),
            Bind::Int(n) => query.bind(*n),
        };
    }
    query
}

/// What a grouped read groups by (a fixed set: no caller-chosen SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Day,
    ApiKey,
    User,
    Model,
    TeamId,
    EndUser,
}

impl Group {
    fn expr(self) -> &'static str {
        match self {
            Group::Day => "(start_time / 86400000)",
            Group::ApiKey => "api_key",
            Group::User => "user_id",
            Group::Model => "model",
            Group::TeamId => "team_id",
            Group::EndUser => "end_user",
        }
    }
}

/// One group's sums. `keys` holds the text groups in the order asked; `day` the day number.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sums {
    pub day: Option<i64>,
    pub keys: Vec<String>,
    pub spend: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
}

impl Store {
    /// Inserts rows (and their tags) in one transaction.
    pub(crate) async fn insert_request_logs(&self, rows: &[SpendLogRow]) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut rest = rows;
        while !rest.is_empty() {
            let size = statement_rows(rest.len());
            let (chunk, tail) = rest.split_at(size);
            let mut query = sqlx::query(insert_sql(self.backend(), size));
            for row in chunk {
                query = bind_row(query, row);
            }
            query.execute(&mut *tx).await.map_err(|e| self.fail(e))?;
            rest = tail;
        }
        for row in rows {
            for tag in &row.request_tags {
                sqlx::query(
                    "INSERT INTO request_log_tags (request_id, tag, start_time, spend) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(row.request_id.clone())
                .bind(tag.clone())
                .bind(row.start_ms)
                .bind(row.spend)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.fail(e))?;
            }
        }
        tx.commit().await
    }

    /// Deletes rows (and tags) of requests that started before `cutoff_ms`; how many rows.
    pub(crate) async fn delete_request_logs_before(&self, cutoff_ms: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM request_log_tags WHERE start_time < $1")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.fail(e))?;
        let done = sqlx::query("DELETE FROM request_logs WHERE start_time < $1")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.fail(e))?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// One page of rows, newest first, and how many rows match in all.
    pub(crate) async fn request_logs(
        &self,
        filter: &LogFilter,
        page: u64,
        page_size: u64,
    ) -> Result<(Vec<SpendLogRow>, u64)> {
        let (where_sql, binds) = filter.sql("request_logs");
        let count_sql = format!("SELECT COUNT(*) AS n FROM request_logs{where_sql}");
        let row = bind(sqlx::query(&count_sql), &binds)
            .fetch_one(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        let total: i64 = col(&row, "n")?;
        let list_sql = format!(
            "SELECT {COLUMNS} FROM request_logs{where_sql} ORDER BY start_time DESC, request_id \
             LIMIT ${} OFFSET ${}",
            binds.len() + 1,
            binds.len() + 2
        );
        let offset = page.saturating_sub(1).saturating_mul(page_size);
        let rows = bind(sqlx::query(&list_sql), &binds)
            .bind(to_i64(page_size))
            .bind(to_i64(offset))
            .fetch_all(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }

    /// Sums of the matching rows per group, ordered by the groups.
    pub(crate) async fn request_log_sums(
        &self,
        filter: &LogFilter,
        groups: &[Group],
    ) -> Result<Vec<Sums>> {
        let (where_sql, binds) = filter.sql("request_logs");
        let selected: Vec<String> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| format!("{} AS g{i}", g.expr()))
            .collect();
        let by: Vec<&str> = groups.iter().map(|g| g.expr()).collect();
        let mut sql = String::from("SELECT ");
        for column in &selected {
            sql.push_str(column);
            sql.push_str(", ");
        }
        sql.push_str(
            "SUM(spend) AS spend, CAST(SUM(prompt_tokens) AS BIGINT) AS prompt, \
             CAST(SUM(completion_tokens) AS BIGINT) AS completion, \
             CAST(SUM(total_tokens) AS BIGINT) AS total FROM request_logs",
        );
        sql.push_str(&where_sql);
        if !by.is_empty() {
            sql.push_str(" GROUP BY ");
            sql.push_str(&by.join(", "));
            sql.push_str(" ORDER BY ");
            sql.push_str(&by.join(", "));
        }
        let rows = bind(sqlx::query(&sql), &binds)
            .fetch_all(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|r| {
                let mut sums = Sums {
                    spend: col::<Option<f64>>(r, "spend")?.unwrap_or(0.0),
                    prompt_tokens: col::<Option<i64>>(r, "prompt")?.unwrap_or(0),
                    completion_tokens: col::<Option<i64>>(r, "completion")?.unwrap_or(0),
                    total_tokens: col::<Option<i64>>(r, "total")?.unwrap_or(0),
                    ..Sums::default()
                };
                for (i, group) in groups.iter().enumerate() {
                    let name = format!("g{i}");
                    if *group == Group::Day {
                        sums.day = Some(col(r, &name)?);
                    } else {
                        sums.keys.push(col(r, &name)?);
                    }
                }
                Ok(sums)
            })
            .collect()
    }

    /// `(tag, day, requests, spend)` of the tagged requests in `[from_ms, to_ms)`.
    pub(crate) async fn request_tag_sums(
        &self,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<Vec<(String, i64, i64, f64)>> {
        let filter = LogFilter {
            from_ms,
            to_ms,
            ..LogFilter::default()
        };
        let (where_sql, binds) = filter.sql("request_log_tags");
        let sql = format!(
            "SELECT tag, (start_time / 86400000) AS day, COUNT(*) AS n, SUM(spend) AS spend \
             FROM request_log_tags{where_sql} GROUP BY tag, (start_time / 86400000) \
             ORDER BY tag, (start_time / 86400000)"
        );
        let rows = bind(sqlx::query(&sql), &binds)
            .fetch_all(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|r| {
                Ok((
                    col(r, "tag")?,
                    col(r, "day")?,
                    col(r, "n")?,
                    col::<Option<f64>>(r, "spend")?.unwrap_or(0.0),
                ))
            })
            .collect()
    }

    /// `token → (key_alias, key_name)` of the keys that still exist among `tokens`.
    pub(crate) async fn key_names(
        &self,
        tokens: &[String],
    ) -> Result<HashMap<String, (Option<String>, String)>> {
        let rows = self
            .rows_where_in(
                "SELECT token, key_alias, key_name FROM keys",
                "token",
                tokens,
            )
            .await?;
        let mut names = HashMap::new();
        for r in &rows {
            names.insert(
                col(r, "token")?,
                (col(r, "key_alias")?, col(r, "key_name")?),
            );
        }
        Ok(names)
    }
}

/// The rows of the next statement for `left` rows: the largest power of two that fits.
fn statement_rows(left: usize) -> usize {
    if left >= MAX_ROWS_PER_STATEMENT {
        MAX_ROWS_PER_STATEMENT
    } else {
        1 << left.ilog2()
    }
}

/// The INSERT of `rows` rows (a power of two up to the maximum), built once per backend.
/// SQLite gets anonymous `?` marks: it looks numbered ones up by name in a list, once when the
/// statement is compiled and again for every value bound, which is quadratic in the values.
fn insert_sql(backend: Backend, rows: usize) -> &'static str {
    static SQLITE: OnceLock<Vec<String>> = OnceLock::new();
    static POSTGRES: OnceLock<Vec<String>> = OnceLock::new();
    let cache = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    let statements = cache.get_or_init(|| {
        (0..=MAX_ROWS_PER_STATEMENT.ilog2())
            .map(|power| {
                let count = 1usize << power;
                let mut sql = format!("INSERT INTO request_logs ({COLUMNS}) VALUES ");
                for row in 0..count {
                    sql.push_str(if row == 0 { "(" } else { ", (" });
                    for column in 0..COLUMN_COUNT {
                        if column > 0 {
                            sql.push_str(", ");
                        }
                        match backend {
                            Backend::Sqlite => sql.push('?'),
                            Backend::Postgres => {
                                sql.push_str(&format!("${}", row * COLUMN_COUNT + column + 1));
                            }
                        }
                    }
                    sql.push(')');
                }
                sql
            })
            .collect()
    });
    &statements[rows.ilog2() as usize]
}

/// Binds a row's values, borrowing its text (the rows outlive the statement).
fn bind_row<'q>(query: AnyQuery<'q>, row: &'q SpendLogRow) -> AnyQuery<'q> {
    let json = |value: &Option<Value>| value.as_ref().map(Value::to_string);
    query
        .bind(row.request_id.as_str())
        .bind(row.call_type.as_str())
        .bind(row.api_key.as_str())
        .bind(row.spend)
        .bind(to_i64(
            row.prompt_tokens.saturating_add(row.completion_tokens),
        ))
        .bind(to_i64(row.prompt_tokens))
        .bind(to_i64(row.completion_tokens))
        .bind(row.start_ms)
        .bind(row.end_ms)
        .bind(row.model.as_str())
        .bind(row.model_id.as_str())
        .bind(row.model_group.as_str())
        .bind(row.custom_llm_provider.as_str())
        .bind(row.api_base.as_str())
        .bind(row.user.as_str())
        .bind(row.team_id.as_str())
        .bind(row.organization_id.as_str())
        .bind(row.end_user.as_str())
        .bind(match row.metadata.as_str() {
            "" => "{}",
            text => text,
        })
        .bind(json_text(&row.request_tags))
        .bind(if row.cache_hit { "True" } else { "False" })
        .bind(row.status.as_str())
        .bind(json(&row.messages))
        .bind(json(&row.response))
}

fn from_row(r: &AnyRow) -> Result<SpendLogRow> {
    let json = |name: &str| -> Result<Option<Value>> {
        let text: Option<String> = col(r, name)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    };
    let metadata: String = col::<Option<String>>(r, "metadata")?.unwrap_or_default();
    let tags: Vec<String> = json("request_tags")?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let tokens =
        |name: &str| -> Result<u64> { Ok(u64::try_from(col::<i64>(r, name)?).unwrap_or(0)) };
    Ok(SpendLogRow {
        request_id: col(r, "request_id")?,
        call_type: col(r, "call_type")?,
        api_key: col(r, "api_key")?,
        spend: col(r, "spend")?,
        prompt_tokens: tokens("prompt_tokens")?,
        completion_tokens: tokens("completion_tokens")?,
        start_ms: col(r, "start_time")?,
        end_ms: col(r, "end_time")?,
        model: col(r, "model")?,
        model_id: col(r, "model_id")?,
        model_group: col(r, "model_group")?,
        custom_llm_provider: col(r, "custom_llm_provider")?,
        api_base: col(r, "api_base")?,
        user: col(r, "user_id")?,
        team_id: col(r, "team_id")?,
        organization_id: col(r, "organization_id")?,
        end_user: col(r, "end_user")?,
        metadata,
        request_tags: tags,
        cache_hit: col::<String>(r, "cache_hit")? == "True",
        status: col(r, "status")?,
        messages: json("messages")?,
        response: json("response")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_go_in_power_of_two_statements_with_one_mark_per_value() {
        for total in [1usize, 2, 3, 63, 64, 65, 100, 127, 1000] {
            let mut left = total;
            let mut statements = 0;
            while left > 0 {
                let size = statement_rows(left);
                assert!(size.is_power_of_two() && size <= left && size <= MAX_ROWS_PER_STATEMENT);
                left -= size;
                statements += 1;
            }
            assert!(
                statements <= total / MAX_ROWS_PER_STATEMENT + 6,
                "{total}: {statements}"
            );
        }
        for size in [1, 2, 4, 8, 16, 32, 64] {
            let sqlite = insert_sql(Backend::Sqlite, size);
            assert_eq!(sqlite.matches('?').count(), size * COLUMN_COUNT);
            assert!(!sqlite.contains('$'));
            let postgres = insert_sql(Backend::Postgres, size);
            let last = format!("${}", size * COLUMN_COUNT);
            assert!(postgres.ends_with(&format!("{last})")), "{postgres}");
            assert_eq!(postgres.matches('$').count(), size * COLUMN_COUNT);
        }
    }
}
