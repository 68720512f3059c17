//! The spend-log writer: a bounded queue the request path fills without waiting, drained by one
//! task that writes the rows in batches (one transaction each). A failed batch stays in memory
//! and is retried with backoff; while the database is down the memory is bounded too: once
//! `backlog_max` rows wait the writer stops taking from the queue, the queue fills, and further
//! rows are dropped and counted (`vaultgate_spend_logs_dropped_total`). Spend totals do not
//! depend on these rows (the spend writer keeps them), so a dropped row loses detail only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vaultgate_core::{Error, Result};

use super::{SpendLogOptions, SpendLogRow};
use crate::clock::Clock;
use crate::store::Store;

/// Longest wait between two attempts of a failing write.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long a flush waits for room in the queue and for the writer's answer.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

enum LogMsg {
    Row(Box<SpendLogRow>),
    /// Write everything queued before this message; answer with the outcome.
    Flush(oneshot::Sender<Result<()>>),
}

/// The requests' side: queue a row (never waits), ask for a flush. Cheap to clone.
#[derive(Clone)]
pub(crate) struct LogQueue {
    tx: Option<mpsc::Sender<LogMsg>>,
    /// Whether a full queue was already reported (logged once per outage, counted always).
    warned: Arc<AtomicBool>,
}

impl LogQueue {
    /// A queue that takes nothing (`disable_spend_logs`).
    pub fn disabled() -> Self {
        Self {
            tx: None,
            warned: Arc::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn send(&self, row: SpendLogRow) {
        let Some(tx) = &self.tx else {
            return;
        };
        match tx.try_send(LogMsg::Row(Box::new(row))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("vaultgate_spend_logs_dropped_total", "reason" => "queue_full")
                    .increment(1);
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        "spend-log queue full (the database does not keep up or is down): \
                         request rows are dropped and counted in vaultgate_spend_logs_dropped_total"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                metrics::counter!("vaultgate_spend_logs_dropped_total", "reason" => "stopped")
                    .increment(1);
            }
        }
    }

    /// Writes every row queued so far and says whether they reached the store.
    pub async fn flush(&self) -> Result<()> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        let stopped = || Error::Unavailable("the spend-log writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        tokio::time::timeout(FLUSH_TIMEOUT, async {
            tx.send(LogMsg::Flush(reply)).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        })
        .await
        .map_err(|_| Error::Unavailable("the spend-log writer did not answer in time".into()))?
    }
}

pub(crate) struct LogWriter {
    store: Store,
    rx: mpsc::Receiver<LogMsg>,
    stop: CancellationToken,
    flush_interval: Duration,
    batch_max: usize,
    backlog: Vec<SpendLogRow>,
    backlog_max: usize,
    shutdown_timeout: Duration,
    retry_at: Option<Instant>,
    backoff: Duration,
    warned: Weak<AtomicBool>,
}

impl LogWriter {
    /// The writer (run it with [`LogWriter::run`]) and its queue; `None` when logs are off.
    pub fn new(
        store: Store,
        stop: CancellationToken,
        options: &SpendLogOptions,
        flush_interval: Duration,
        batch_max: usize,
        shutdown_timeout: Duration,
    ) -> (Option<Self>, LogQueue) {
        if !options.enabled {
            return (None, LogQueue::disabled());
        }
        let (tx, rx) = mpsc::channel(options.queue_max.max(1));
        let warned = Arc::new(AtomicBool::new(false));
        let writer = Self {
            store,
            rx,
            stop,
            flush_interval,
            batch_max: batch_max.max(1),
            backlog: Vec::new(),
            backlog_max: options.backlog_max.max(1),
            shutdown_timeout,
            retry_at: None,
            backoff: flush_interval,
            warned: Arc::downgrade(&warned),
        };
        let queue = LogQueue {
            tx: Some(tx),
            warned,
        };
        (Some(writer), queue)
    }

    fn may_write(&self) -> bool {
        self.retry_at.is_none_or(|at| Instant::now() >= at)
    }

