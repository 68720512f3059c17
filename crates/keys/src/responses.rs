//! Stored Responses: the Responses API answers vaultgate translated for non-OpenAI deployments,
//! kept so `GET /v1/responses/{id}`, its input items and `previous_response_id` work as they do
//! on OpenAI. The request path only queues a finished response ([`StoredResponses::keep`] never
//! waits); the batch writer stores it. Until then it sits in a bounded in-memory map, so a
//! follow-up or a `GET` right after the answer finds it on this instance (other instances find
//! it once it is written). Rows are deleted after the retention period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vaultgate_core::Result;

use crate::batch::{LogQueue, Row, cutoff};
use crate::clock::Clock;
use crate::store::{Store, col};

/// Most bytes of one stored response (its object, input items and history as JSON); a larger
/// one is not stored (counted in `vaultgate_stored_responses_dropped_total`).
pub const MAX_STORED_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Most bytes of responses waiting for the writer; beyond, new ones are not stored.
const PENDING_MAX_BYTES: usize = 64 * 1024 * 1024;

/// One stored response. The JSON is kept as text: it is written as it is and parsed only when
/// read back.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The response id the client got.
    pub id: String,
    /// Who may read it: the virtual key's SHA-256, or `litellm_proxy_master_key`.
    pub owner: String,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// The response object.
    pub response: String,
    /// The request's input, as a list of items with ids.
    pub input_items: String,
    /// The items of the earlier turns (from `previous_response_id`), as a list.
    pub history: String,
}

impl StoredResponse {
    fn size(&self) -> usize {
        self.id.len()
            + self.owner.len()
            + self.response.len()
            + self.input_items.len()
            + self.history.len()
    }
}

/// Bodies are the caller's: not printed.
impl std::fmt::Debug for StoredResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredResponse")
            .field("id", &self.id)
            .field("created_ms", &self.created_ms)
            .field("bytes", &self.size())
            .finish_non_exhaustive()
    }
}

/// Responses queued but not yet written.
#[derive(Default)]
pub(crate) struct Pending {
    map: HashMap<String, Arc<StoredResponse>>,
    bytes: usize,
}

impl Pending {
    fn remove(&mut self, id: &str) {
        if let Some(gone) = self.map.remove(id) {
            self.bytes = self.bytes.saturating_sub(gone.size());
        }
    }
}

/// The request path's handle: keep, read, delete.
pub(crate) struct StoredResponses {
    pub queue: LogQueue<Arc<StoredResponse>>,
    pub pending: Arc<Mutex<Pending>>,
    pub retention: Duration,
}

impl StoredResponses {
    /// Queues a response for storing; never waits. `false` when it is not stored (too large,
    /// too many waiting, writer stopped), which is counted and logged at debug.
    pub fn keep(&self, response: StoredResponse) -> bool {
        let size = response.size();
        let dropped = |reason: &'static str| {
            metrics::counter!("vaultgate_stored_responses_dropped_total", "reason" => reason)
                .increment(1);
            tracing::debug!(reason, bytes = size, "a response was not stored");
            false
        };
        if size > MAX_STORED_RESPONSE_BYTES {
            return dropped("too_large");
        }
        let response = Arc::new(response);
        {
            let Ok(mut pending) = self.pending.lock() else {
                return dropped("stopped");
            };
            if pending.bytes + size > PENDING_MAX_BYTES {
                return dropped("backlog_full");
            }
            pending.bytes += size;
            pending
                .map
                .insert(response.id.clone(), Arc::clone(&response));
        }
        if self.queue.send(Arc::clone(&response)) {
            return true;
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&response.id);
        }
        false
    }

    /// The response with this id, unless it is older than the retention period or deleted.
    pub async fn get(
        &self,
        store: &Store,
        clock: &dyn Clock,
        id: &str,
    ) -> Result<Option<Arc<StoredResponse>>> {
        let cutoff = cutoff(clock, self.retention);
        if let Ok(pending) = self.pending.lock()
            && let Some(found) = pending.map.get(id)
        {
            return Ok((found.created_ms >= cutoff).then(|| Arc::clone(found)));
        }
        let row = sqlx::query(
            "SELECT id, owner, created_at, response, input_items, history \
             FROM stored_responses WHERE id = $1 AND created_at >= $2",
        )
        .bind(id.to_owned())
        .bind(cutoff)
        .fetch_optional(store.pool()?)
        .await
        .map_err(|e| store.fail(e))?;
        let Some(row) = store.ok(row) else {
            return Ok(None);
        };
        Ok(Some(Arc::new(StoredResponse {
            id: col(&row, "id")?,
            owner: col(&row, "owner")?,
            created_ms: col(&row, "created_at")?,
            response: col(&row, "response")?,
            input_items: col(&row, "input_items")?,
            history: col(&row, "history")?,
        })))
    }

    /// Deletes a response (after writing what is queued, so a response still on its way to
    /// the store cannot come back); whether there was one.
    pub async fn delete(&self, store: &Store, id: &str) -> Result<bool> {
        self.queue.flush().await?;
        let done = sqlx::query("DELETE FROM stored_responses WHERE id = $1")
            .bind(id.to_owned())
            .execute(store.pool()?)
            .await
            .map_err(|e| store.fail(e))?;
        let found_pending = match self.pending.lock() {
            Ok(mut pending) => {
                let had = pending.map.contains_key(id);
                pending.remove(id);
                had
            }
            Err(_) => false,
        };
        Ok(store.ok(done.rows_affected() > 0 || found_pending))
    }
}

