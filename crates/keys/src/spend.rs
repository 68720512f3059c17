//! The spend batch writer: usage is recorded in memory at once and written to the store by one
//! background task, in batches (one transaction per batch), so the request path never waits on a
//! database write. A failed batch stays queued in memory and is retried with backoff (while
//! failing, the backlog is bounded: usage of a key-day not yet queued is dropped, and counted,
//! once `spend_backlog_max` key-days are waiting); [`SpendStatus`] reports it for readiness.
//! Shutdown drains and flushes within `spend_shutdown_timeout`.
//!
//! Requests only queue their usage: the writer takes the queue at every tick, or when a caller
//! asks for a flush, so a request costs no wake-up of another task (with several worker threads,
//! a wake-up can mean waking a parked thread on another core).

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vaultgate_core::{Error, FastMap, Result};

use crate::cluster::{Announcer, Change};
use crate::live::{Live, LiveMap};
use crate::model::format_ms;
use crate::options::KeyServiceOptions;
use crate::principals::directory::Scope;
use crate::store::{Store, UsageSum};

/// Longest wait between two attempts of a failing write.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Spend recorded but not yet in the store (readiness, `/health/readiness` → `db.spend`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpendStatus {
    /// USD recorded on this instance and not yet written.
    pub unsaved_usd: f64,
    /// Key-days waiting (the backlog's size, bounded by `spend_backlog_max`).
    pub unsaved_entries: usize,
    /// Since when writes fail (RFC 3339), while they do.
    pub failing_since: Option<String>,
    pub last_error: Option<String>,
    /// Usage dropped because the backlog was full while writes failed.
    pub dropped_usd: f64,
    pub dropped_events: u64,
}

/// The objects besides the key that one request's spend goes to, with their live state (`None`
/// for an end user without limits). A fixed array: recording usage allocates nothing for it.
pub(crate) type UsageScopes = [Option<(Scope, Option<Arc<Live>>)>; 5];

/// The requests' side of the writer: queue usage and resets, ask for a flush. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SpendQueue {
    tx: mpsc::UnboundedSender<SpendMsg>,
    flush_asked: Arc<Notify>,
}

impl SpendQueue {
    /// Queues a message for the writer's next tick (never waits).
    pub fn send(&self, msg: SpendMsg) {
        if self.tx.send(msg).is_err() {
            metrics::counter!("vaultgate_spend_dropped_total").increment(1);
            tracing::warn!("spend writer stopped; usage kept in memory only");
        }
    }

    /// Writes everything queued so far and says whether it reached the store.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(SpendMsg::Flush(tx)).is_err() {
            return Err(Error::Unavailable("the spend writer has stopped".into()));
        }
        self.flush_asked.notify_one();
        rx.await
            .map_err(|_| Error::Unavailable("the spend writer has stopped".into()))?
    }
}

// `Usage` carries its objects inline: boxing them would allocate on every request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum SpendMsg {
    Usage {
        key_id: String,
        cost: f64,
        prompt_tokens: u64,
        completion_tokens: u64,
        at_ms: i64,
        scopes: UsageScopes,
    },
    /// Budget period over: zero the stored spend (if the stored period is over too).
    Reset {
        key_id: String,
        now_ms: i64,
        next_reset_ms: i64,
    },
    /// The same for a team, user, member, organization or end user.
    ScopeReset {
        scope: Scope,
        now_ms: i64,
        next_reset_ms: i64,
    },
    /// Write everything queued before this message; answer with the outcome.
    Flush(oneshot::Sender<Result<()>>),
}

/// Usage and resets in arrival order: a reset closes a segment, so usage before it is written
/// before it and usage after it is not wiped by it.
#[derive(Default)]
struct Segment {
    /// Keyed by key id and UTC day number; the day is written out as text only at a flush.
    usage: FastMap<(String, i64), UsageSum>,
    resets: Vec<(String, i64, i64)>,
    /// Spend of the objects besides keys, and their resets.
    scope_usage: FastMap<Scope, (f64, Option<Arc<Live>>)>,
    scope_resets: Vec<(Scope, i64, i64)>,
}

impl Segment {
    fn closed(&self) -> bool {
        !self.resets.is_empty() || !self.scope_resets.is_empty()
    }
}

