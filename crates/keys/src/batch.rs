//! A write-behind batch writer: a bounded queue the request path fills without waiting, drained
//! by one task that writes the rows in batches (one transaction each). A failed batch stays in
//! memory and is retried with backoff; while the database is down the memory is bounded too:
//! once `backlog_max` rows wait the writer stops taking from the queue, the queue fills, and
//! further rows are dropped and counted (`<metrics>_dropped_total`). Spend logs and stored
//! Responses use it; what is written, and where, is the row type's [`Row`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vaultgate_core::{Error, Result};

use crate::clock::Clock;
use crate::store::Store;

/// Longest wait between two attempts of a failing write.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long a flush waits for room in the queue and for the writer's answer.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// A kind of row the batch writer writes.
#[async_trait::async_trait]
pub(crate) trait Row: Send + Sync + Sized + 'static {
    /// What the rows are, for log lines ("spend-log rows").
    const WHAT: &'static str;
    /// The prefix of the writer's metrics (`vaultgate_spend_logs`).
    const METRICS: &'static str;
    /// Writes one batch (in one transaction).
    async fn insert(store: &Store, rows: &[Self]) -> Result<()>;
    /// Deletes the rows older than `cutoff_ms`; how many.
    async fn delete_before(store: &Store, cutoff_ms: i64) -> Result<u64>;
}

/// Called with each batch once it is in the store.
pub(crate) type Written<R> = Box<dyn Fn(&[R]) + Send + Sync>;

fn metric<R: Row>(name: &str) -> String {
    format!("{}_{name}", R::METRICS)
}

enum LogMsg<R> {
    Row(Box<R>),
    /// Write everything queued before this message; answer with the outcome.
    Flush(oneshot::Sender<Result<()>>),
}

/// The requests' side: queue a row (never waits), ask for a flush. Cheap to clone.
pub(crate) struct LogQueue<R> {
    tx: Option<mpsc::Sender<LogMsg<R>>>,
    /// Whether a full queue was already reported (logged once per outage, counted always).
    warned: Arc<AtomicBool>,
}

impl<R> Clone for LogQueue<R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            warned: Arc::clone(&self.warned),
        }
    }
}

impl<R: Row> LogQueue<R> {
    /// A queue that takes nothing (`disable_spend_logs`, no storage).
    pub fn disabled() -> Self {
        Self {
            tx: None,
            warned: Arc::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn send(&self, row: R) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        match tx.try_send(LogMsg::Row(Box::new(row))) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!(metric::<R>("dropped_total"), "reason" => "queue_full")
                    .increment(1);
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        "{} queue full (the database does not keep up or is down): rows are \
                         dropped and counted in {}",
                        R::WHAT,
                        metric::<R>("dropped_total")
                    );
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                metrics::counter!(metric::<R>("dropped_total"), "reason" => "stopped").increment(1);
                false
            }
        }
    }

    /// Writes every row queued so far and says whether they reached the store.
    pub async fn flush(&self) -> Result<()> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        let stopped = || Error::Unavailable(format!("the writer of {} has stopped", R::WHAT));
        let (reply, answer) = oneshot::channel();
        tokio::time::timeout(FLUSH_TIMEOUT, async {
            tx.send(LogMsg::Flush(reply)).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        })
        .await
        .map_err(|_| {
            Error::Unavailable(format!("the writer of {} did not answer in time", R::WHAT))
        })?
    }
}

pub(crate) struct LogWriter<R> {
    store: Store,
    rx: mpsc::Receiver<LogMsg<R>>,
    stop: CancellationToken,
    flush_interval: Duration,
    batch_max: usize,
    backlog: Vec<R>,
    backlog_max: usize,
    shutdown_timeout: Duration,
    retry_at: Option<Instant>,
    backoff: Duration,
    warned: Weak<AtomicBool>,
    written: Option<Written<R>>,
}

/// Bounds of a writer's memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Rows waiting for the writer; beyond, new rows are dropped and counted.
    pub queue_max: usize,
    /// Rows kept in memory while writes fail.
    pub backlog_max: usize,
}

