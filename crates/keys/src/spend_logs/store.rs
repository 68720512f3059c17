//! The spend-log tables: batched inserts, the retention delete, filtered pages of rows and
//! grouped sums, in portable SQL (days are `start_time / 86400000`, never a date function).

use std::collections::HashMap;

use serde_json::Value;
use sqlx::any::AnyRow;
use vaultgate_core::Result;

use super::SpendLogRow;
use crate::store::{AnyQuery, Store, col, json_text, to_i64};

/// Rows per INSERT statement (24 values each, well below both databases' parameter limits).
const ROWS_PER_STATEMENT: usize = 100;
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
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut sql = format!("INSERT INTO request_logs ({COLUMNS}) VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let first = i * COLUMN_COUNT + 1;
                let marks: Vec<String> = (first..first + COLUMN_COUNT)
                    .map(|n| format!("${n}"))
                    .collect();
                sql.push('(');
                sql.push_str(&marks.join(", "));
                sql.push(')');
            }
            // Only the full-size statement is kept prepared: each connection caches up to
            // 100 statements, and one per batch remainder (1 to 99 rows of 24 values) held
            // tens of MiB of compiled SQL.
            let mut query = sqlx::query(&sql).persistent(chunk.len() == ROWS_PER_STATEMENT);
            for row in chunk {
                query = bind_row(query, row);
            }
            query.execute(&mut *tx).await.map_err(|e| self.fail(e))?;
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

fn bind_row<'q>(query: AnyQuery<'q>, row: &SpendLogRow) -> AnyQuery<'q> {
    let json = |value: &Option<Value>| value.as_ref().map(Value::to_string);
    query
        .bind(row.request_id.clone())
        .bind(row.call_type.clone())
        .bind(row.api_key.clone())
        .bind(row.spend)
        .bind(to_i64(
            row.prompt_tokens.saturating_add(row.completion_tokens),
        ))
        .bind(to_i64(row.prompt_tokens))
        .bind(to_i64(row.completion_tokens))
        .bind(row.start_ms)
        .bind(row.end_ms)
        .bind(row.model.clone())
        .bind(row.model_id.clone())
        .bind(row.model_group.clone())
        .bind(row.custom_llm_provider.clone())
        .bind(row.api_base.clone())
        .bind(row.user.clone())
        .bind(row.team_id.clone())
        .bind(row.organization_id.clone())
        .bind(row.end_user.clone())
        .bind(Value::Object(row.metadata.clone()).to_string())
        .bind(json_text(&row.request_tags))
        .bind(if row.cache_hit { "True" } else { "False" })
        .bind(row.status.clone())
        .bind(json(&row.messages))
        .bind(json(&row.response))
}

fn from_row(r: &AnyRow) -> Result<SpendLogRow> {
    let json = |name: &str| -> Result<Option<Value>> {
        let text: Option<String> = col(r, name)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    };
    let metadata = match json("metadata")? {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
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
