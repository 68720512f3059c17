//! The spend batch writer: usage is recorded in memory at once and written to the store by one
//! background task, in batches (one transaction per batch), so the request path never waits on a
//! database write. A failed batch stays queued and is retried; shutdown drains and flushes.
//!
//! Requests only queue their usage: the writer takes the queue at every tick, or when a caller
//! asks for a flush, so a request costs no wake-up of another task (with several worker threads,
//! a wake-up can mean waking a parked thread on another core).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use vaultgate_core::{Error, FastMap, Result};

use crate::live::LiveMap;
use crate::store::{Store, UsageSum};

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

pub(crate) enum SpendMsg {
    Usage {
        key_id: String,
        cost: f64,
        prompt_tokens: u64,
        completion_tokens: u64,
        at_ms: i64,
    },
    /// Budget period over: zero the stored spend (if the stored period is over too).
    Reset {
        key_id: String,
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
}

impl SpendWriter {
    /// The writer (to be run as a task with [`SpendWriter::run`]) and its queue.
    pub fn new(
        store: Store,
        live: Arc<LiveMap>,
        stop: CancellationToken,
        flush_interval: Duration,
        batch_max: usize,
    ) -> (Self, SpendQueue) {
        let (tx, rx) = mpsc::unbounded_channel();
        let flush_asked = Arc::new(Notify::new());
        let queue = SpendQueue {
            tx,
            flush_asked: flush_asked.clone(),
        };
        let writer = Self {
            store,
            live,
            rx,
            flush_asked,
            stop,
            flush_interval,
            batch_max: batch_max.max(1),
            segments: VecDeque::new(),
            queued_events: 0,
        };
        (writer, queue)
    }

    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let open = tokio::select! {
                biased;
                () = self.stop.cancelled() => false,
                () = self.flush_asked.notified() => self.take_queued().await,
                _ = tick.tick() => {
                    let open = self.take_queued().await;
                    let _ = self.flush().await;
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
            } => {
                if self.segments.back().is_none_or(|s| !s.resets.is_empty()) {
                    self.segments.push_back(Segment::default());
                }
                if let Some(segment) = self.segments.back_mut() {
                    let day = at_ms.div_euclid(DAY_MS);
                    let sum = segment.usage.entry((key_id, day)).or_default();
                    sum.cost += cost;
                    sum.prompt_tokens += i64::try_from(prompt_tokens).unwrap_or(i64::MAX);
                    sum.completion_tokens += i64::try_from(completion_tokens).unwrap_or(i64::MAX);
                    sum.requests += 1;
                }
                self.queued_events += 1;
                if self.queued_events >= self.batch_max {
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
            SpendMsg::Flush(reply) => {
                let result = self.flush().await;
                let _ = reply.send(result);
            }
        }
    }

    /// Writes queued segments in order; stops at the first failure (kept for the next try).
    async fn flush(&mut self) -> Result<()> {
        while let Some(segment) = self.segments.front() {
            let usage: Vec<(String, String, UsageSum)> = segment
                .usage
                .iter()
                .map(|((id, day), sum)| (id.clone(), day_text(*day), *sum))
                .collect();
            match self.store.apply_spend(&usage, &segment.resets).await {
                Ok(()) => {
                    metrics::counter!("vaultgate_spend_flush_total", "result" => "ok").increment(1);
                    for (key_id, _, sum) in &usage {
                        self.live.flushed(key_id, sum.cost);
                    }
                    self.segments.pop_front();
                }
                Err(e) => {
                    // Retried at the next tick, not at every new event meanwhile.
                    self.queued_events = 0;
                    metrics::counter!("vaultgate_spend_flush_total", "result" => "error")
                        .increment(1);
                    tracing::warn!(error = %e, "spend batch not written; will retry");
                    return Err(e);
                }
            }
        }
        self.queued_events = 0;
        Ok(())
    }

    async fn final_flush(&mut self) {
        for attempt in 0..5u32 {
            if self.flush().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
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
    use super::*;

    #[test]
    fn usage_is_logged_on_its_utc_day() {
        assert_eq!(day_text(0), "1970-01-01");
        // 2026-11-18 23:59:59.999 UTC and one millisecond later.
        let last_ms: i64 = 1_795_046_399_999;
        assert_eq!(day_text(last_ms.div_euclid(DAY_MS)), "2026-11-18");
        assert_eq!(day_text((last_ms + 1).div_euclid(DAY_MS)), "2026-11-19");
    }
}