pub(crate) struct SpendWriter {
    store: Store,
    live: Arc<LiveMap>,
    rx: mpsc::UnboundedReceiver<SpendMsg>,
    /// Notified after a `Flush` message is queued.
    flush_asked: Arc<Notify>,
    stop: CancellationToken,
    flush_interval: Duration,
    batch_max: usize,
    segments: VecDeque<Segment>,
    queued_events: usize,
    /// Key-days over all segments, bounded by `backlog_max`.
    entries: usize,
    backlog_max: usize,
    shutdown_timeout: Duration,
    /// While writes fail: when to try again, and the wait after that.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The store's recoveries at the last failure: once the database is reached again (by any
    /// call), the backlog is written at the next tick instead of after the backoff.
    recoveries_at_failure: u64,
    failing_since_ms: Option<i64>,
    status: Arc<Mutex<SpendStatus>>,
    clock: Arc<dyn crate::clock::Clock>,
    /// Tells the other instances whose spend was written.
    announcer: Announcer,
}

impl SpendWriter {
    /// The writer (to be run as a task with [`SpendWriter::run`]), its queue and its status.
    pub fn new(
        store: Store,
        live: Arc<LiveMap>,
        stop: CancellationToken,
        options: &KeyServiceOptions,
        announcer: Announcer,
    ) -> (Self, SpendQueue, Arc<Mutex<SpendStatus>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let flush_asked = Arc::new(Notify::new());
        let queue = SpendQueue {
            tx,
            flush_asked: flush_asked.clone(),
        };
        let status = Arc::new(Mutex::new(SpendStatus::default()));
        let writer = Self {
            store,
            live,
            rx,
            flush_asked,
            stop,
            flush_interval: options.spend_flush_interval,
            batch_max: options.spend_batch_max.max(1),
            segments: VecDeque::new(),
            queued_events: 0,
            entries: 0,
            backlog_max: options.spend_backlog_max.max(1),
            shutdown_timeout: options.spend_shutdown_timeout,
            retry_at: None,
            backoff: options.spend_flush_interval,
            recoveries_at_failure: 0,
            failing_since_ms: None,
            status: status.clone(),
            clock: options.clock.clone(),
            announcer,
        };
        (writer, queue, status)
    }

    /// Whether a write may be tried now: not while waiting out a failure's backoff, unless the
    /// database was reached again since.
    fn may_write(&self) -> bool {
        self.retry_at.is_none_or(|at| Instant::now() >= at)
            || self.store.recoveries() != self.recoveries_at_failure
    }

    pub async fn run(mut self) {
        // The first tick one interval after the start (there is nothing to write before).
        let mut tick =
            tokio::time::interval_at(Instant::now() + self.flush_interval, self.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let open = tokio::select! {
                biased;
                () = self.stop.cancelled() => false,
                () = self.flush_asked.notified() => self.take_queued().await,
                _ = tick.tick() => {
                    let mut open = self.take_queued().await;
                    if self.may_write() {
                        let _ = self.flush().await;
                        // What arrived while the write waited counts as unsaved too.
                        open &= self.take_queued().await;
                    }
                    self.publish();
                    open
                }
            };
            if !open {
                self.take_queued().await;
                self.final_flush().await;
                return;
            }
        }
    }

    /// Handles every queued message; false once every sender is gone.
    async fn take_queued(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(msg) => self.handle(msg).await,
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
    }