impl<R: Row> LogWriter<R> {
    /// The writer (run it with [`LogWriter::run`]) and its queue.
    pub fn new(
        store: Store,
        stop: CancellationToken,
        bounds: Bounds,
        flush_interval: Duration,
        batch_max: usize,
        shutdown_timeout: Duration,
    ) -> (Self, LogQueue<R>) {
        let (tx, rx) = mpsc::channel(bounds.queue_max.max(1));
        let warned = Arc::new(AtomicBool::new(false));
        let writer = Self {
            store,
            rx,
            stop,
            flush_interval,
            batch_max: batch_max.max(1),
            backlog: Vec::new(),
            backlog_max: bounds.backlog_max.max(1),
            shutdown_timeout,
            retry_at: None,
            backoff: flush_interval,
            warned: Arc::downgrade(&warned),
            written: None,
        };
        let queue = LogQueue {
            tx: Some(tx),
            warned,
        };
        (writer, queue)
    }

    /// Calls `written` with each batch once it is stored.
    pub fn on_written(mut self, written: Written<R>) -> Self {
        self.written = Some(written);
        self
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
                "{} not written at shutdown: the database is unavailable",
                R::WHAT
            );
        }
    }

    /// Writes the backlog in batches; stops at the first failure (kept for the next try).
    async fn write(&mut self) -> Result<()> {
        while !self.backlog.is_empty() {
            let n = self.backlog.len().min(self.batch_max);
            match R::insert(&self.store, &self.backlog[..n]).await {
                Ok(()) => {
                    if let Some(written) = &self.written {
                        written(&self.backlog[..n]);
                    }
                    self.backlog.drain(..n);
                    metrics::counter!(metric::<R>("written_total")).increment(n as u64);
                }
                Err(e) => {
                    metrics::counter!(metric::<R>("flush_errors_total")).increment(1);
                    self.backoff = if self.retry_at.is_some() {
                        (self.backoff * 2).min(RETRY_MAX)
                    } else {
                        self.flush_interval
                    };
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.publish();
                    tracing::warn!(error = %e, rows = self.backlog.len(),
                        "a batch of {} not written; kept in memory and retried", R::WHAT);
                    return Err(e);
                }
            }
        }
        if self.retry_at.take().is_some() {
            tracing::info!("{} written again after write failures", R::WHAT);
            if let Some(warned) = self.warned.upgrade() {
                warned.store(false, Ordering::Relaxed);
            }
        }
        self.publish();
        Ok(())
    }

    fn publish(&self) {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(metric::<R>("backlog")).set(self.backlog.len() as f64);
    }
}

/// Deletes rows older than the retention period every interval until the service stops.
pub(crate) async fn retention<R: Row>(
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
        match purge::<R>(&store, clock.as_ref(), period).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "old {} deleted", R::WHAT),
            Err(e) => tracing::warn!(error = %e, "deleting old {} failed; retried later", R::WHAT),
        }
    }
}

/// One retention pass: deletes rows made before `now - period`.
pub(crate) async fn purge<R: Row>(
    store: &Store,
    clock: &dyn Clock,
    period: Duration,
) -> Result<u64> {
    let deleted = R::delete_before(store, cutoff(clock, period)).await?;
    metrics::counter!(metric::<R>("deleted_total")).increment(deleted);
    Ok(deleted)
}

/// The oldest time (unix ms) a row kept for `period` may have.
pub(crate) fn cutoff(clock: &dyn Clock, period: Duration) -> i64 {
    let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX);
    clock.now_ms().saturating_sub(period_ms)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::spend_logs::SpendLogRow;

    #[tokio::test]
    async fn a_full_queue_drops_without_waiting_and_a_failed_batch_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/logs.db?mode=rwc", dir.path().display());
        let store = Store::open(&url, 1, Duration::from_secs(1)).await.unwrap();
        let bounds = Bounds {
            queue_max: 2,
            backlog_max: 10,
        };
        let (mut writer, queue) = LogWriter::<SpendLogRow>::new(
            store.clone(),
            CancellationToken::new(),
            bounds,
            Duration::from_secs(1),
            10,
            Duration::from_secs(1),
        );
        // Nobody drains the queue: the third row is dropped at once, not waited for.
        for _ in 0..3 {
            let _ = queue.send(SpendLogRow::default());
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
        assert!(!LogQueue::<SpendLogRow>::disabled().enabled());
    }
}
