//! Which deployment serves a request, and what happens when it fails: routing strategies,
//! retries with backoff, cooldowns of failing deployments, and fallbacks to other model groups.
//!
//! The caller's `attempt` resolves before any byte reaches the client (streams resolve at their
//! first chunk), so everything here may freely retry or fall back.

mod build;
mod classify;
mod fallbacks;
mod health;
mod request;
mod resolve;
mod select;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use vaultgate_config::ModelEntry;
use vaultgate_core::{Error, FastMap, Result};
use vaultgate_providers::Deployment;

pub use classify::{FailureKind, classify, retryable};
pub use health::{CooldownPolicy, DeploymentState, FAILURE_WINDOW, FailureStats, InFlight};
pub use request::{MockFailures, RequestRouting, mock_error};
pub use resolve::GroupRef;
pub use select::Strategy;

use build::BuildSettings;
use fallbacks::FallbackTables;
use resolve::{MatchedCache, Pattern};
use select::Candidate;

/// Longest wait between two retries, whatever the attempt count.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// First backoff step; doubles per retry.
const BASE_BACKOFF: Duration = Duration::from_millis(50);

/// All deployments sharing one public `model_name`.
pub struct ModelGroup {
    pub name: String,
    /// The wildcard route this group was built from, if any (`openai/*` for `openai/gpt-4o`).
    pub pattern: Option<String>,
    pub deployments: Vec<Arc<Deployment>>,
    states: Vec<Arc<DeploymentState>>,
    /// Deployments of this group vaultgate cannot call (an unsupported provider).
    pub unavailable: Vec<Unavailable>,
    cursor: AtomicUsize,
    /// Retries after the first attempt before the group gives up (and fallbacks start).
    num_retries: u32,
}

impl ModelGroup {
    fn new(name: &str, pattern: Option<String>) -> Self {
        Self {
            name: name.to_owned(),
            pattern,
            deployments: Vec::new(),
            states: Vec::new(),
            unavailable: Vec::new(),
            cursor: AtomicUsize::new(0),
            num_retries: 0,
        }
    }

    fn push(&mut self, deployment: Arc<Deployment>, state: Arc<DeploymentState>) {
        self.deployments.push(deployment);
        self.states.push(state);
    }

    pub fn num_retries(&self) -> u32 {
        self.num_retries
    }

    /// Live statistics of the deployment at `index`.
    pub fn state(&self, index: usize) -> Option<&DeploymentState> {
        self.states.get(index).map(|s| &**s)
    }

    /// The names fallbacks are looked up by: the group's, then its route's.
    fn fallback_names(&self) -> [&str; 2] {
        [self.name.as_str(), self.pattern.as_deref().unwrap_or("")]
    }
}

/// A configured deployment vaultgate cannot call, and why (reported at start, in `/health`,
/// and in the answer to a request for it).
#[derive(Debug, Clone)]
pub struct Unavailable {
    /// `model_info.id`, else `<model_name>-<index>`.
    pub id: String,
    pub model_name: String,
    /// `litellm_params.model` as configured.
    pub model: String,
    /// The provider prefix (`sagemaker`), empty when the model has none.
    pub provider: String,
    pub reason: String,
}

impl Unavailable {
    fn new(index: usize, entry: &ModelEntry, provider: &str, reason: String) -> Self {
        Self {
            id: entry
                .model_info
                .id
                .clone()
                .unwrap_or_else(|| format!("{}-{index}", entry.model_name)),
            model_name: entry.model_name.clone(),
            model: entry.litellm_params.model.clone(),
            provider: provider.to_owned(),
            reason,
        }
    }
}

/// What an attempt reports back with its result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The deployment that produced the result (or the last error), in whichever group
    /// (the requested one or a fallback) it was.
    pub deployment: Arc<Deployment>,
    /// How many upstream attempts were made in all groups, 1 when the first succeeded.
    pub attempts: u32,
    /// Retries made in the group that produced the result.
    pub retries: u32,
    /// Fallback groups tried.
    pub fallbacks: u32,
    /// The retry budget of the group that produced the result.
    pub max_retries: u32,
}

/// A successful attempt's result that may keep its deployment busy after the attempt returned
/// (a stream, until its last chunk): it gets the in-flight slot to hold.
pub trait HoldsSlot {
    fn hold(&mut self, slot: InFlight) {
        drop(slot);
    }
}