    async fn handle(&mut self, msg: SpendMsg) {
        match msg {
            SpendMsg::Usage {
                key_id,
                cost,
                prompt_tokens,
                completion_tokens,
                at_ms,
                scopes,
            } => {
                if self.segments.back().is_none_or(Segment::closed) {
                    self.segments.push_back(Segment::default());
                }
                let Some(segment) = self.segments.back_mut() else {
                    return;
                };
                let day = at_ms.div_euclid(DAY_MS);
                let sum = match segment.usage.entry((key_id, day)) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(_) if self.entries >= self.backlog_max => {
                        self.drop_usage(cost);
                        return;
                    }
                    Entry::Vacant(entry) => {
                        self.entries += 1;
                        entry.insert(UsageSum::default())
                    }
                };
                sum.cost += cost;
                sum.prompt_tokens += i64::try_from(prompt_tokens).unwrap_or(i64::MAX);
                sum.completion_tokens += i64::try_from(completion_tokens).unwrap_or(i64::MAX);
                sum.requests += 1;
                for (scope, live) in scopes.into_iter().flatten() {
                    let entry = segment.scope_usage.entry(scope).or_insert((0.0, live));
                    entry.0 += cost;
                }
                self.queued_events += 1;
                if self.queued_events >= self.batch_max && self.may_write() {
                    let _ = self.flush().await;
                }
            }
            SpendMsg::Reset {
                key_id,
                now_ms,
                next_reset_ms,
            } => {
                if self.segments.is_empty() {
                    self.segments.push_back(Segment::default());
                }
                if let Some(segment) = self.segments.back_mut() {
                    segment.resets.push((key_id, now_ms, next_reset_ms));
                }
            }
            SpendMsg::ScopeReset {
                scope,
                now_ms,
                next_reset_ms,
            } => {
                if self.segments.is_empty() {
                    self.segments.push_back(Segment::default());
                }
                if let Some(segment) = self.segments.back_mut() {
                    segment.scope_resets.push((scope, now_ms, next_reset_ms));
                }
            }
            SpendMsg::Flush(reply) => {
                let result = self.flush().await;
                self.publish();
                let _ = reply.send(result);
            }
        }
    }

    /// Writes queued segments in order; stops at the first failure (kept for the next try).
    async fn flush(&mut self) -> Result<()> {
        while let Some(segment) = self.segments.front() {
            // Rows in one order on every instance: two batches updating the same rows in
            // different orders would deadlock each other.
            let mut usage: Vec<(String, String, UsageSum)> = segment
                .usage
                .iter()
                .map(|((id, day), sum)| (id.clone(), day_text(*day), *sum))
                .collect();
            usage.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            let mut scopes: Vec<(&Scope, f64)> = segment
                .scope_usage
                .iter()
                .map(|(scope, (cost, _))| (scope, *cost))
                .collect();
            scopes.sort_by(|a, b| a.0.cmp(b.0));
            let scope_batch = (scopes.as_slice(), segment.scope_resets.as_slice());
            // Until the live figures no longer count what this writes (below), reads of stored
            // spend cannot tell whether they hold it.
            let _flushing = self.live.flushes.begin();
            match self
                .store
                .apply_spend(&usage, &segment.resets, scope_batch)
                .await
            {
                Ok(()) => {
                    metrics::counter!("vaultgate_spend_flush_total", "result" => "ok").increment(1);
                    for (key_id, _, sum) in &usage {
                        self.live.flushed(key_id, sum.cost);
                    }
                    self.entries = self.entries.saturating_sub(usage.len());
                    for (cost, live) in segment.scope_usage.values() {
                        if let Some(live) = live {
                            live.flushed(*cost);
                        }
                    }
                    // Spent and reset keys and objects: the others re-read them.
                    let mut keys: Vec<String> = usage.into_iter().map(|(id, _, _)| id).collect();
                    keys.extend(segment.resets.iter().map(|(id, _, _)| id.clone()));
                    keys.sort();
                    keys.dedup();
                    let mut scopes: Vec<Scope> =
                        scopes.into_iter().map(|(scope, _)| scope.clone()).collect();
                    scopes.extend(segment.scope_resets.iter().map(|(s, _, _)| s.clone()));
                    scopes.sort();
                    scopes.dedup();
                    self.announcer.send(Change::Spend(keys, scopes));
                    self.segments.pop_front();
                }
                Err(e) => {
                    self.queued_events = 0;
                    metrics::counter!("vaultgate_spend_flush_total", "result" => "error")
                        .increment(1);
                    self.backoff = if self.retry_at.is_some() {
                        (self.backoff * 2).min(RETRY_MAX)
                    } else {
                        self.flush_interval
                    };
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.recoveries_at_failure = self.store.recoveries();
                    if self.failing_since_ms.is_none() {
                        self.failing_since_ms = Some(self.clock.now_ms());
                    }
                    if let Ok(mut status) = self.status.lock() {
                        status.last_error = Some(e.to_string());
                    }
                    tracing::warn!(
                        error = %e,
                        retry_in_ms = u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX),
                        "spend batch not written; kept in memory and retried"
                    );
                    return Err(e);
                }
            }
        }
        self.queued_events = 0;
        if self.failing_since_ms.take().is_some() {
            tracing::info!("spend written again after write failures");
        }
        self.retry_at = None;
        Ok(())
    }

    /// Usage that found the backlog full while writes fail.
    fn drop_usage(&mut self, cost: f64) {
        metrics::counter!("vaultgate_spend_dropped_total").increment(1);
        metrics::gauge!("vaultgate_spend_dropped_usd_total").increment(cost);
        if let Ok(mut status) = self.status.lock() {
            if status.dropped_events == 0 {
                tracing::error!(
                    backlog_max = self.backlog_max,
                    "spend backlog full while the database fails: usage of further keys is dropped"
                );
            }
            status.dropped_events += 1;
            status.dropped_usd += cost;
        }
    }

    /// Publishes the backlog for readiness and metrics.
    fn publish(&self) {
        let unsaved: f64 = self
            .segments
            .iter()
            .flat_map(|s| s.usage.values())
            .map(|u| u.cost)
            .sum();
        #[allow(clippy::cast_precision_loss)]
        let entries = self.entries as f64;
        metrics::gauge!("vaultgate_spend_unsaved_usd").set(unsaved);
        metrics::gauge!("vaultgate_spend_unsaved_entries").set(entries);
        if let Ok(mut status) = self.status.lock() {
            status.unsaved_usd = unsaved;
            status.unsaved_entries = self.entries;
            status.failing_since = self.failing_since_ms.map(format_ms);
            if self.failing_since_ms.is_none() {
                status.last_error = None;
            }
        }
    }

    /// Writes what is left, trying until `shutdown_timeout` is over.
    async fn final_flush(&mut self) {
        let deadline = Instant::now() + self.shutdown_timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.flush()).await {
                Ok(Ok(())) => return,
                Ok(Err(_)) => {
                    let pause = self.backoff.min(Duration::from_millis(500));
                    if Instant::now() + pause >= deadline {
                        break;
                    }
                    tokio::time::sleep(pause).await;
                }
                Err(_) => break,
            }
        }
        let lost: f64 = self
            .segments
            .iter()
            .flat_map(|s| s.usage.values())
            .map(|u| u.cost)
            .sum();
        tracing::error!(
            unwritten_usd = lost,
            "spend not written at shutdown: the database is unavailable"
        );
    }
}

