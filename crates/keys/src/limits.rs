//! Request-path limits, all in memory: model access, budget (with in-flight reservations),
//! requests and tokens per minute, parallel requests, and usage recording.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vaultgate_config::ModelInfo;
use vaultgate_core::{Error, FastMap, Result};

use crate::model::{ALL_PROXY_MODELS, KeyRecord, model_matches, parse_duration};
use crate::service::KeyService;
use crate::spend::SpendMsg;

/// Live per-key state, keyed by the stable `key_id` (survives regenerate and cache reloads).
#[derive(Default)]
pub(crate) struct LiveMap {
    map: Mutex<FastMap<String, Arc<Live>>>,
}

#[derive(Default)]
pub(crate) struct Live {
    state: Mutex<LiveState>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct LiveState {
    /// Spend as this instance knows it: the stored figure plus what it recorded since.
    pub spend: f64,
    /// Recorded here but not yet written by the batch writer.
    pub unflushed: f64,
    pub budget_reset_at: Option<i64>,
    pub in_flight: u64,
    /// Sum of the cost estimates of in-flight requests.
    pub reserved: f64,
    /// Largest cost of one request seen for this key: the estimate for the next one.
    pub max_cost: Option<f64>,
    /// Requests admitted in the current minute.
    pub rpm: MinuteCount,
    /// Tokens used in the current minute.
    pub tpm: MinuteCount,
    /// `updated_at` of the newest record seen: a newer one means an admin edit.
    pub seen_updated_at: i64,
}

/// A count that starts again from 0 each minute (rpm and tpm windows).
#[derive(Debug, Default, Clone)]
pub(crate) struct MinuteCount {
    minute: i64,
    count: u64,
}

impl MinuteCount {
    /// The count of the minute `now_ms` falls in.
    fn at(&mut self, now_ms: i64) -> &mut u64 {
        let minute = now_ms.div_euclid(MINUTE_MS);
        if self.minute != minute {
            self.minute = minute;
            self.count = 0;
        }
        &mut self.count
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Live {
    pub fn lock(&self) -> MutexGuard<'_, LiveState> {
        lock(&self.state)
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
            {
                let mut s = live.lock();
                let stored = record.spend + s.unflushed;
                let edited = record.updated_at > s.seen_updated_at;
                s.seen_updated_at = s.seen_updated_at.max(record.updated_at);
                match (record.budget_reset_at, s.budget_reset_at) {
                    // An admin edited the key (perhaps set its spend) on some instance: take the
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
            return live;
        }
        let live = Arc::new(Live {
            state: Mutex::new(LiveState {
                spend: record.spend,
                budget_reset_at: record.budget_reset_at,
                seen_updated_at: record.updated_at,
                ..LiveState::default()
            }),
        });
        map.insert(record.key_id.clone(), live.clone());
        live
    }

    pub fn remove(&self, key_id: &str) {
        lock(&self.map).remove(key_id);
    }

    /// The batch writer stored `cost` of this key.
    pub fn flushed(&self, key_id: &str, cost: f64) {
        if let Some(live) = self.get(key_id) {
            let mut s = live.lock();
            s.unflushed = (s.unflushed - cost).max(0.0);
        }
    }
}

/// An admitted request. Holds a parallel slot and a budget reservation until dropped; pass it to
/// [`KeyService::record_usage`] when the response's usage is known.
pub struct Admission {
    key: Arc<KeyRecord>,
    live: Arc<Live>,
    reserved: f64,
    recorded: AtomicBool,
}

impl Admission {
    pub fn key(&self) -> &Arc<KeyRecord> {
        &self.key
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("key_name", &self.key.key_name)
            .field("reserved", &self.reserved)
            .finish_non_exhaustive()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut s = self.live.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if !self.recorded.load(Ordering::SeqCst) {
            s.reserved -= self.reserved;
        }
        if s.in_flight == 0 || s.reserved < 0.0 {
            s.reserved = 0.0;
        }
    }
}

const MINUTE_MS: i64 = 60_000;

/// Whole seconds until the next minute window (at least 1), for Retry-After.
fn seconds_to_next_minute(now_ms: i64) -> u64 {
    let rest = MINUTE_MS - now_ms.rem_euclid(MINUTE_MS);
    u64::try_from((rest + 999) / 1000).unwrap_or(1).max(1)
}

fn reject(reason: &'static str, message: String, retry_after: u64) -> Error {
    metrics::counter!("vaultgate_key_limit_rejections_total", "reason" => reason).increment(1);
    Error::RateLimited {
        message,
        retry_after,
    }
}

/// rpm and tpm: a key that used its `limit` this minute waits for the next one.
fn per_minute_limit(
    reason: &'static str,
    unit: &str,
    limit: Option<u64>,
    used: u64,
    key_name: &str,
    now_ms: i64,
) -> Result<()> {
    match limit {
        Some(limit) if used >= limit => {
            let wait = seconds_to_next_minute(now_ms);
            Err(reject(
                reason,
                format!(
                    "Rate limit reached for key {key_name}: {reason}_limit {limit} {unit} per \
                     minute. Try again in {wait} seconds."
                ),
                wait,
            ))
        }
        _ => Ok(()),
    }
}

impl KeyService {
    /// Whether the key may use `model`: its `models` list is empty (all models), contains
    /// `all-proxy-models`, or names the model (a trailing `*` is a prefix wildcard).
    pub fn authorize_model(&self, key: &KeyRecord, model: &str) -> Result<()> {
        if key_allows(key, model) {
            return Ok(());
        }
        metrics::counter!("vaultgate_key_model_denied_total").increment(1);
        Err(Error::Unauthorized(format!(
            "Authentication Error - key not allowed to access model. This key can only access \
             models=[{}]. Tried to access {model}",
            // Python's list repr, as LiteLLM prints it.
            key.models
                .iter()
                .map(|m| format!("'{m}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// The models of `all` that the key may use, in the order of `all` (for GET /v1/models).
    pub fn allowed_models(&self, key: &KeyRecord, all: &[String]) -> Vec<String> {
        all.iter().filter(|m| key_allows(key, m)).cloned().collect()
    }

    /// Admits one request of `key` or says why not: budget spent (400 budget_exceeded), requests
    /// or tokens per minute, parallel requests, or a nearly spent budget already covered by
    /// in-flight requests (429 with Retry-After). Never touches the database.
    pub fn admit(&self, key: &Arc<KeyRecord>, model: &str) -> Result<Admission> {
        let inner = self.inner();
        let now = inner.clock.now_ms();
        let live = inner.live.observe_existing(key);
        let mut s = live.lock();

        // Budget period over: start a new one (the store follows through the batch writer).
        if let Some(duration_ms) = key.budget_duration.as_deref().and_then(parse_duration) {
            match s.budget_reset_at {
                Some(reset_at) if now >= reset_at => {
                    let next = now.saturating_add(duration_ms);
                    s.spend = 0.0;
                    s.budget_reset_at = Some(next);
                    inner.send_spend(SpendMsg::Reset {
                        key_id: key.key_id.clone(),
                        now_ms: now,
                        next_reset_ms: next,
                    });
                    tracing::info!(key = %key.key_name, "budget period over: spend reset");
                }
                _ => {}
            }
        }

        let mut estimate = 0.0;
        if let Some(max_budget) = key.max_budget {
            if s.spend >= max_budget {
                metrics::counter!("vaultgate_key_limit_rejections_total", "reason" => "budget")
                    .increment(1);
                return Err(Error::BudgetExceeded(format!(
                    "Budget has been exceeded! Current cost: {}, Max budget: {max_budget}",
                    s.spend
                )));
            }
            // In-flight requests may still spend: reserve an estimate per request (the largest
            // cost seen for this key, else `unknown_request_cost_estimate`), and once those
            // estimates exceed what is left admit one request at a time, so the budget is
            // overrun by at most one request's cost.
            let remaining = max_budget - s.spend;
            let guess = s
                .max_cost
                .unwrap_or(inner.options.unknown_request_cost_estimate);
            let tight = !guess.is_finite() || s.reserved + guess > remaining;
            if guess.is_finite() {
                estimate = guess.max(0.0);
            }
            if tight && s.in_flight > 0 {
                return Err(reject(
                    "budget_in_flight",
                    format!(
                        "Budget nearly spent for key {}: {remaining:.6} USD left and {} request(s) \
                         in flight that may use it; try again when they finish",
                        key.key_name, s.in_flight
                    ),
                    1,
                ));
            }
        }

        let requests = *s.rpm.at(now);
        per_minute_limit(
            "rpm",
            "requests",
            key.rpm_limit,
            requests,
            &key.key_name,
            now,
        )?;
        let tokens = *s.tpm.at(now);
        per_minute_limit("tpm", "tokens", key.tpm_limit, tokens, &key.key_name, now)?;
        if let Some(limit) = key.max_parallel_requests
            && s.in_flight >= limit
        {
            return Err(reject(
                "parallel",
                format!(
                    "Max parallel request limit reached for key {}: max_parallel_requests {limit}. \
                     Try again when a request finishes.",
                    key.key_name
                ),
                1,
            ));
        }

        *s.rpm.at(now) += 1;
        s.in_flight += 1;
        s.reserved += estimate;
        drop(s);
        tracing::trace!(key = %key.key_name, model, "admitted");
        Ok(Admission {
            key: key.clone(),
            live,
            reserved: estimate,
            recorded: AtomicBool::new(false),
        })
    }

    /// Records a finished request's usage: cost from `model_info` prices, else the built-in
    /// table (0 for an unknown model). Updates in-memory spend and tokens at once; the store is
    /// written by the batch writer. Returns the cost in USD.
    pub fn record_usage(
        &self,
        admission: &Admission,
        model: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
        model_info: Option<&ModelInfo>,
    ) -> f64 {
        let inner = self.inner();
        let now = inner.clock.now_ms();
        let cost = match crate::pricing::cost(model, model_info, prompt_tokens, completion_tokens) {
            Some(cost) => cost,
            None => {
                tracing::debug!(model, "no price known for model; cost counted as 0");
                0.0
            }
        };
        let key = &admission.key;
        {
            let mut s = admission.live.lock();
            s.spend += cost;
            s.unflushed += cost;
            let tokens = s.tpm.at(now);
            *tokens = tokens.saturating_add(prompt_tokens.saturating_add(completion_tokens));
            s.max_cost = Some(s.max_cost.map_or(cost, |m| m.max(cost)));
            if !admission.recorded.swap(true, Ordering::SeqCst) {
                s.reserved = (s.reserved - admission.reserved).max(0.0);
            }
        }
        let hot = crate::service::hot_metrics();
        hot.spend_usd.increment(cost);
        hot.prompt_tokens.increment(prompt_tokens);
        hot.completion_tokens.increment(completion_tokens);
        inner.send_spend(SpendMsg::Usage {
            key_id: key.key_id.clone(),
            cost,
            prompt_tokens,
            completion_tokens,
            at_ms: now,
        });
        cost
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

fn key_allows(key: &KeyRecord, model: &str) -> bool {
    key.models.is_empty()
        || key
            .models
            .iter()
            .any(|m| m == ALL_PROXY_MODELS || model_matches(m, model))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn retry_after_is_at_least_one_second() {
        assert_eq!(seconds_to_next_minute(0), 60);
        assert_eq!(seconds_to_next_minute(59_999), 1);
        assert_eq!(seconds_to_next_minute(30_500), 30);
    }

    #[test]
    fn per_minute_limits_reject_until_the_next_minute() {
        assert!(per_minute_limit("rpm", "requests", None, 99, "sk-...ab", 0).is_ok());
        assert!(per_minute_limit("rpm", "requests", Some(3), 2, "sk-...ab", 0).is_ok());
        for (reason, unit) in [("rpm", "requests"), ("tpm", "tokens")] {
            let Err(Error::RateLimited {
                message,
                retry_after,
            }) = per_minute_limit(reason, unit, Some(3), 3, "sk-...ab", 45_000)
            else {
                panic!("{reason}: a full window must reject");
            };
            assert_eq!(
                message,
                format!(
                    "Rate limit reached for key sk-...ab: {reason}_limit 3 {unit} per minute. \
                     Try again in 15 seconds."
                )
            );
            assert_eq!(retry_after, 15);
        }
    }

    #[test]
    fn a_minute_count_starts_again_each_minute() {
        let mut count = MinuteCount::default();
        *count.at(1_000) += 2;
        *count.at(59_999) += 1;
        assert_eq!(*count.at(59_999), 3);
        assert_eq!(*count.at(60_000), 0);
    }
}
