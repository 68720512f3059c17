//! Request-path limits: model access, budget (with in-flight reservations), requests and tokens
//! per minute, parallel requests, and usage recording, for the key and every object it answers
//! to (team, organization, user, team member, end user: see [`crate::principals::chain`]). The
//! first limit exceeded answers. Budgets are kept here, in memory; the rate limits are the
//! quota's ([`vaultgate_quota::Limiter`]): in this process, or shared by every instance through
//! Redis in one round trip per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use smallvec::SmallVec;
use vaultgate_config::ModelInfo;
use vaultgate_core::{Error, Result};
use vaultgate_quota::{Ask, Limiter, Limits as RateLimits, Permit, Quota, ScopeKind, WindowUse};

use crate::clock::Clock;
use crate::hot_metrics::hot_metrics;
use crate::live::{Live, LiveMap, LiveState};
use crate::model::{ALL_PROXY_MODELS, KeyRecord, model_matches};
use crate::principals::chain::{Limit, MAX_SUBJECTS, Subject, python_list};
use crate::principals::directory::{Directory, Scope};
use crate::principals::model::Role;
use crate::spend::{SpendMsg, SpendQueue, UsageScopes};

/// What the request-path checks need: the live per-key state, the directory of teams, users and
/// the rest, the rate limiter, the clock, the first-request cost estimate and the spend queue.
/// Holds no database handle: nothing here waits on the store.
pub(crate) struct Limits {
    pub live: Arc<LiveMap>,
    pub directory: Arc<Directory>,
    pub limiter: Arc<Limiter>,
    pub clock: Arc<dyn Clock>,
    /// See `KeyServiceOptions::unknown_request_cost_estimate`.
    pub unknown_request_cost_estimate: f64,
    pub spend: SpendQueue,
}

/// One object an admitted request holds a budget reservation of.
struct Slot {
    live: Arc<Live>,
    reserved: f64,
    scope: Option<Scope>,
    max_budget: Option<f64>,
}

/// `(max_budget, spend)` of one object.
pub type Budget = (f64, f64);

/// An admitted request. Holds a budget reservation of each object it answers to and its rate
/// limit permit (parallel-request slots) until dropped; pass it to `KeyService::record_usage`
/// when the response's usage is known.
pub struct Admission {
    key: Arc<KeyRecord>,
    slots: [Option<Slot>; MAX_SUBJECTS],
    /// The request's end user when the directory has no limits for it: its spend is still kept.
    untracked_end_user: Option<Scope>,
    recorded: AtomicBool,
    /// The rate limits' hold (none when no object of the request has an rpm, tpm or parallel
    /// limit). Dropped with the admission: that frees the parallel slots.
    permit: Option<Permit>,
}

impl Admission {
    pub fn key(&self) -> &Arc<KeyRecord> {
        &self.key
    }

    /// `(max_budget, live spend)` of the key and of its team, for those that have a budget.
    pub fn budgets(&self) -> (Option<Budget>, Option<Budget>) {
        let mut key = None;
        let mut team = None;
        for slot in self.slots.iter().flatten() {
            let Some(max) = slot.max_budget else {
                continue;
            };
            let spend = slot.live.lock().spend;
            match &slot.scope {
                None => key = Some((max, spend)),
                Some(Scope::Team(_)) => team = Some((max, spend)),
                Some(_) => {}
            }
        }
        (key, team)
    }
}

/// Where the admitted key stands, for the answer's headers (LiteLLM's `x-litellm-key-*` and
/// `x-ratelimit-*`): its live spend and its own limits with what its current minute used.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KeyUse {
    pub spend: f64,
    pub max_budget: Option<f64>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    /// Requests and tokens of the key's current minute, this request included (`None` when
    /// the key has neither an rpm nor a tpm limit).
    pub used: Option<WindowUse>,
}

impl Admission {
    /// The key's [`KeyUse`] now (its spend includes this request once recorded).
    pub fn key_use(&self, now_ms: i64) -> KeyUse {
        let key = &self.key;
        let spend = self
            .slots
            .iter()
            .flatten()
            .find(|slot| slot.scope.is_none())
            .map_or(key.spend, |slot| slot.live.lock().spend);
        KeyUse {
            spend,
            max_budget: key.max_budget,
            rpm_limit: key.rpm_limit,
            tpm_limit: key.tpm_limit,
            used: self
                .permit
                .as_ref()
                .and_then(|permit| permit.used(ScopeKind::Key, now_ms)),
        }
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reserved: f64 = self.slots.iter().flatten().map(|s| s.reserved).sum();
        f.debug_struct("Admission")
            .field("key_name", &self.key.key_name)
            .field("reserved", &reserved)
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let recorded = self.recorded.load(Ordering::SeqCst);
        for slot in self.slots.iter().flatten() {
            let mut s = slot.live.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
            if !recorded {
                s.reserved -= slot.reserved;
            }
            if s.in_flight == 0 || s.reserved < 0.0 {
                s.reserved = 0.0;
            }
        }
    }
}

