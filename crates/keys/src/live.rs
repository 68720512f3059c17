//! Live per-key state in memory: spend as this instance knows it, in-flight requests and the
//! object's rate-limit counters (a [`QuotaScope`]: here, or shared through Redis). Read and
//! written by the request path (limits), the spend writer and the management API; never waits
//! on the store.

use std::sync::{Arc, Mutex, MutexGuard};

use vaultgate_core::FastMap;
use vaultgate_quota::{Scope as QuotaScope, ScopeKind};

use crate::model::KeyRecord;

/// Live per-key state, keyed by the stable `key_id` (survives regenerate and cache reloads).
#[derive(Default)]
pub(crate) struct LiveMap {
    map: Mutex<FastMap<String, Arc<Live>>>,
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
    /// spend written by other instances or an admin's edit.
    pub fn reconcile(&self, spend: f64, budget_reset_at: Option<i64>, updated_at: i64) {
        let mut s = self.lock();
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
    /// a freshly loaded record (which may carry spend written by other instances).
    pub fn observe(&self, record: &KeyRecord) -> Arc<Live> {
        let mut map = lock(&self.map);
        if let Some(live) = map.get(&record.key_id) {
            let live = live.clone();
            drop(map);
            live.reconcile(record.spend, record.budget_reset_at, record.updated_at);
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
            None => self.observe(record),
        }
    }
}
