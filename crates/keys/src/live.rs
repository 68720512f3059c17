//! Live per-key state in memory: spend as this instance knows it, in-flight requests and the
//! object's rate-limit counters (a [`QuotaScope`]: here, or shared through Redis). Read and
//! written by the request path (limits), the spend writer and the management API; never waits
//! on the store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vaultgate_core::FastMap;
use vaultgate_quota::{Scope as QuotaScope, ScopeKind};

use crate::model::KeyRecord;

/// Live per-key state, keyed by the stable `key_id` (survives regenerate and cache reloads).
#[derive(Default)]
pub(crate) struct LiveMap {
    map: Mutex<FastMap<String, Arc<Live>>>,
    /// The spend writer's flushes, shared with the directory.
    pub flushes: Arc<FlushSeq>,
}

/// Counts the spend writer's flushes, odd while one is being written. A stored spend read while
/// it moved may or may not hold what that flush wrote, which `unflushed` may or may not still
/// count: such a read can neither lower nor raise the live figure (it could lose or double a
/// flush). A sequence lock, read side only.
#[derive(Default)]
pub(crate) struct FlushSeq(AtomicU64);

/// Taken before reading stored spend, to tell afterwards whether a flush overlapped the read.
#[derive(Clone, Copy)]
pub(crate) struct ReadMark<'a> {
    flushes: &'a FlushSeq,
    at: u64,
}

/// A flush being written; ends when dropped (also if the writer's future is dropped mid-write).
pub(crate) struct Flushing<'a>(&'a FlushSeq);

impl FlushSeq {
    pub fn mark(&self) -> ReadMark<'_> {
        ReadMark {
            flushes: self,
            at: self.0.load(Ordering::SeqCst),
        }
    }

    pub fn begin(&self) -> Flushing<'_> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Flushing(self)
    }
}

impl ReadMark<'_> {
    /// Whether no flush was written, or being written, since the mark was taken. Asked under
    /// the live state's lock, which the writer takes to count a flush as written.
    pub fn exact(&self) -> bool {
        self.at.is_multiple_of(2) && self.flushes.0.load(Ordering::SeqCst) == self.at
    }
}

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        self.0.0.fetch_add(1, Ordering::SeqCst);
    }
}

