//! Request-path limits, all in memory: model access, budget (with in-flight reservations),
//! requests and tokens per minute, parallel requests, and usage recording.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vaultgate_config::ModelInfo;
use vaultgate_core::{Error, Result};

use crate::clock::Clock;
use crate::hot_metrics::hot_metrics;
use crate::live::{Live, LiveMap, MINUTE_MS};
use crate::model::{ALL_PROXY_MODELS, KeyRecord, model_matches, parse_duration};
use crate::spend::{SpendMsg, SpendQueue};

/// What the request-path checks need: the live per-key state, the clock, the first-request cost
/// estimate and the spend queue. Holds no database handle: nothing here waits on the store.
pub(crate) struct Limits {
    pub live: Arc<LiveMap>,
    pub clock: Arc<dyn Clock>,
    /// See `KeyServiceOptions::unknown_request_cost_estimate`.
    pub unknown_request_cost_estimate: f64,
    pub spend: SpendQueue,
}

/// An admitted request. Holds a parallel slot and a budget reservation until dropped; pass it to
/// `KeyService::record_usage` when the response's usage is known.
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

impl Limits {
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
        let now = self.clock.now_ms();
        let live = self.live.observe_existing(key);
        let mut s = live.lock();

        // Budget period over: start a new one (the store follows through the batch writer).
        if let Some(duration_ms) = key.budget_duration.as_deref().and_then(parse_duration) {
            match s.budget_reset_at {
                Some(reset_at) if now >= reset_at => {
                    let next = now.saturating_add(duration_ms);
                    s.spend = 0.0;
                    s.budget_reset_at = Some(next);
                    self.spend.send(SpendMsg::Reset {
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
            let guess = s.max_cost.unwrap_or(self.unknown_request_cost_estimate);
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
        let now = self.clock.now_ms();
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
        let hot = hot_metrics();
        hot.spend_usd.increment(cost);
        hot.prompt_tokens.increment(prompt_tokens);
        hot.completion_tokens.increment(completion_tokens);
        self.spend.send(SpendMsg::Usage {
            key_id: key.key_id.clone(),
            cost,
            prompt_tokens,
            completion_tokens,
            at_ms: now,
        });
        cost
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
}