fn reject(reason: &'static str, kind: &'static str, message: String, retry_after: u64) -> Error {
    metrics::counter!("vaultgate_key_limit_rejections_total", "reason" => reason, "scope" => kind)
        .increment(1);
    Error::RateLimited {
        message,
        retry_after,
    }
}

impl Limit {
    fn rates(&self) -> RateLimits {
        RateLimits {
            rpm: self.rpm_limit,
            tpm: self.tpm_limit,
            parallel: self.max_parallel_requests,
        }
    }
}

impl Limits {
    /// Whether the key may use `model`: its own `models` list, then its team's (or, for a
    /// personal key, its user's) must allow it. Empty lists allow all; `all-proxy-models` too; a
    /// trailing `*` is a prefix wildcard. An admin viewer's key may not call models at all.
    pub fn authorize_model(&self, key: &KeyRecord, model: &str) -> Result<()> {
        if self.directory.role_of(key) == Some(Role::ProxyAdminViewer) {
            return Err(Error::Forbidden(
                "user not allowed to access this OpenAI routes, role= proxy_admin_viewer".into(),
            ));
        }
        if !key_allows(key, model) {
            metrics::counter!("vaultgate_key_model_denied_total").increment(1);
            return Err(Error::ModelAccessDenied {
                kind: "key_model_access_denied",
                message: format!(
                    "Authentication Error - key not allowed to access model. This key can only \
                     access models=[{}]. Tried to access {model}",
                    python_list(&key.models)
                ),
            });
        }
        let chain = self.directory.chain(key, None);
        chain.check_model(model).inspect_err(|_| {
            metrics::counter!("vaultgate_key_model_denied_total").increment(1);
        })
    }

    /// The models of `all` that the key may use, in the order of `all` (for GET /v1/models).
    pub fn allowed_models(&self, key: &KeyRecord, all: &[String]) -> Vec<String> {
        let chain = self.directory.chain(key, None);
        all.iter()
            .filter(|m| key_allows(key, m) && chain.allows(m))
            .cloned()
            .collect()
    }