const DAY_MS: i64 = 86_400_000;

/// UTC day `YYYY-MM-DD` of a day number (days since the unix epoch).
fn day_text(day: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(day.saturating_mul(86_400))
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| "1970-01-01".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn usage(key_id: &str, cost: f64) -> SpendMsg {
        SpendMsg::Usage {
            key_id: key_id.into(),
            cost,
            prompt_tokens: 1,
            completion_tokens: 1,
            at_ms: 0,
            scopes: Default::default(),
        }
    }

    /// A read of stored spend taken before a flush is not exact after it (the reconcile would
    /// lose or double it), and the writer leaves no flush open, written or failed.
    #[tokio::test]
    async fn every_flush_is_bracketed_for_readers_of_stored_spend() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/spend.db?mode=rwc", dir.path().display());
        let store = Store::open(&url, 1, Duration::from_secs(1)).await.unwrap();
        let live = Arc::new(LiveMap::default());
        let (mut writer, _queue, _status) = SpendWriter::new(
            store.clone(),
            live.clone(),
            CancellationToken::new(),
            &KeyServiceOptions::new(&url),
            Announcer::default(),
        );
        let before = live.flushes.mark();
        writer.handle(usage("a", 1.0)).await;
        writer.flush().await.unwrap();
        assert!(!before.exact(), "a written flush went unnoticed");
        assert!(live.flushes.mark().exact(), "a written flush was left open");

        let before = live.flushes.mark();
        store.close().await;
        writer.handle(usage("a", 1.0)).await;
        assert!(writer.flush().await.is_err());
        assert!(!before.exact(), "a failed flush went unnoticed");
        assert!(live.flushes.mark().exact(), "a failed flush was left open");
    }

    #[tokio::test]
    async fn a_failing_store_keeps_a_bounded_backlog_and_counts_what_it_drops() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/spend.db?mode=rwc", dir.path().display());
        let store = Store::open(&url, 1, Duration::from_secs(1)).await.unwrap();
        let mut options = KeyServiceOptions::new(&url);
        options.spend_backlog_max = 2;
        let live = Arc::new(LiveMap::default());
        let (mut writer, _queue, status) = SpendWriter::new(
            store.clone(),
            live,
            CancellationToken::new(),
            &options,
            Announcer::default(),
        );
        store.close().await; // every write fails from now on
        for key in ["a", "b", "c", "a"] {
            writer.handle(usage(key, 1.0)).await;
        }
        assert!(writer.flush().await.is_err());
        assert!(
            !writer.may_write(),
            "a failed write is retried after a backoff"
        );
        writer.publish();
        let status = status.lock().unwrap().clone();
        assert_eq!(status.unsaved_entries, 2);
        assert!((status.unsaved_usd - 3.0).abs() < 1e-9, "{status:?}");
        assert_eq!(status.dropped_events, 1);
        assert!((status.dropped_usd - 1.0).abs() < 1e-9);
        assert!(status.failing_since.is_some() && status.last_error.is_some());
    }

    #[test]
    fn usage_is_logged_on_its_utc_day() {
        assert_eq!(day_text(0), "1970-01-01");
        // 2026-11-18 23:59:59.999 UTC and one millisecond later.
        let last_ms: i64 = 1_795_046_399_999;
        assert_eq!(day_text(last_ms.div_euclid(DAY_MS)), "2026-11-18");
        assert_eq!(day_text((last_ms + 1).div_euclid(DAY_MS)), "2026-11-19");
    }
}
