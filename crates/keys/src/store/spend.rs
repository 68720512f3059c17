//! Spend: the batch writer's totals and per-day logs.

use vaultgate_core::Result;

use super::{Store, col};
use crate::principals::directory::Scope;
use crate::principals::store::{bind, scope_row};

/// Summed usage of one key on one day, applied by the batch writer.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct UsageSum {
    pub cost: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub requests: i64,
}

impl Store {
    /// Applies one batch in one transaction: spend totals, per-day logs, then budget resets.
    pub async fn apply_spend(
        &self,
        usage: &[(String, String, UsageSum)],
        resets: &[(String, i64, i64)],
        scopes: crate::principals::store::ScopeBatch<'_>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        crate::principals::store::apply_scope_spend(&mut tx, scopes)
            .await
            .map_err(|e| self.fail(e))?;
        for (key_id, day, sum) in usage {
            sqlx::query("UPDATE keys SET spend = spend + $1 WHERE key_id = $2")
                .bind(sum.cost)
                .bind(key_id.clone())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.fail(e))?;
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
            .map_err(|e| self.fail(e))?;
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
            .map_err(|e| self.fail(e))?;
        }
        tx.commit().await
    }

    /// `(day, spend, prompt_tokens, completion_tokens, requests)` rows of one key.
    pub async fn spend_logs(&self, key_id: &str) -> Result<Vec<(String, f64, i64, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT day, spend, prompt_tokens, completion_tokens, requests FROM spend_logs \
             WHERE key_id = $1 ORDER BY day",
        )
        .bind(key_id)
        .fetch_all(self.pool()?)
        .await
        .map_err(|e| self.fail(e))?;
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

/// Spend, budget period and `updated_at` of one stored row.
pub(crate) type SpendRow = (f64, Option<i64>, i64);

impl Store {
    /// The spend rows of these keys (other instances' spend, for budget checks here).
    pub async fn key_spends(
        &self,
        key_ids: &[String],
    ) -> Result<Vec<(String, f64, Option<i64>, i64)>> {
        let rows = self
            .rows_where_in(
                "SELECT key_id, spend, budget_reset_at, updated_at FROM keys",
                "key_id",
                key_ids,
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push((
                col(r, "key_id")?,
                col(r, "spend")?,
                col(r, "budget_reset_at")?,
                col(r, "updated_at")?,
            ));
        }
        Ok(out)
    }

    /// The spend row of a team, user, member, organization or end user.
    pub async fn scope_spend(&self, scope: &Scope) -> Result<Option<SpendRow>> {
        let (table, filter, keys) = scope_row(scope, 1);
        let sql = format!("SELECT spend, budget_reset_at, updated_at FROM {table} WHERE {filter}");
        let mut query = sqlx::query(&sql);
        for key in keys {
            query = bind(query, key);
        }
        let row = query
            .fetch_optional(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        row.map(|r| {
            Ok((
                col(&r, "spend")?,
                col(&r, "budget_reset_at")?,
                col(&r, "updated_at")?,
            ))
        })
        .transpose()
    }

    /// The schema the connections use (names the cluster channel and lock). PostgreSQL only.
    pub async fn current_schema(&self) -> Result<String> {
        let row = sqlx::query("SELECT current_schema()::text AS s")
            .fetch_one(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        col(&row, "s")
    }
}
