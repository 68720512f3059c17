//! LiteLLM's Prometheus series, beside our `vaultgate_*` ones, so LiteLLM's dashboards and
//! alerts work unchanged: the names as LiteLLM's exporter shows them (counters with `_total`)
//! and its label names. Left out are the labels that would put personal data or unbounded
//! values into metrics (`user_email`, `client_ip`, `user_agent`); `hashed_api_key` is the
//! key's SHA-256, never the key.

use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock, OnceLock, RwLock};

use metrics::{Counter, Gauge, Histogram};
use vaultgate_core::{Error, FastHashState, FastMap};
use vaultgate_keys::Admission;
use vaultgate_providers::Usage;

use crate::spend_log::error_class;
use crate::state::AppState;

/// LiteLLM's latency buckets (seconds), for its two latency histograms.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 420.0,
    600.0,
];

/// The label values of one request.
pub(crate) struct Labels<'a> {
    pub end_user: &'a str,
    pub hashed_api_key: &'a str,
    pub api_key_alias: &'a str,
    pub team: &'a str,
    pub team_alias: &'a str,
    pub user: &'a str,
    pub requested_model: &'a str,
    /// The model the deployment calls (LiteLLM's `model` label).
    pub model: &'a str,
    pub model_id: &'a str,
    pub api_provider: &'a str,
}

type Pairs = Vec<(&'static str, String)>;

impl Labels<'_> {
    fn of(&self, names: &[&'static str]) -> Pairs {
        names
            .iter()
            .map(|name| {
                let value = match *name {
                    "end_user" => self.end_user,
                    "hashed_api_key" => self.hashed_api_key,
                    "api_key_alias" => self.api_key_alias,
                    "team" => self.team,
                    "team_alias" => self.team_alias,
                    "user" => self.user,
                    "requested_model" => self.requested_model,
                    "model" => self.model,
                    "model_id" => self.model_id,
                    "api_provider" => self.api_provider,
                    _ => "",
                };
                (*name, value.to_owned())
            })
            .collect()
    }
}

const PROXY_REQUESTS: &[&str] = &[
    "end_user",
    "hashed_api_key",
    "api_key_alias",
    "requested_model",
    "team",
    "team_alias",
    "user",
];
const SPEND: &[&str] = &[
    "end_user",
    "hashed_api_key",
    "api_key_alias",
    "model",
    "team",
    "team_alias",
    "user",
    "model_id",
    "api_provider",
];
const TOKENS: &[&str] = &[
    "end_user",
    "hashed_api_key",
    "api_key_alias",
    "model",
    "team",
    "team_alias",
    "user",
    "requested_model",
    "model_id",
];
const LATENCY: &[&str] = &[
    "end_user",
    "hashed_api_key",
    "api_key_alias",
    "requested_model",
    "team",
    "team_alias",
    "user",
    "model",
    "model_id",
];

fn with(mut pairs: Pairs, name: &'static str, value: String) -> Pairs {
    pairs.push((name, value));
    pairs
}

/// Label sets whose handles are kept; past that the cache starts over (the series stay in the
/// registry, only their handles are looked up again). Bounds what clients' `user` values cost.
const CACHED_LABEL_SETS: usize = 4_096;

/// The handles of one label set's series, each registered on its first use: building the label
/// pairs and looking them up in the registry cost more than the rest of a request's accounting
/// (about forty allocations and the hashing of nine labels, a dozen times).
#[derive(Default)]
struct Series {
    proxy_requests: OnceLock<Counter>,
    requests: OnceLock<Counter>,
    spend: OnceLock<Gauge>,
    total_tokens_metric: OnceLock<Counter>,
    total_tokens: OnceLock<Counter>,
    input_tokens: OnceLock<Counter>,
    output_tokens: OnceLock<Counter>,
    total_latency: OnceLock<Histogram>,
    llm_latency: OnceLock<Histogram>,
    key_remaining: OnceLock<Gauge>,
    key_max: OnceLock<Gauge>,
    team_remaining: OnceLock<Gauge>,
    team_max: OnceLock<Gauge>,
}

type LabelValues = [Box<str>; 10];
/// Label sets sharing one hash (nearly always one).
type SameHash = Vec<(LabelValues, Arc<Series>)>;

/// Label sets by the hash of their values, each with its handles.
#[derive(Default)]
struct SeriesCache {
    hasher: FastHashState,
    by_hash: RwLock<FastMap<u64, SameHash>>,
}

static CACHE: LazyLock<SeriesCache> = LazyLock::new(SeriesCache::default);

impl Labels<'_> {
    fn values(&self) -> [&str; 10] {
        [
            self.end_user,
            self.hashed_api_key,
            self.api_key_alias,
            self.team,
            self.team_alias,
            self.user,
            self.requested_model,
            self.model,
            self.model_id,
            self.api_provider,
        ]
    }

    /// The handles of this label set.
    fn series(&self) -> Arc<Series> {
        let values = self.values();
        let hash = CACHE.hasher.hash_one(values);
        let same = |(kept, _): &&(LabelValues, Arc<Series>)| {
            kept.iter().map(|v| &**v).eq(values.iter().copied())
        };
        if let Ok(map) = CACHE.by_hash.read()
            && let Some((_, series)) = map.get(&hash).and_then(|list| list.iter().find(same))
        {
            return Arc::clone(series);
        }
        let Ok(mut map) = CACHE.by_hash.write() else {
            return Arc::default();
        };
        if let Some((_, series)) = map.get(&hash).and_then(|list| list.iter().find(same)) {
            return Arc::clone(series);
        }
        if map.len() >= CACHED_LABEL_SETS {
            map.clear();
        }
        let series = Arc::<Series>::default();
        map.entry(hash)
            .or_default()
            .push((values.map(Box::from), Arc::clone(&series)));
        series
    }
}