pub struct Router {
    groups: FastMap<String, ModelGroup>,
    /// Wildcard routes, most specific first.
    patterns: Vec<Pattern>,
    matched: MatchedCache,
    /// `router_settings.model_group_alias`: alias → group.
    aliases: FastMap<String, String>,
    /// Public model names in config order (groups, wildcard routes, visible aliases), for
    /// `GET /v1/models`.
    order: Vec<String>,
    settings: BuildSettings,
    strategy: Strategy,
    cooldown: CooldownPolicy,
    /// `router_settings.retry_after`: the shortest wait before a retry.
    min_retry_wait: Duration,
    fallbacks: FallbackTables,
    /// `litellm_settings.drop_params`: kept with the routing table because it decides how a
    /// request is shaped for whichever deployment the router picks.
    drop_params: bool,
}

/// Where a group's run stands: its result, the deployment of that result, its retries.
struct GroupRun<T> {
    result: Result<T>,
    deployment: Option<Arc<Deployment>>,
    retries: u32,
    max_retries: u32,
}

impl Router {
    pub fn models(&self) -> &[String] {
        &self.order
    }

    /// The group configured under exactly this `model_name`.
    pub fn group(&self, model: &str) -> Option<&ModelGroup> {
        self.groups.get(model)
    }

    /// Every configured group (wildcard routes as configured), in config order.
    pub fn configured_groups(&self) -> impl Iterator<Item = &ModelGroup> {
        self.order.iter().filter_map(|name| {
            self.groups.get(name).or_else(|| {
                self.patterns
                    .iter()
                    .find(|p| p.group.name == *name)
                    .map(|p| &p.group)
            })
        })
    }

    /// Every configured deployment vaultgate cannot call.
    pub fn unavailable(&self) -> impl Iterator<Item = &Unavailable> {
        self.configured_groups().flat_map(|g| g.unavailable.iter())
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// `allowed_fails` and `cooldown_time` in force.
    pub fn cooldown_policy(&self) -> CooldownPolicy {
        self.cooldown
    }

    /// Whether params a provider cannot honour are dropped (else answered with a 400).
    pub fn drop_params(&self) -> bool {
        self.drop_params
    }

    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.configured_groups().flat_map(|g| g.deployments.iter())
    }

