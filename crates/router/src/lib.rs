//! Which deployment serves a request, and what happens when it fails: routing strategies,
//! retries with backoff, cooldowns of failing deployments, and fallbacks to other model groups.
//!
//! The caller's `attempt` resolves before any byte reaches the client (streams resolve at their
//! first chunk), so everything here may freely retry or fall back.

mod classify;
mod health;
mod select;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use vaultgate_config::{Config, Fallbacks};
use vaultgate_core::{Error, FastMap, Result};
use vaultgate_providers::Deployment;

pub use classify::{FailureKind, classify, retryable};
pub use health::{CooldownPolicy, DeploymentState, InFlight};
pub use select::Strategy;

use select::Candidate;

/// The key of a fallback list that applies to every model group without its own (LiteLLM's).
const ANY_MODEL: &str = "*";
/// Longest wait between two retries, whatever the attempt count.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// First backoff step; doubles per retry.
const BASE_BACKOFF: Duration = Duration::from_millis(50);

/// All deployments sharing one public `model_name`.
pub struct ModelGroup {
    pub name: String,
    pub deployments: Vec<Arc<Deployment>>,
    states: Vec<DeploymentState>,
    cursor: AtomicUsize,
    /// Retries after the first attempt before the group gives up (and fallbacks start).
    num_retries: u32,
}

impl ModelGroup {
    pub fn num_retries(&self) -> u32 {
        self.num_retries
    }

