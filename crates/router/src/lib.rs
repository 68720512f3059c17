//! Which deployment serves a request, and what happens when it fails.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use vaultgate_config::Config;
use vaultgate_core::{Error, Result};
use vaultgate_providers::Deployment;

/// All deployments sharing one public `model_name`.
pub struct ModelGroup {
    pub name: String,
    pub deployments: Vec<Arc<Deployment>>,
    cursor: AtomicUsize,
}

impl ModelGroup {
    /// Round-robin over the group's deployments.
    fn next(&self, skip: &[usize]) -> Option<usize> {
        let count = self.deployments.len();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|offset| (start + offset) % count)
            .find(|index| !skip.contains(index))
    }
}

/// What an attempt reports back with its result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The deployment that produced the result (or the last error).
    pub deployment: Arc<Deployment>,
    /// How many upstream attempts were made, 1 when the first succeeded.
    pub attempts: u32,
}

pub struct Router {
    groups: HashMap<String, ModelGroup>,
    /// Public model names in config order, for `GET /v1/models`.
    order: Vec<String>,
    num_retries: u32,
}

impl Router {
    pub fn from_config(config: &Config) -> Result<Self> {
        let default_timeout = config
            .router_settings
            .timeout
            .or(config.litellm_settings.request_timeout);
        let mut groups: HashMap<String, ModelGroup> = HashMap::new();
        let mut order = Vec::new();
        for (index, entry) in config.model_list.iter().enumerate() {
            let deployment = Arc::new(Deployment::from_config(
                index,
                entry,
                default_timeout,
                config.router_settings.stream_timeout,
            )?);
            let group = groups.entry(entry.model_name.clone()).or_insert_with(|| {
                order.push(entry.model_name.clone());
                ModelGroup {
                    name: entry.model_name.clone(),
                    deployments: Vec::new(),
                    cursor: AtomicUsize::new(0),
                }
            });
            group.deployments.push(deployment);
        }
        let num_retries = config
            .router_settings
            .num_retries
            .or(config.litellm_settings.num_retries)
            .unwrap_or(0);
        Ok(Self {
            groups,
            order,
            num_retries,
        })
    }

    pub fn models(&self) -> &[String] {
        &self.order
    }

    pub fn group(&self, model: &str) -> Option<&ModelGroup> {
        self.groups.get(model)
    }

    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.order
            .iter()
            .filter_map(|name| self.groups.get(name))
            .flat_map(|g| g.deployments.iter())
    }

    /// Runs `attempt` on a deployment of `model`, retrying failures that another try may fix
    /// (connect errors, timeouts, 429, 5xx) on the next deployment, up to `num_retries` times.
    /// `attempt` must resolve before any byte reaches the client, so a retry is always safe.
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
        let mut tried: Vec<usize> = Vec::new();
        let mut attempts = 0;
        loop {
            let index = match group.next(&tried) {
                Some(index) => index,
                // Every deployment failed once: start over, the retry budget still bounds us.
                None => {
                    tried.clear();
                    match group.next(&tried) {
                        Some(index) => index,
                        None => return (Err(unknown_model(model)), None),
                    }
                }
            };
            let deployment = Arc::clone(&group.deployments[index]);
            attempts += 1;
            let result = attempt(Arc::clone(&deployment)).await;
            let outcome = Outcome {
                deployment,
                attempts,
            };
            match result {
                Err(error) if attempts <= self.num_retries && retryable(&error) => {
                    tracing::debug!(model, deployment = %outcome.deployment.id, %error, "retrying");
                    tried.push(index);
                    tokio::time::sleep(backoff(attempts)).await;
                }
                result => return (result, Some(outcome)),
            }
        }
    }
}

fn unknown_model(model: &str) -> Error {
    Error::bad_param(
        "model",
        format!(
            "Invalid model name passed in model={model}. Call `/v1/models` to view available models."
        ),
    )
}

/// Whether another attempt may succeed where this one failed.
pub fn retryable(error: &Error) -> bool {
    match error {
        Error::UpstreamUnreachable(_) | Error::UpstreamTimeout(_) => true,
        Error::Upstream { status, .. } => {
            *status == http::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
        }
        _ => false,
    }
}

/// Exponential backoff with full jitter: up to 50 ms, 100 ms, 200 ms … capped at 2 s.
fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(50u64.saturating_mul(1 << attempt.min(6)))
        .min(Duration::from_secs(2));
    cap.mul_f64(rand::random::<f64>())
}