/// Removes written responses from the pending map.
pub(crate) fn on_written(
    pending: Arc<Mutex<Pending>>,
) -> crate::batch::Written<Arc<StoredResponse>> {
    Box::new(move |rows: &[Arc<StoredResponse>]| {
        if let Ok(mut pending) = pending.lock() {
            for row in rows {
                pending.remove(&row.id);
            }
        }
    })
}

#[async_trait::async_trait]
impl Row for Arc<StoredResponse> {
    const WHAT: &'static str = "stored responses";
    const METRICS: &'static str = "vaultgate_stored_responses";

    async fn insert(store: &Store, rows: &[Self]) -> Result<()> {
        let mut tx = store.begin().await?;
        for row in rows {
            // An id written twice (a retried batch whose commit did land) stays the first.
            sqlx::query(
                "INSERT INTO stored_responses \
                 (id, owner, created_at, response, input_items, history) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            )
            .bind(row.id.clone())
            .bind(row.owner.clone())
            .bind(row.created_ms)
            .bind(row.response.clone())
            .bind(row.input_items.clone())
            .bind(row.history.clone())
            .execute(&mut *tx)
            .await
            .map_err(|e| store.fail(e))?;
        }
        tx.commit().await
    }

    async fn delete_before(store: &Store, cutoff_ms: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM stored_responses WHERE created_at < $1")
            .bind(cutoff_ms)
            .execute(store.pool()?)
            .await
            .map_err(|e| store.fail(e))?;
        Ok(store.ok(done.rows_affected()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::batch::{Bounds, LogWriter, purge};
    use crate::clock::ManualClock;
    use sqlx::Row as _;
    use tokio_util::sync::CancellationToken;
    use vaultgate_core::Error;

    async fn count(store: &Store) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM stored_responses")
            .fetch_one(store.pool()?)
            .await
            .map_err(|e| store.fail(e))?;
        row.try_get::<i64, _>("n")
            .map_err(|e| Error::Database(e.to_string()))
    }

    fn response(id: &str, created_ms: i64) -> StoredResponse {
        StoredResponse {
            id: id.into(),
            owner: "hash".into(),
            created_ms,
            response: format!(r#"{{"id":"{id}"}}"#),
            input_items: "[]".into(),
            history: "[]".into(),
        }
    }

    #[tokio::test]
    async fn kept_responses_are_read_before_and_after_the_write_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/r.db?mode=rwc", dir.path().display());
        let store = Store::open(&url, 1, Duration::from_secs(1)).await.unwrap();
        let clock = ManualClock::new(1_000_000_000);
        let bounds = Bounds {
            queue_max: 10,
            backlog_max: 10,
        };
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (writer, queue) = LogWriter::new(
            store.clone(),
            CancellationToken::new(),
            bounds,
            Duration::from_secs(3600),
            10,
            Duration::from_secs(1),
        );
        let writer = writer.on_written(on_written(Arc::clone(&pending)));
        let task = tokio::spawn(writer.run());
        let responses = StoredResponses {
            queue,
            pending,
            retention: Duration::from_secs(60),
        };
        assert!(responses.keep(response("a", clock.now_ms())));
        // Not written yet (the writer's tick is an hour away): read from memory.
        assert_eq!(count(&store).await.unwrap(), 0);
        let found = responses.get(&store, &clock, "a").await.unwrap().unwrap();
        assert_eq!(found.response, r#"{"id":"a"}"#);
        responses.queue.flush().await.unwrap();
        assert_eq!(count(&store).await.unwrap(), 1);
        assert!(responses.pending.lock().unwrap().map.is_empty());
        let found = responses.get(&store, &clock, "a").await.unwrap().unwrap();
        assert_eq!(*found, response("a", clock.now_ms()));
        assert!(responses.get(&store, &clock, "b").await.unwrap().is_none());
        // Too large: not kept.
        let mut big = response("big", clock.now_ms());
        big.history = "x".repeat(MAX_STORED_RESPONSE_BYTES);
        assert!(!responses.keep(big));
        // Past the retention period: not found, then purged.
        assert!(responses.keep(response("d", clock.now_ms())));
        clock.advance_ms(61_000);
        assert!(responses.get(&store, &clock, "a").await.unwrap().is_none());
        assert!(
            responses.get(&store, &clock, "d").await.unwrap().is_none(),
            "expired while waiting for the writer"
        );
        assert!(responses.keep(response("c", clock.now_ms())));
        responses.queue.flush().await.unwrap();
        let deleted = purge::<Arc<StoredResponse>>(&store, &clock, responses.retention)
            .await
            .unwrap();
        assert_eq!(deleted, 2);
        // Deleting one: gone from the store (a queued one is written first, then deleted).
        assert!(responses.delete(&store, "c").await.unwrap());
        assert!(!responses.delete(&store, "c").await.unwrap());
        assert!(responses.get(&store, &clock, "c").await.unwrap().is_none());
        assert!(responses.keep(response("e", clock.now_ms())));
        assert!(responses.delete(&store, "e").await.unwrap(), "still queued");
        assert!(responses.get(&store, &clock, "e").await.unwrap().is_none());
        assert_eq!(count(&store).await.unwrap(), 0, "and not written back");
        task.abort();
    }
}