fn counter<'c>(
    cell: &'c OnceLock<Counter>,
    labels: &Labels<'_>,
    name: &'static str,
    names: &[&'static str],
) -> &'c Counter {
    cell.get_or_init(|| metrics::counter!(name, &labels.of(names)))
}

fn gauge<'c>(
    cell: &'c OnceLock<Gauge>,
    labels: &Labels<'_>,
    name: &'static str,
    names: &[&'static str],
) -> &'c Gauge {
    cell.get_or_init(|| metrics::gauge!(name, &labels.of(names)))
}

/// A request that got its answer.
pub(crate) fn succeeded(
    labels: &Labels<'_>,
    usage: Usage,
    cost: f64,
    total_latency: f64,
    llm_latency: Option<f64>,
) {
    let series = labels.series();
    let counter = |cell, name, names| counter(cell, labels, name, names);
    let histogram = |cell: &OnceLock<Histogram>, name: &'static str, value: f64| {
        cell.get_or_init(|| metrics::histogram!(name, &labels.of(LATENCY)))
            .record(value);
    };
    series
        .proxy_requests
        .get_or_init(|| {
            let status = with(labels.of(PROXY_REQUESTS), "status_code", "200".into());
            metrics::counter!("litellm_proxy_total_requests_metric_total", &status)
        })
        .increment(1);
    counter(&series.requests, "litellm_requests_metric_total", SPEND).increment(1);
    // USD is fractional: the `metrics` crate's counters count whole numbers, so this counter
    // is a gauge that only grows (Prometheus' rate() and increase() read it the same way).
    series
        .spend
        .get_or_init(|| metrics::gauge!("litellm_spend_metric_total", &labels.of(SPEND)))
        .increment(cost);
    let total = usage.prompt_tokens.saturating_add(usage.completion_tokens);
    let tokens = |cell, name| counter(cell, name, TOKENS);
    tokens(
        &series.total_tokens_metric,
        "litellm_total_tokens_metric_total",
    )
    .increment(total);
    tokens(&series.total_tokens, "litellm_total_tokens_total").increment(total);
    tokens(&series.input_tokens, "litellm_input_tokens_metric_total")
        .increment(usage.prompt_tokens);
    tokens(&series.output_tokens, "litellm_output_tokens_metric_total")
        .increment(usage.completion_tokens);
    histogram(
        &series.total_latency,
        "litellm_request_total_latency_metric",
        total_latency,
    );
    if let Some(seconds) = llm_latency {
        histogram(
            &series.llm_latency,
            "litellm_llm_api_latency_metric",
            seconds,
        );
    }
}

