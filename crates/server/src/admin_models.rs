//! `GET /admin/models`: every deployment with its provider, health, cooldown, latency and the
//! recent error rate of its model group, for the admin console. Read from what the router and
//! the request metrics already keep: nothing is added to the request path for it.
//!
//! Error rates come from `vaultgate_requests_total` (per model group and status). Each call
//! keeps a sample; a rate is computed against the oldest sample of the last
//! [`RATE_WINDOW`], or since the start when there is none yet (`window_secs: null`).
//! An error is an answer of 429 or 5xx (client mistakes such as 400 and 401 are not the
//! model's).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use vaultgate_config::ConfigValue;
use vaultgate_router::{FAILURE_WINDOW, Strategy};

use crate::state::AppState;

/// How far back an error rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(300);
/// Calls closer together than this share one sample.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Requests and errors per model group, as counted since the start.
type Counts = HashMap<String, (u64, u64)>;

/// Samples of the request counters taken by calls of this route.
#[derive(Default)]
pub(crate) struct RateSamples {
    samples: Mutex<VecDeque<(Instant, Counts)>>,
}

impl RateSamples {
    /// Keeps `now`'s counts; gives the baseline to compare with (time and counts), if any.
    fn baseline(&self, now: Instant, counts: &Counts) -> Option<(Instant, Counts)> {
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while samples
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > RATE_WINDOW)
        {
            samples.pop_front();
        }
        let baseline = samples
            .front()
            .filter(|(at, _)| now.saturating_duration_since(*at) >= SAMPLE_EVERY)
            .cloned();
        if samples
            .back()
            .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= SAMPLE_EVERY)
        {
            samples.push_back((now, counts.clone()));
        }
        baseline
    }
}

/// `vaultgate_requests_total` from the Prometheus text: (total, errors) per model label.
fn request_counts(prometheus: &str) -> Counts {
    let mut counts = Counts::new();
    for line in prometheus.lines() {
        let Some(rest) = line.strip_prefix("vaultgate_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
            let end = labels[start..].find('"')? + start;
            Some(labels[start..end].to_owned())
        };
        let (Some(model), Some(status)) = (label("model"), label("status")) else {
            continue;
        };
        let status: u16 = status.parse().unwrap_or(0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let value = value.max(0.0) as u64;
        let entry = counts.entry(model).or_default();
        entry.0 += value;
        if status == 429 || status >= 500 {
            entry.1 += value;
        }
    }
    counts
}

fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::SimpleShuffle => "simple-shuffle",
        Strategy::LeastBusy => "least-busy",
        Strategy::LatencyBased => "latency-based-routing",
        Strategy::RoundRobin => "round-robin",
    }
}

/// A config value as the console may show it: a literal, or the name of its reference (the
/// resolved value of a reference may be a secret).
fn shown(value: Option<&ConfigValue>) -> Value {
    match value {
        None => Value::Null,
        Some(ConfigValue::Literal(text)) => Value::String(text.clone()),
        Some(ConfigValue::Reference(name)) => Value::String(format!("os.environ/{name}")),
        Some(ConfigValue::Vault(reference)) => Value::String(reference.to_string()),
    }
}

fn rate(total: u64, errors: u64) -> Value {
    #[allow(clippy::cast_precision_loss)]
    if total == 0 {
        Value::Null
    } else {
        json!(errors as f64 / total as f64)
    }
}