pub(crate) struct Live {
    state: Mutex<LiveState>,
    /// The object's rpm, tpm and parallel-request counters.
    pub quota: QuotaScope,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct LiveState {
    /// Spend as this instance knows it: the stored figure plus what it recorded since.
    pub spend: f64,
    /// Recorded here but not yet written by the batch writer.
    pub unflushed: f64,
    pub budget_reset_at: Option<i64>,
    /// Requests in flight on this instance (for the budget reservations; the parallel-request
    /// limit is the quota's).
    pub in_flight: u64,
    /// Sum of the cost estimates of in-flight requests.
    pub reserved: f64,
    /// Largest cost of one request seen for this key: the estimate for the next one.
    pub max_cost: Option<f64>,
    /// `updated_at` of the newest record seen: a newer one means an admin edit.
    pub seen_updated_at: i64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Live {
    /// Live state starting from a stored record's spend and budget period.
    pub fn new(
        quota: QuotaScope,
        spend: f64,
        budget_reset_at: Option<i64>,
        updated_at: i64,
    ) -> Self {
        Self {
            state: Mutex::new(LiveState {
                spend,
                budget_reset_at,
                seen_updated_at: updated_at,
                ..LiveState::default()
            }),
            quota,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, LiveState> {
        lock(&self.state)
    }

    /// The batch writer stored `cost` of this object.
    pub fn flushed(&self, cost: f64) {
        let mut s = self.lock();
        s.unflushed = (s.unflushed - cost).max(0.0);
    }

    /// Takes in a freshly loaded record (spend, budget period, `updated_at`), which may carry
    /// spend written by other instances or an admin's edit; `read` was taken before the record
    /// was read. A read a flush of this instance overlapped (see [`FlushSeq`]) is left for the
    /// next one, an edit included (`seen_updated_at` does not move).
    pub fn reconcile(
        &self,
        spend: f64,
        budget_reset_at: Option<i64>,
        updated_at: i64,
        read: ReadMark<'_>,
    ) {
        let mut s = self.lock();
        if !read.exact() {
            return;
        }
        let stored = spend + s.unflushed;
        let edited = updated_at > s.seen_updated_at;
        s.seen_updated_at = s.seen_updated_at.max(updated_at);
        match (budget_reset_at, s.budget_reset_at) {
            // An admin edited the record (perhaps set its spend) on some instance: take the
            // stored figure even if it is lower.
            (db, _) if edited => {
                s.spend = stored;
                s.budget_reset_at = db;
            }
            // Same period: never go below what this instance has seen.
            (db, mem) if db == mem => s.spend = s.spend.max(stored),
            // Another instance reset the budget (or the period was changed by an update).
            (Some(db), Some(mem)) if db > mem => {
                s.spend = stored;
                s.budget_reset_at = Some(db);
            }
            (Some(_), Some(_)) => {} // the store has not seen our reset yet
            (db, _) => {
                s.budget_reset_at = db;
                s.spend = s.spend.max(stored);
            }
        }
    }
}

impl LiveMap {
    pub fn get(&self, key_id: &str) -> Option<Arc<Live>> {
        lock(&self.map).get(key_id).cloned()
    }

    /// The live state of a key, created from the record on first sight, otherwise reconciled with
    /// a freshly loaded record (which may carry spend written by other instances); `read` was
    /// taken before the record was read.
    pub fn observe(&self, record: &KeyRecord, read: ReadMark<'_>) -> Arc<Live> {
        let mut map = lock(&self.map);
        if let Some(live) = map.get(&record.key_id) {
            let live = live.clone();
            drop(map);
            live.reconcile(
                record.spend,
                record.budget_reset_at,
                record.updated_at,
                read,
            );
            return live;
        }
        let live = Arc::new(Live::new(
            QuotaScope::new(ScopeKind::Key, &record.key_id),
            record.spend,
            record.budget_reset_at,
            record.updated_at,
        ));
        map.insert(record.key_id.clone(), live.clone());
        live
    }

    pub fn remove(&self, key_id: &str) {
        lock(&self.map).remove(key_id);
    }

    /// The batch writer stored `cost` of this key.
    pub fn flushed(&self, key_id: &str, cost: f64) {
        if let Some(live) = self.get(key_id) {
            live.flushed(cost);
        }
    }
}

impl LiveMap {
    /// Like [`LiveMap::observe`] but without reconciling an already known key (the request path
    /// passes cached records, whose stored spend may be older than the live figure).
    pub fn observe_existing(&self, record: &KeyRecord) -> Arc<Live> {
        match self.get(&record.key_id) {
            Some(live) => live,
            None => self.observe(record, self.flushes.mark()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_with(spend: f64, unflushed: f64) -> Live {
        let live = Live::new(QuotaScope::new(ScopeKind::Key, "k"), spend, None, 1);
        live.lock().unflushed = unflushed;
        live
    }

    /// An edited record read before this instance's flush committed, taken in after the flush:
    /// its stored spend lacks what `unflushed` no longer counts (the lost update this prevents).
    #[test]
    fn a_read_overlapping_a_flush_loses_no_spend_and_the_edit_comes_with_the_next_read() {
        let flushes = FlushSeq::default();
        let live = live_with(0.5, 0.5);
        let read = flushes.mark();
        let stored_before_commit = 0.0;
        {
            let _flushing = flushes.begin();
            live.flushed(0.5);
        }
        live.reconcile(stored_before_commit, None, 2, read);
        assert!((live.lock().spend - 0.5).abs() < 1e-12);
        // The next read no flush overlaps takes the edit in (here: spend set to 0.25 elsewhere).
        live.reconcile(0.25, None, 2, flushes.mark());
        assert!((live.lock().spend - 0.25).abs() < 1e-12);
    }

    /// A read taken while a flush is being written may already hold it while `unflushed` still
    /// counts it: taking it would count the flush twice.
    #[test]
    fn a_read_during_a_flush_is_not_exact_even_after_it_ends() {
        let flushes = FlushSeq::default();
        let flushing = flushes.begin();
        let read = flushes.mark();
        assert!(!read.exact());
        drop(flushing);
        assert!(!read.exact());
        assert!(flushes.mark().exact());
        let live = live_with(0.5, 0.5);
        let during = {
            let _flushing = flushes.begin();
            flushes.mark()
        };
        live.reconcile(0.5, None, 1, during);
        assert!((live.lock().spend - 0.5).abs() < 1e-12, "counted twice");
    }
}
