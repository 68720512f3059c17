//! The outbox table: Vault copies waiting for deletion or repair.

use vaultgate_core::Result;

use super::{Store, Tx, col};

/// One pending Vault deletion.
#[derive(Debug, Clone)]
pub(crate) struct OutboxEntry {
    pub secret_name: String,
    pub attempts: i64,
}

impl Store {
    pub async fn outbox_due(&self, now_ms: i64) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(
            "SELECT secret_name, attempts FROM vault_outbox WHERE next_attempt_at <= $1 \
             ORDER BY next_attempt_at, secret_name",
        )
        .bind(now_ms)
        .fetch_all(self.pool()?)
        .await
        .map_err(|e| self.fail(e))?;
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
            .fetch_all(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        rows.iter().map(|r| col(r, "secret_name")).collect()
    }

    /// The earliest time an outbox entry is due, if any.
    pub async fn outbox_next_due(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MIN(next_attempt_at) AS t FROM vault_outbox")
            .fetch_one(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
        col::<Option<i64>>(&row, "t")
    }

    pub async fn outbox_remove(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM vault_outbox WHERE secret_name = $1")
            .bind(name)
            .execute(self.pool()?)
            .await
            .map_err(|e| self.fail(e))?;
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
        .execute(self.pool()?)
        .await
        .map_err(|e| self.fail(e))?;
        Ok(())
    }
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