    /// Admits one request of `key` (for the request's `end_user`, if it named one) or says why
    /// not: a blocked team or end user (401), a spent budget of any object (400
    /// budget_exceeded), a nearly spent budget already covered by in-flight requests, requests
    /// or tokens per minute, or parallel requests (429 with Retry-After). Never touches the
    /// database; with shared limits, asks Redis once for every object's rate limits together.
    pub async fn admit(
        &self,
        key: &Arc<KeyRecord>,
        model: &str,
        end_user: Option<&str>,
    ) -> Result<Admission> {
        let now = self.clock.now_ms();
        let key_live = self.live.observe_existing(key);
        let chain = self.directory.chain(key, end_user);
        chain.check_team_blocked()?;
        chain.check_end_user_blocked()?;
        let subjects = chain.subjects(key, &key_live);
        let mut admission = self.reserve_budgets(key, &subjects, now)?;
        admission.untracked_end_user = match (&chain.end_user, end_user) {
            (None, Some(id)) if !id.is_empty() => Some(Scope::EndUser(Arc::from(id))),
            _ => None,
        };
        let asks: SmallVec<[Ask<'_>; MAX_SUBJECTS]> = subjects
            .iter()
            .flatten()
            .map(|subject| Ask {
                scope: &subject.live.quota,
                limits: subject.limit.rates(),
                label: &subject.label,
            })
            .filter(|ask| !ask.limits.is_unlimited())
            .collect();
        if !asks.is_empty() {
            // Refused: dropping the admission gives the budget reservations back.
            admission.permit = Some(self.limiter.acquire(&asks, now).await?);
        }
        tracing::trace!(key = %key.key_name, model, "admitted");
        Ok(admission)
    }

    /// The budgets of every object: a spent one refuses the request; otherwise each object
    /// reserves the request's estimated cost and counts it in flight.
    fn reserve_budgets(
        &self,
        key: &Arc<KeyRecord>,
        subjects: &[Option<Subject<'_>>; MAX_SUBJECTS],
        now: i64,
    ) -> Result<Admission> {
        // Locked together, always in the same order (key, team, org, user, member, end user),
        // so the checks and the counting below see one consistent state.
        let mut guards: [Option<std::sync::MutexGuard<'_, LiveState>>; MAX_SUBJECTS] =
            Default::default();
        for (guard, subject) in guards.iter_mut().zip(subjects) {
            *guard = subject.as_ref().map(|s| s.live.lock());
        }
        let pairs = || {
            subjects
                .iter()
                .zip(0..MAX_SUBJECTS)
                .filter_map(|(subject, i)| subject.as_ref().map(|s| (s, i)))
        };
        for (subject, i) in pairs() {
            if let Some(s) = guards[i].as_mut() {
                self.start_new_period(subject, key, s, now);
            }
        }
        let mut estimates = [0.0f64; MAX_SUBJECTS];
        for (subject, i) in pairs() {
            if let Some(s) = guards[i].as_ref() {
                estimates[i] = self.budget_check(subject, s)?;
            }
        }
        let mut slots: [Option<Slot>; MAX_SUBJECTS] = Default::default();
        for (subject, i) in pairs() {
            if let Some(s) = guards[i].as_mut() {
                s.in_flight += 1;
                s.reserved += estimates[i];
            }
            slots[i] = Some(Slot {
                live: subject.live.clone(),
                reserved: estimates[i],
                scope: subject.scope.cloned(),
                max_budget: subject.limit.max_budget,
            });
        }
        drop(guards);
        Ok(Admission {
            key: key.clone(),
            slots,
            untracked_end_user: None,
            recorded: AtomicBool::new(false),
            permit: None,
        })
    }

    /// Budget period over: start a new one (the store follows through the batch writer).
    fn start_new_period(
        &self,
        subject: &Subject<'_>,
        key: &KeyRecord,
        s: &mut LiveState,
        now: i64,
    ) {
        let Some(duration_ms) = subject.limit.period_ms else {
            return;
        };
        match s.budget_reset_at {
            Some(reset_at) if now >= reset_at => {
                let next = now.saturating_add(duration_ms);
                s.spend = 0.0;
                s.budget_reset_at = Some(next);
                self.spend.send(match subject.scope {
                    None => SpendMsg::Reset {
                        key_id: key.key_id.clone(),
                        now_ms: now,
                        next_reset_ms: next,
                    },
                    Some(scope) => SpendMsg::ScopeReset {
                        scope: scope.clone(),
                        now_ms: now,
                        next_reset_ms: next,
                    },
                });
                tracing::info!(object = %subject.label, "budget period over: spend reset");
            }
            _ => {}
        }
    }

    /// A spent budget is a 400; returns the cost estimate to reserve for this request.
    fn budget_check(&self, subject: &Subject<'_>, s: &LiveState) -> Result<f64> {
        let Some(max_budget) = subject.limit.max_budget else {
            return Ok(0.0);
        };
        if s.spend >= max_budget {
            metrics::counter!("vaultgate_key_limit_rejections_total", "reason" => "budget",
                "scope" => subject.label.kind())
            .increment(1);
            return Err(subject.label.budget_exceeded(s.spend, max_budget));
        }
        // In-flight requests may still spend: reserve an estimate per request (the largest
        // cost seen for this object, else `unknown_request_cost_estimate`), and once those
        // estimates exceed what is left admit one request at a time, so the budget is overrun
        // by at most one request's cost.
        let remaining = max_budget - s.spend;
        let guess = s.max_cost.unwrap_or(self.unknown_request_cost_estimate);
        let tight = !guess.is_finite() || s.reserved + guess > remaining;
        if tight && s.in_flight > 0 {
            return Err(reject(
                "budget_in_flight",
                subject.label.kind(),
                format!(
                    "Budget nearly spent for {}: {remaining:.6} USD left and {} request(s) in \
                     flight that may use it; try again when they finish",
                    subject.label, s.in_flight
                ),
                1,
            ));
        }
        Ok(if guess.is_finite() {
            guess.max(0.0)
        } else {
            0.0
        })
    }

    /// Records a finished request's usage: cost from `model_info` prices, else the built-in
    /// table (0 for an unknown model). Updates in-memory spend and tokens of every object at
    /// once; the store is written by the batch writer. Returns the cost in USD.
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
        let first = !admission.recorded.swap(true, Ordering::SeqCst);
        let mut scopes: UsageScopes = Default::default();
        let mut next = scopes.iter_mut();
        for slot in admission.slots.iter().flatten() {
            {
                let mut s = slot.live.lock();
                s.spend += cost;
                s.unflushed += cost;
                s.max_cost = Some(s.max_cost.map_or(cost, |m| m.max(cost)));
                if first {
                    s.reserved = (s.reserved - slot.reserved).max(0.0);
                }
            }
            if let (Some(scope), Some(place)) = (&slot.scope, next.next()) {
                *place = Some((scope.clone(), Some(slot.live.clone())));
            }
        }
        if let Some(permit) = &admission.permit {
            // Counted here at once; in Redis by the quota's background writer.
            permit.record_tokens(prompt_tokens.saturating_add(completion_tokens), now);
        }
        if let (Some(scope), Some(place)) = (&admission.untracked_end_user, next.next()) {
            *place = Some((scope.clone(), None));
        }
        let hot = hot_metrics();
        hot.spend_usd.increment(cost);
        hot.prompt_tokens.increment(prompt_tokens);
        hot.completion_tokens.increment(completion_tokens);
        self.spend.send(SpendMsg::Usage {
            key_id: admission.key.key_id.clone(),
            cost,
            prompt_tokens,
            completion_tokens,
            at_ms: now,
            scopes,
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