    /// Runs `attempt` on deployments of `group`: retries errors another try may fix on another
    /// deployment with backoff, up to the group's `num_retries` (or the request's); then follows
    /// the fallbacks that match the error (context window, content policy, or the general list;
    /// the request's lists replace the configured ones).
    pub async fn execute<T, F, Fut>(
        &self,
        group: &ModelGroup,
        request: &RequestRouting,
        mut attempt: F,
    ) -> (Result<T>, Option<Outcome>)
    where
        T: HoldsSlot,
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempts = 0;
        let mut run = self
            .run_group(group, request, true, &mut attempt, &mut attempts)
            .await;
        let mut fallbacks = 0;
        if let Err(error) = &run.result {
            let mut kind = classify(error);
            for target in self
                .fallbacks
                .targets(&group.fallback_names(), kind, request)
            {
                let Some(fallback) = self.resolve(target) else {
                    tracing::debug!(model = %target, "fallback to a model nobody routes: skipped");
                    continue;
                };
                if fallback.name == group.name {
                    continue;
                }
                tracing::info!(from = %group.name, to = %target, error = %run.result.as_ref().err().map(ToString::to_string).unwrap_or_default(), "falling back");
                metrics::counter!("vaultgate_fallbacks_total", "from" => group.name.clone(), "to" => target.clone())
                    .increment(1);
                fallbacks += 1;
                let next = self
                    .run_group(&fallback, request, false, &mut attempt, &mut attempts)
                    .await;
                let previous = run.deployment.take();
                run = GroupRun {
                    deployment: next.deployment.or(previous),
                    ..next
                };
                match &run.result {
                    Ok(_) => break,
                    Err(error) => {
                        kind = classify(error);
                        if !kind.falls_back() {
                            break;
                        }
                    }
                }
            }
        }
        let outcome = run.deployment.map(|deployment| Outcome {
            deployment,
            attempts,
            retries: run.retries,
            fallbacks,
            max_retries: run.max_retries,
        });
        (run.result, outcome)
    }

    /// One model group: pick, attempt, and retry within the group's budget. `requested` marks
    /// the client's own group (the only one the `mock_testing_*` failures apply to).
    async fn run_group<T, F, Fut>(
        &self,
        group: &ModelGroup,
        request: &RequestRouting,
        requested: bool,
        attempt: &mut F,
        attempts: &mut u32,
    ) -> GroupRun<T>
    where
        T: HoldsSlot,
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let max_retries = request.num_retries.unwrap_or(group.num_retries);
        let finished = |result, deployment, retries| GroupRun {
            result,
            deployment,
            retries,
            max_retries,
        };
        if group.deployments.is_empty() {
            return finished(Err(unavailable_group(group)), None, 0);
        }
        if let Some(region) = &request.allowed_region
            && !group.deployments.iter().any(|d| request.allows(d))
        {
            return finished(Err(no_deployment_in(group, region)), None, 0);
        }
        if let Some(refusal) = all_cooling(group, request) {
            return finished(Err(refusal), None, 0);
        }
        let mock = if requested {
            request.mock
        } else {
            MockFailures::default()
        };
        let mut tried: Vec<usize> = Vec::new();
        let mut retries = 0;
        loop {
            let Some(index) = self.choose(group, &mut tried, request) else {
                return finished(Err(unknown_model(&group.name)), None, retries);
            };
            let (Some(deployment), Some(state)) =
                (group.deployments.get(index), group.states.get(index))
            else {
                return finished(Err(unknown_model(&group.name)), None, retries);
            };
            let deployment = Arc::clone(deployment);
            *attempts += 1;
            let started = Instant::now();
            let result = {
                let slot = state.start();
                let result = match mock.failure(&group.name, retries) {
                    Some(error) => Err(error),
                    None => {
                        let timed = mock.timeout || deployment.mock_timeout;
                        self.bounded(&deployment, request.timeout, timed, &mut *attempt)
                            .await
                    }
                };
                result.map(|mut value| {
                    value.hold(slot);
                    value
                })
            };
            let elapsed = started.elapsed();
            let error = match result {
                Ok(value) => {
                    state.record_latency(elapsed);
                    return finished(Ok(value), Some(deployment), retries);
                }
                Err(error) => error,
            };
            let kind = classify(&error);
            if kind.is_deployment_failure() {
                self.note_failure(group, &deployment, state, elapsed);
            }
            tried.push(index);
            let another_left = tried.len() < group.deployments.len();
            let worth_retrying = match kind {
                FailureKind::Transient => true,
                // A refused provider key is this deployment's problem; another may work.
                FailureKind::DeploymentAuth => another_left,
                _ => false,
            };
            if !(worth_retrying && retries < max_retries) {
                return finished(Err(error), Some(deployment), retries);
            }
            retries += 1;
            metrics::counter!("vaultgate_retries_total", "model" => group.name.clone())
                .increment(1);
            let wait = backoff(retries, another_left).max(self.min_retry_wait);
            tracing::debug!(model = %group.name, deployment = %deployment.id, %error, ?wait, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt under the request's timeout; `mock_timeout` waits the timeout out instead of
    /// calling the upstream.
    async fn bounded<T, F, Fut>(
        &self,
        deployment: &Arc<Deployment>,
        timeout: Option<Duration>,
        mock_timeout: bool,
        attempt: &mut F,
    ) -> Result<T>
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let timed_out = |limit: Duration| {
            Error::UpstreamTimeout(format!(
                "deployment {}: no answer in {limit:?}",
                deployment.id
            ))
        };
        if mock_timeout {
            let limit = timeout.unwrap_or(deployment.timeout);
            tokio::time::sleep(limit).await;
            return Err(timed_out(limit));
        }
        match timeout {
            None => attempt(Arc::clone(deployment)).await,
            Some(limit) => tokio::time::timeout(limit, attempt(Arc::clone(deployment)))
                .await
                .unwrap_or_else(|_| Err(timed_out(limit))),
        }
    }

    fn note_failure(
        &self,
        group: &ModelGroup,
        deployment: &Deployment,
        state: &DeploymentState,
        elapsed: Duration,
    ) {
        if state.record_failure(&self.cooldown, Instant::now(), elapsed) {
            tracing::warn!(model = %group.name, deployment = %deployment.id,
                cooldown = ?self.cooldown.cooldown_time, "deployment failed too often; cooling down");
            metrics::counter!("vaultgate_deployment_cooldowns_total", "deployment" => deployment.id.clone())
                .increment(1);
        }
    }

    /// The next deployment to try: the strategy's pick among untried, healthy deployments.
    /// When every untried deployment is cooling down (during a request's retries, or in a group
    /// of one, which [`all_cooling`] never refuses), the one whose cooldown ends first is tried
    /// anyway. When every deployment was tried, the round starts over (the retry budget bounds it).
    /// Only deployments the request allows (its end user's region) are chosen.
    fn choose(
        &self,
        group: &ModelGroup,
        tried: &mut Vec<usize>,
        request: &RequestRouting,
    ) -> Option<usize> {
        let eligible = group
            .deployments
            .iter()
            .filter(|d| request.allows(d))
            .count();
        if eligible == 0 {
            return None;
        }
        if tried.len() >= eligible {
            tried.clear();
        }
        let now = Instant::now();
        let mut healthy = Vec::with_capacity(group.deployments.len());
        let mut soonest_back: Option<(Instant, usize)> = None;
        for (index, (deployment, state)) in group.deployments.iter().zip(&group.states).enumerate()
        {
            if tried.contains(&index) || !request.allows(deployment) {
                continue;
            }
            match state.cooling_until(now) {
                None => healthy.push(Candidate {
                    index,
                    deployment,
                    state,
                }),
                Some(until) => {
                    if soonest_back.is_none_or(|(best, _)| until < best) {
                        soonest_back = Some((until, index));
                    }
                }
            }
        }
        if healthy.is_empty() {
            return soonest_back.map(|(_, index)| index);
        }
        self.strategy
            .pick(&healthy, &group.cursor, &mut rand::rng())
    }
}