pub(crate) async fn models(State(app): State<std::sync::Arc<AppState>>) -> Json<Value> {
    let now = Instant::now();
    let counts = request_counts(&app.metrics.render());
    let baseline = app.rate_samples.baseline(now, &counts);
    let window_secs = baseline
        .as_ref()
        .map(|(at, _)| now.saturating_duration_since(*at).as_secs());
    let router = &app.router;
    let policy = router.cooldown_policy();
    let groups: Vec<Value> = router
        .models()
        .iter()
        .filter_map(|name| router.group(name))
        .map(|group| {
            let (total, errors) = counts.get(&group.name).copied().unwrap_or_default();
            let (before_total, before_errors) = baseline
                .as_ref()
                .and_then(|(_, b)| b.get(&group.name).copied())
                .unwrap_or_default();
            let recent_total = total.saturating_sub(before_total);
            let recent_errors = errors.saturating_sub(before_errors);
            let deployments: Vec<Value> = group
                .deployments
                .iter()
                .enumerate()
                .map(|(index, d)| {
                    let state = group.state(index);
                    let failures = state.map(|s| s.failures(now));
                    let cooldown = failures.and_then(|f| f.cooldown_until);
                    let in_window = failures.map_or(0, |f| f.in_window);
                    let latency = state.and_then(|s| s.latency());
                    let health = if d.mock_response.is_some() {
                        "mock"
                    } else if cooldown.is_some() {
                        "cooling_down"
                    } else if in_window > 0 {
                        "failing"
                    } else if latency.is_some() {
                        "healthy"
                    } else {
                        "unused"
                    };
                    json!({
                        "id": d.id,
                        "provider": d.provider.as_str(),
                        "upstream_model": d.upstream_model,
                        "api_base": shown(d.api_base.as_ref()),
                        "api_version": shown(d.api_version.as_ref()),
                        "api_key": match &d.api_key {
                            None => Value::Null,
                            Some(ConfigValue::Reference(name)) => json!(format!("os.environ/{name}")),
                            Some(ConfigValue::Vault(reference)) => json!(reference.to_string()),
                            Some(ConfigValue::Literal(_)) => json!("(literal in config)"),
                        },
                        "rpm": d.rpm,
                        "tpm": d.tpm,
                        "weight": d.weight,
                        "timeout_secs": d.timeout.as_secs_f64(),
                        "health": health,
                        "in_flight": state.map_or(0, |s| s.in_flight()),
                        "latency_ms": latency.map(|l| l.as_secs_f64() * 1000.0),
                        "failures_in_window": in_window,
                        "last_failure_secs_ago": failures
                            .and_then(|f| f.last_failure)
                            .map(|at| now.saturating_duration_since(at).as_secs()),
                        "cooldown_remaining_secs": cooldown
                            .map(|until| until.saturating_duration_since(now).as_secs_f64()),
                    })
                })
                .collect();
            json!({
                "model_name": group.name,
                "num_retries": group.num_retries(),
                "requests": {
                    "total": total,
                    "errors": errors,
                    "error_rate": rate(total, errors),
                    "recent_total": recent_total,
                    "recent_errors": recent_errors,
                    "recent_error_rate": rate(recent_total, recent_errors),
                },
                "deployments": deployments,
            })
        })
        .collect();
    Json(json!({
        "routing_strategy": strategy_name(router.strategy()),
        "allowed_fails": policy.allowed_fails,
        "cooldown_time_secs": policy.cooldown_time.as_secs_f64(),
        "failure_window_secs": FAILURE_WINDOW.as_secs(),
        "window_secs": window_secs,
        "models": groups,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_counts_are_read_from_the_prometheus_text() {
        let text = "# TYPE vaultgate_requests_total counter\n\
            vaultgate_requests_total{route=\"chat\",model=\"gpt-a\",status=\"200\"} 7\n\
            vaultgate_requests_total{route=\"chat\",model=\"gpt-a\",status=\"502\"} 2\n\
            vaultgate_requests_total{route=\"chat\",model=\"gpt-a\",status=\"429\"} 1\n\
            vaultgate_requests_total{route=\"chat\",model=\"gpt-a\",status=\"401\"} 4\n\
            vaultgate_requests_total{route=\"embeddings\",model=\"emb\",status=\"200\"} 3\n\
            vaultgate_requests_total_other{model=\"gpt-a\",status=\"500\"} 9\n\
            vaultgate_request_duration_seconds_count{model=\"gpt-a\"} 14\n";
        let counts = request_counts(text);
        assert_eq!(counts.get("gpt-a"), Some(&(14, 3)));
        assert_eq!(counts.get("emb"), Some(&(3, 0)));
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn a_rate_compares_with_the_oldest_sample_of_the_window() {
        let samples = RateSamples::default();
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let counts = |n| Counts::from([("m".to_owned(), (n, 0))]);
        assert!(samples.baseline(t0, &counts(1)).is_none());
        // Too soon after the first sample: no baseline yet, no new sample.
        assert!(samples.baseline(at(2), &counts(2)).is_none());
        assert_eq!(
            samples.baseline(at(10), &counts(3)).map(|b| b.1),
            Some(counts(1))
        );
        // Past the window the first sample is dropped; the one at 10 s is the baseline.
        assert_eq!(
            samples.baseline(at(305), &counts(9)).map(|b| b.1),
            Some(counts(3))
        );
    }
}