    /// Live statistics of the deployment at `index`.
    pub fn state(&self, index: usize) -> Option<&DeploymentState> {
        self.states.get(index)
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
}

/// The three fallback tables of `router_settings`, keyed by model group.
#[derive(Debug, Default)]
struct FallbackTables {
    general: FastMap<String, Vec<String>>,
    context_window: FastMap<String, Vec<String>>,
    content_policy: FastMap<String, Vec<String>>,
}

fn table(lists: &Fallbacks) -> FastMap<String, Vec<String>> {
    let mut out: FastMap<String, Vec<String>> = FastMap::default();
    for entry in lists {
        for (model, targets) in entry {
            out.entry(model.clone())
                .or_default()
                .extend(targets.iter().cloned());
        }
    }
    out
}

pub struct Router {
    groups: FastMap<String, ModelGroup>,
    /// Public model names in config order, for `GET /v1/models`.
    order: Vec<String>,
    strategy: Strategy,
    cooldown: CooldownPolicy,
    /// `router_settings.retry_after`: the shortest wait before a retry.
    min_retry_wait: Duration,
    fallbacks: FallbackTables,
    /// `litellm_settings.drop_params`: kept with the routing table because it decides how a
    /// request is shaped for whichever deployment the router picks.
    drop_params: bool,
}

impl Router {
    pub fn from_config(config: &Config) -> Result<Self> {
        let settings = &config.router_settings;
        let default_timeout = settings.timeout.or(config.litellm_settings.request_timeout);
        let configured_retries = settings.num_retries.or(config.litellm_settings.num_retries);
        let mut groups: FastMap<String, ModelGroup> = FastMap::default();
        let mut order = Vec::new();
        for (index, entry) in config.model_list.iter().enumerate() {
            let deployment = Arc::new(Deployment::from_config(
                index,
                entry,
                default_timeout,
                settings.stream_timeout,
            )?);
            let group = groups.entry(entry.model_name.clone()).or_insert_with(|| {
                order.push(entry.model_name.clone());
                ModelGroup {
                    name: entry.model_name.clone(),
                    deployments: Vec::new(),
                    states: Vec::new(),
                    cursor: AtomicUsize::new(0),
                    num_retries: 0,
                }
            });
            group.deployments.push(deployment);
            group.states.push(DeploymentState::default());
        }
        for group in groups.values_mut() {
            // Router and LiteLLM settings win; else the most any deployment asks for.
            group.num_retries = configured_retries.unwrap_or_else(|| {
                group
                    .deployments
                    .iter()
                    .filter_map(|d| d.max_retries)
                    .max()
                    .unwrap_or(0)
            });
        }
        let strategy = match settings.routing_strategy.as_deref() {
            // LiteLLM strategies we do not implement: a LiteLLM config must still start.
            Some(
                name @ ("usage-based-routing" | "usage-based-routing-v2" | "cost-based-routing"),
            ) => {
                tracing::warn!(
                    strategy = name,
                    "router_settings.routing_strategy is not implemented; using simple-shuffle"
                );
                Strategy::default()
            }
            Some(name) => name.parse()?,
            None => Strategy::default(),
        };
        let defaults = CooldownPolicy::default();
        let cooldown_time = match settings.cooldown_time {
            Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                Duration::from_secs_f64(seconds)
            }
            Some(_) => {
                return Err(Error::Config(
                    "router_settings.cooldown_time must be a non-negative number".into(),
                ));
            }
            None => defaults.cooldown_time,
        };
        let min_retry_wait = match settings.retry_after {
            Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                Duration::from_secs_f64(seconds)
            }
            Some(_) => {
                return Err(Error::Config(
                    "router_settings.retry_after must be a non-negative number".into(),
                ));
            }
            None => Duration::ZERO,
        };
        let fallbacks = FallbackTables {
            general: table(&settings.fallbacks),
            context_window: table(&settings.context_window_fallbacks),
            content_policy: table(&settings.content_policy_fallbacks),
        };
        for (kind, table) in [
            ("fallbacks", &fallbacks.general),
            ("context_window_fallbacks", &fallbacks.context_window),
            ("content_policy_fallbacks", &fallbacks.content_policy),
        ] {
            for (from, targets) in table {
                if from != ANY_MODEL && !groups.contains_key(from) {
                    tracing::warn!(model = %from, "router_settings.{kind}: no model group of that name");
                }
                for target in targets.iter().filter(|t| !groups.contains_key(*t)) {
                    tracing::warn!(model = %target, "router_settings.{kind}: fallback to a model group that does not exist; it will be skipped");
                }
            }
        }
        Ok(Self {
            groups,
            order,
            strategy,
            cooldown: CooldownPolicy {
                allowed_fails: settings.allowed_fails.unwrap_or(defaults.allowed_fails),
                cooldown_time,
            },
            min_retry_wait,
            fallbacks,
            drop_params: config.litellm_settings.drop_params,
        })
    }

    pub fn models(&self) -> &[String] {
        &self.order
    }

    pub fn group(&self, model: &str) -> Option<&ModelGroup> {
        self.groups.get(model)
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Whether params a provider cannot honour are dropped (else answered with a 400).
    pub fn drop_params(&self) -> bool {
        self.drop_params
    }

    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.order
            .iter()
            .filter_map(|name| self.groups.get(name))
            .flat_map(|g| g.deployments.iter())
    }

    /// Counts a stream as in flight on its deployment until the guard drops (least-busy routing
    /// sees a long stream as busy for its whole life, not only until its first chunk).
    pub fn stream_slot(&self, deployment: &Deployment) -> Option<InFlight> {
        let group = self.groups.get(&deployment.model_name)?;
        let index = group
            .deployments
            .iter()
            .position(|d| std::ptr::eq(Arc::as_ptr(d), deployment))?;
        group.states.get(index).map(DeploymentState::start)
    }

    /// Runs `attempt` on deployments of `model`: retries errors another try may fix on another
    /// deployment with backoff, up to the group's `num_retries`; then follows the fallbacks
    /// that match the error (context window, content policy, or the general list).
    pub async fn execute<T, F, Fut>(
        &self,
        model: &str,
        mut attempt: F,
    ) -> (Result<T>, Option<Outcome>)
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let Some(group) = self.groups.get(model) else {
            return (Err(unknown_model(model)), None);
        };
        let mut attempts = 0;
        let (mut result, mut last) = self.run_group(group, &mut attempt, &mut attempts).await;
        let Err(error) = &result else {
            return (result, outcome(last, attempts));
        };
        let mut kind = classify(error);
        for target in self.fallback_targets(model, kind) {
            let Some(fallback) = self.groups.get(target) else {
                continue;
            };
            tracing::info!(from = model, to = target, error = %result.as_ref().err().map(ToString::to_string).unwrap_or_default(), "falling back");
            metrics::counter!("vaultgate_fallbacks_total", "from" => model.to_owned(), "to" => target.clone())
                .increment(1);
            let (next, deployment) = self.run_group(fallback, &mut attempt, &mut attempts).await;
            result = next;
            last = deployment.or(last);
            match &result {
                Ok(_) => break,
                Err(error) => {
                    kind = classify(error);
                    if !kind.falls_back() {
                        break;
                    }
                }
            }
        }
        (result, outcome(last, attempts))
    }

    /// The fallback groups for an error of `kind` from `model`, in order.
    fn fallback_targets(&self, model: &str, kind: FailureKind) -> &[String] {
        if !kind.falls_back() {
            return &[];
        }
        let specific = match kind {
            FailureKind::ContextWindow => lookup(&self.fallbacks.context_window, model),
            FailureKind::ContentPolicy => lookup(&self.fallbacks.content_policy, model),
            _ => None,
        };
        specific
            .or_else(|| lookup(&self.fallbacks.general, model))
            .unwrap_or_default()
    }

    /// One model group: pick, attempt, and retry within the group's budget.
    async fn run_group<T, F, Fut>(
        &self,
        group: &ModelGroup,
        attempt: &mut F,
        attempts: &mut u32,
    ) -> (Result<T>, Option<Arc<Deployment>>)
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut tried: Vec<usize> = Vec::new();
        let mut retries = 0;
        loop {
            let Some(index) = self.choose(group, &mut tried) else {
                return (Err(unknown_model(&group.name)), None);
            };
            let (Some(deployment), Some(state)) =
                (group.deployments.get(index), group.states.get(index))
            else {
                return (Err(unknown_model(&group.name)), None);
            };
            let deployment = Arc::clone(deployment);
            *attempts += 1;
            let started = Instant::now();
            let result = {
                let _slot = state.start();
                attempt(Arc::clone(&deployment)).await
            };
            let elapsed = started.elapsed();
            let error = match result {
                Ok(value) => {
                    state.record_latency(elapsed);
                    return (Ok(value), Some(deployment));
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
            if !(worth_retrying && retries < group.num_retries) {
                return (Err(error), Some(deployment));
            }
            retries += 1;
            metrics::counter!("vaultgate_retries_total", "model" => group.name.clone())
                .increment(1);
            let wait = backoff(retries, another_left).max(self.min_retry_wait);
            tracing::debug!(model = %group.name, deployment = %deployment.id, %error, ?wait, "retrying");
            tokio::time::sleep(wait).await;
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
    /// When every untried deployment is cooling down, the one whose cooldown ends first is
    /// tried anyway: a cooled-down deployment may well answer, while refusing would turn a
    /// partial outage (or a single-deployment group's bad minute) into a total one.
    /// When every deployment was tried, the round starts over (the retry budget bounds it).
    fn choose(&self, group: &ModelGroup, tried: &mut Vec<usize>) -> Option<usize> {
        if tried.len() >= group.deployments.len() {
            tried.clear();
        }
        let now = Instant::now();
        let mut healthy = Vec::with_capacity(group.deployments.len());
        let mut soonest_back: Option<(Instant, usize)> = None;
        for (index, (deployment, state)) in group.deployments.iter().zip(&group.states).enumerate()
        {
            if tried.contains(&index) {
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

/// The fallback list of `model` in `table`, else the `*` list.
fn lookup<'t>(table: &'t FastMap<String, Vec<String>>, model: &str) -> Option<&'t [String]> {
    table
        .get(model)
        .or_else(|| table.get(ANY_MODEL))
        .map(Vec::as_slice)
}

fn outcome(deployment: Option<Arc<Deployment>>, attempts: u32) -> Option<Outcome> {
    deployment.map(|deployment| Outcome {
        deployment,
        attempts,
    })
}

fn unknown_model(model: &str) -> Error {
    Error::bad_param(
        "model",
        format!(
            "Invalid model name passed in model={model}. Call `/v1/models` to view available models."
        ),
    )
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
