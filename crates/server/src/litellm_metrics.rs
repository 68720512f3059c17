//! LiteLLM's Prometheus series, beside our `vaultgate_*` ones, so LiteLLM's dashboards and
//! alerts work unchanged: the names as LiteLLM's exporter shows them (counters with `_total`)
//! and its label names. Left out are the labels that would put personal data or unbounded
//! values into metrics (`user_email`, `client_ip`, `user_agent`); `hashed_api_key` is the
//! key's SHA-256, never the key.

use vaultgate_core::Error;
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

/// A request that got its answer.
pub(crate) fn succeeded(
    labels: &Labels<'_>,
    usage: Usage,
    cost: f64,
    total_latency: f64,
    llm_latency: Option<f64>,
) {
    let status = with(labels.of(PROXY_REQUESTS), "status_code", "200".into());
    metrics::counter!("litellm_proxy_total_requests_metric_total", &status).increment(1);
    let spend = labels.of(SPEND);
    metrics::counter!("litellm_requests_metric_total", &spend).increment(1);
    // USD is fractional: the `metrics` crate's counters count whole numbers, so this counter
    // is a gauge that only grows (Prometheus' rate() and increase() read it the same way).
    metrics::gauge!("litellm_spend_metric_total", &spend).increment(cost);
    let tokens = labels.of(TOKENS);
    let total = usage.prompt_tokens.saturating_add(usage.completion_tokens);
    metrics::counter!("litellm_total_tokens_metric_total", &tokens).increment(total);
    metrics::counter!("litellm_total_tokens_total", &tokens).increment(total);
    metrics::counter!("litellm_input_tokens_metric_total", &tokens).increment(usage.prompt_tokens);
    metrics::counter!("litellm_output_tokens_metric_total", &tokens)
        .increment(usage.completion_tokens);
    let latency = labels.of(LATENCY);
    metrics::histogram!("litellm_request_total_latency_metric", &latency).record(total_latency);
    if let Some(seconds) = llm_latency {
        metrics::histogram!("litellm_llm_api_latency_metric", &latency).record(seconds);
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
    let key_labels = labels.of(&["hashed_api_key", "api_key_alias"]);
    let remaining = |b: Option<(f64, f64)>| b.map_or(f64::INFINITY, |(max, spend)| max - spend);
    metrics::gauge!("litellm_remaining_api_key_budget_metric", &key_labels).set(remaining(key));
    if let Some((max, _)) = key {
        metrics::gauge!("litellm_api_key_max_budget_metric", &key_labels).set(max);
    }
    if !labels.team.is_empty() {
        let team_labels = labels.of(&["team", "team_alias"]);
        metrics::gauge!("litellm_remaining_team_budget_metric", &team_labels).set(remaining(team));
        if let Some((max, _)) = team {
            metrics::gauge!("litellm_team_max_budget_metric", &team_labels).set(max);
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