    pub async fn run(mut self) {
        let mut tick =
            tokio::time::interval_at(Instant::now() + self.flush_interval, self.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let room = self.backlog.len() < self.backlog_max;
            tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                _ = tick.tick() => {
                    if self.may_write() {
                        let _ = self.write().await;
                    }
                }
                msg = self.rx.recv(), if room => match msg {
                    None => break,
                    Some(LogMsg::Row(row)) => {
                        self.backlog.push(*row);
                        if self.backlog.len() >= self.batch_max && self.may_write() {
                            let _ = self.write().await;
                        }
                    }
                    Some(LogMsg::Flush(reply)) => {
                        let _ = reply.send(self.write().await);
                    }
                },
            }
        }
        while self.backlog.len() < self.backlog_max {
            match self.rx.try_recv() {
                Ok(LogMsg::Row(row)) => self.backlog.push(*row),
                Ok(LogMsg::Flush(reply)) => drop(reply),
                Err(_) => break,
            }
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        while !self.backlog.is_empty() && Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, self.write()).await {
                Ok(Ok(())) => return,
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(_) => break,
            }
        }
        if !self.backlog.is_empty() {
            tracing::error!(
                rows = self.backlog.len(),
                "spend-log rows not written at shutdown: the database is unavailable"
            );
        }
    }

    /// Writes the backlog in batches; stops at the first failure (kept for the next try).
    async fn write(&mut self) -> Result<()> {
        while !self.backlog.is_empty() {
            let n = self.backlog.len().min(self.batch_max);
            match self.store.insert_request_logs(&self.backlog[..n]).await {
                Ok(()) => {
                    self.backlog.drain(..n);
                    metrics::counter!("vaultgate_spend_logs_written_total").increment(n as u64);
                }
                Err(e) => {
                    metrics::counter!("vaultgate_spend_logs_flush_errors_total").increment(1);
                    self.backoff = if self.retry_at.is_some() {
                        (self.backoff * 2).min(RETRY_MAX)
                    } else {
                        self.flush_interval
                    };
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.publish();
                    tracing::warn!(error = %e, rows = self.backlog.len(),
                        "spend-log batch not written; kept in memory and retried");
                    return Err(e);
                }
            }
        }
        if self.retry_at.take().is_some() {
            tracing::info!("spend logs written again after write failures");
            if let Some(warned) = self.warned.upgrade() {
                warned.store(false, Ordering::Relaxed);
            }
        }
        self.publish();
        Ok(())
    }

    fn publish(&self) {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("vaultgate_spend_logs_backlog").set(self.backlog.len() as f64);
    }
}

/// Deletes rows older than the retention period every interval until the service stops.
pub(crate) async fn retention(
    store: Store,
    clock: Arc<dyn Clock>,
    period: Duration,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match purge(&store, clock.as_ref(), period).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "old spend logs deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting old spend logs failed; retried later"),
        }
    }
}

/// One retention pass: deletes rows that started before `now - period`.
pub(crate) async fn purge(store: &Store, clock: &dyn Clock, period: Duration) -> Result<u64> {
    let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX);
    let cutoff = clock.now_ms().saturating_sub(period_ms);
    let deleted = store.delete_request_logs_before(cutoff).await?;
    metrics::counter!("vaultgate_spend_logs_deleted_total").increment(deleted);
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_without_waiting_and_a_failed_batch_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/logs.db?mode=rwc", dir.path().display());
        let store = Store::open(&url, 1, Duration::from_secs(1)).await.unwrap();
        let options = SpendLogOptions {
            queue_max: 2,
            ..SpendLogOptions::default()
        };
        let (writer, queue) = LogWriter::new(
            store.clone(),
            CancellationToken::new(),
            &options,
            Duration::from_secs(1),
            10,
            Duration::from_secs(1),
        );
        let mut writer = writer.unwrap();
        // Nobody drains the queue: the third row is dropped at once, not waited for.
        for _ in 0..3 {
            queue.send(SpendLogRow::default());
        }
        assert!(queue.warned.load(Ordering::Relaxed), "the drop is reported");
        while let Ok(LogMsg::Row(row)) = writer.rx.try_recv() {
            writer.backlog.push(*row);
        }
        assert_eq!(writer.backlog.len(), 2);
        store.close().await; // every write fails from now on
        assert!(writer.write().await.is_err());
        assert_eq!(
            writer.backlog.len(),
            2,
            "a failed batch stays for the next try"
        );
        assert!(!writer.may_write(), "and is retried after a backoff");
        assert!(!LogQueue::disabled().enabled());
    }
}