/// LiteLLM's `RouterRateLimitError` (429, with Retry-After) when every deployment of a group
/// the request may use is cooling down, so clients back off and fallbacks start. A group with
/// one such deployment is never refused: LiteLLM does not cool a group's only deployment down at
/// ordinary traffic, and refusing would turn its bad minute into a total outage.
fn all_cooling(group: &ModelGroup, request: &RequestRouting) -> Option<Error> {
    let now = Instant::now();
    let mut cooling = Vec::new();
    let mut soonest: Option<Instant> = None;
    for (deployment, state) in group.deployments.iter().zip(&group.states) {
        if !request.allows(deployment) {
            continue;
        }
        let until = state.cooling_until(now)?;
        soonest = Some(soonest.map_or(until, |s| s.min(until)));
        cooling.push(format!("'{}'", deployment.id));
    }
    if cooling.len() < 2 {
        return None;
    }
    let wait = soonest.map_or(1, |until| {
        let left = until.saturating_duration_since(now);
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    });
    metrics::counter!("vaultgate_no_deployments_available_total", "model" => group.name.clone())
        .increment(1);
    Some(Error::RateLimited {
        message: format!(
            "No deployments available for selected model, Try again in {wait} seconds. Passed \
             model={}. pre-call-checks=False, cooldown_list=[{}]",
            group.name,
            cooling.join(", ")
        ),
        retry_after: wait.max(1),
    })
}

/// The answer to a model nobody routes.
pub fn unknown_model(model: &str) -> Error {
    Error::bad_param(
        "model",
        format!(
            "Invalid model name passed in model={model}. Call `/v1/models` to view available models."
        ),
    )
}

/// A group whose every deployment uses a provider vaultgate cannot call.
/// No deployment of the group serves the end user's `allowed_model_region`.
fn no_deployment_in(group: &ModelGroup, region: &str) -> Error {
    Error::bad_param(
        "user",
        format!(
            "no deployment of model {} serves region '{region}' (the end user's \
             allowed_model_region); give one a litellm_params.region_name: {region}",
            group.name
        ),
    )
}

fn unavailable_group(group: &ModelGroup) -> Error {
    let detail = group
        .unavailable
        .first()
        .map(|u| format!(": deployment {} ({}): {}", u.id, u.model, u.reason))
        .unwrap_or_default();
    let providers: Vec<&str> = group
        .unavailable
        .iter()
        .map(|u| u.provider.as_str())
        .filter(|p| !p.is_empty())
        .collect();
    Error::NotImplemented(format!(
        "model {} is unavailable: vaultgate does not support its provider{} {}{detail}",
        group.name,
        if providers.len() == 1 { "" } else { "s" },
        providers.join(", ")
    ))
}

/// Exponential backoff with full jitter: up to 50 ms, 100 ms, 200 ms … capped at 2 s. Moving to
/// a deployment not tried yet waits only a short jitter: its capacity is not the one exhausted.
fn backoff(retry: u32, another_deployment: bool) -> Duration {
    let cap = if another_deployment {
        BASE_BACKOFF
    } else {
        BASE_BACKOFF
            .saturating_mul(1 << retry.min(6))
            .min(MAX_BACKOFF)
    };
    cap.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests;