/// A request that ended in an error (ours or the upstream's).
pub(crate) fn failed(labels: &Labels<'_>, error: &Error, total_latency: f64) {
    let code = error.status().as_u16().to_string();
    let status = with(labels.of(PROXY_REQUESTS), "status_code", code.clone());
    metrics::counter!("litellm_proxy_total_requests_metric_total", &status).increment(1);
    let failed = with(
        with(labels.of(PROXY_REQUESTS), "exception_status", code),
        "exception_class",
        error_class(error).to_owned(),
    );
    metrics::counter!("litellm_proxy_failed_requests_metric_total", &failed).increment(1);
    let latency = labels.of(LATENCY);
    metrics::histogram!("litellm_request_total_latency_metric", &latency).record(total_latency);
}

/// The key's and its team's remaining and maximum budget after a request.
pub(crate) fn budgets(labels: &Labels<'_>, admission: &Admission) {
    let (key, team) = admission.budgets();
    let series = labels.series();
    let gauge = |cell, name, names| gauge(cell, labels, name, names);
    const KEY: &[&str] = &["hashed_api_key", "api_key_alias"];
    const TEAM: &[&str] = &["team", "team_alias"];
    let remaining = |b: Option<(f64, f64)>| b.map_or(f64::INFINITY, |(max, spend)| max - spend);
    gauge(
        &series.key_remaining,
        "litellm_remaining_api_key_budget_metric",
        KEY,
    )
    .set(remaining(key));
    if let Some((max, _)) = key {
        gauge(&series.key_max, "litellm_api_key_max_budget_metric", KEY).set(max);
    }
    if !labels.team.is_empty() {
        gauge(
            &series.team_remaining,
            "litellm_remaining_team_budget_metric",
            TEAM,
        )
        .set(remaining(team));
        if let Some((max, _)) = team {
            gauge(&series.team_max, "litellm_team_max_budget_metric", TEAM).set(max);
        }
    }
}

/// `litellm_deployment_state` of every deployment (0 healthy, 1 failing lately, 2 cooling
/// down), refreshed when `/metrics` is scraped.
pub(crate) fn deployment_states(app: &AppState) {
    let now = std::time::Instant::now();
    for group in app.router.configured_groups() {
        for (index, deployment) in group.deployments.iter().enumerate() {
            let Some(state) = group.state(index) else {
                continue;
            };
            let failures = state.failures(now);
            let value = if failures.cooldown_until.is_some_and(|until| until > now) {
                2.0
            } else if failures.in_window > 0 {
                1.0
            } else {
                0.0
            };
            let labels = [
                ("litellm_model_name", deployment.upstream_model.clone()),
                ("model_id", deployment.id.clone()),
                (
                    "api_base",
                    crate::spend_log::api_base_of(&app.secrets, deployment),
                ),
                ("api_provider", deployment.spec.prefix.to_owned()),
            ];
            metrics::gauge!("litellm_deployment_state", &labels).set(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(end_user: &str) -> Labels<'_> {
        Labels {
            end_user,
            hashed_api_key: "a1b2",
            api_key_alias: "alias",
            team: "",
            team_alias: "",
            user: "",
            requested_model: "gpt-4o",
            model: "gpt-4o",
            model_id: "d1",
            api_provider: "openai",
        }
    }

    #[test]
    fn a_label_set_keeps_its_handles_and_another_gets_its_own() {
        let first = labels("cache-test-1").series();
        assert!(Arc::ptr_eq(&first, &labels("cache-test-1").series()));
        assert!(!Arc::ptr_eq(&first, &labels("cache-test-2").series()));
    }
}
