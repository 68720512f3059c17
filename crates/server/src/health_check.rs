//! LiteLLM's `GET /health` (master key only): one small real call per configured deployment
//! (a chat completion of at most one token, an embedding for embedding models, a one-token
//! completion for completion models), a few at a time and each under a timeout, sorted into
//! `healthy_endpoints` and `unhealthy_endpoints` (with the error). Each endpoint is shown by its
//! `litellm_params` without secrets, as `/model/info` shows them. The checks go straight to the
//! deployment: they are not charged to a key and do not move the router's cooldowns.
//!
//! Deployments vaultgate cannot call are unhealthy with the reason; wildcard routes are not
//! checked (there is no model name to ask for), as in LiteLLM.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use vaultgate_core::{Error, Result};
use vaultgate_providers::{ChatBody, Deployment, Endpoint};

use crate::auth::Principal;
use crate::model_info::Entry;
use crate::request_params::RequestParams;
use crate::state::AppState;
use crate::upstream::{Reply, attempt};

/// Checks running at once.
const PARALLEL_CHECKS: usize = 8;
/// Longest wait for one deployment's answer (LiteLLM's default health-check timeout); a
/// deployment's own shorter `timeout` wins.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Deserialize, Default)]
pub(crate) struct HealthQuery {
    /// Check only the deployments of this model name.
    model: Option<String>,
    /// Check only the deployment with this id.
    model_id: Option<String>,
}

/// What to do for one listed deployment.
enum Job<'a> {
    Call(&'a Entry, Arc<Deployment>),
    Known(&'a Entry, String),
}

pub(crate) async fn health(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HealthQuery>,
) -> Result<Json<Value>> {
    if let Principal::Virtual(_) = app.authenticate(&headers).await? {
        return Err(Error::Unauthorized(
            "Authentication Error, /health takes the master key".into(),
        ));
    }
    let router = &app.router;
    let deployments: HashMap<&str, &Arc<Deployment>> =
        router.deployments().map(|d| (d.id.as_str(), d)).collect();
    let unavailable: HashMap<&str, &str> = router
        .unavailable()
        .map(|u| (u.id.as_str(), u.reason.as_str()))
        .collect();
    let jobs: Vec<Job<'_>> = app
        .catalog
        .entries()
        .iter()
        .filter(|e| !e.model_name.contains('*'))
        .filter(|e| query.model.as_ref().is_none_or(|m| *m == e.model_name))
        .filter(|e| query.model_id.as_ref().is_none_or(|id| *id == e.id))
        .map(|e| {
            match (
                unavailable.get(e.id.as_str()),
                deployments.get(e.id.as_str()),
            ) {
                (Some(reason), _) => Job::Known(
                    e,
                    format!("vaultgate cannot call this deployment: {reason}"),
                ),
                (None, Some(deployment)) => Job::Call(e, Arc::clone(deployment)),
                (None, None) => Job::Known(e, "the deployment is not loaded".into()),
            }
        })
        .collect();
    let app = &*app;
    // The futures are made first: a mapping closure inside the stream would not be `Send` for
    // every lifetime, as axum needs.
    let checks: Vec<_> = jobs
        .into_iter()
        .map(|job| async move {
            match job {
                Job::Call(entry, deployment) => (entry, check(app, entry.mode, deployment).await),
                Job::Known(entry, error) => (entry, Err(error)),
            }
        })
        .collect();
    let results: Vec<(&Entry, std::result::Result<(), String>)> = stream::iter(checks)
        .buffered(PARALLEL_CHECKS)
        .collect()
        .await;
    let mut healthy = Vec::new();
    let mut unhealthy = Vec::new();
    for (entry, result) in results {
        let mut shown = entry.item["litellm_params"].clone();
        if let Some(fields) = shown.as_object_mut() {
            fields.insert("model_id".into(), json!(entry.id));
            match result {
                Ok(()) => healthy.push(shown),
                Err(error) => {
                    fields.insert("error".into(), json!(error));
                    unhealthy.push(shown);
                }
            }
        }
    }
    Ok(Json(json!({
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
        "healthy_count": healthy.len(),
        "unhealthy_count": unhealthy.len(),
    })))
}

/// One small call to `deployment` in its mode; the error as LiteLLM words it.
async fn check(
    app: &AppState,
    mode: &str,
    deployment: Arc<Deployment>,
) -> std::result::Result<(), String> {
    let model = &deployment.model_name;
    let (endpoint, body) = match mode {
        "embedding" => (
            Endpoint::Embeddings,
            json!({"model": model, "input": "ping"}),
        ),
        "completion" => (
            Endpoint::Completions,
            json!({"model": model, "prompt": "ping", "max_tokens": 1}),
        ),
        "chat" => (
            Endpoint::ChatCompletions,
            json!({"model": model, "messages": [{"role": "user", "content": "ping"}],
                "max_tokens": 1}),
        ),
        other => return Err(format!("vaultgate has no health check for mode '{other}'")),
    };
    let body = ChatBody::parse(Bytes::from(body.to_string())).map_err(|e| e.to_string())?;
    let limit = deployment.timeout.min(CHECK_TIMEOUT);
    let timed_out = || {
        format!(
            "litellm.Timeout: no answer within {}s",
            vaultgate_providers::seconds_text(limit)
        )
    };
    if deployment.mock_timeout {
        tokio::time::sleep(limit).await;
        return Err(timed_out());
    }
    let params = RequestParams::default();
    let call = attempt(app, endpoint, &body, &params, false, deployment);
    match tokio::time::timeout(limit, call).await {
        Err(_) => Err(timed_out()),
        Ok(Err(error)) => Err(message_of(error)),
        Ok(Ok(Reply::Full { status, .. } | Reply::Stream { status, .. }))
            if !status.is_success() =>
        {
            Err(format!("the upstream answered {}", status.as_u16()))
        }
        Ok(Ok(_)) => Ok(()),
    }
}

/// The message of `error` in LiteLLM's words (`litellm.AuthenticationError: …` for an
/// upstream's refusal).
fn message_of(error: Error) -> String {
    match crate::error_shape::litellm_shape(error) {
        Error::Upstream { body, status, .. } => serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("the upstream answered {}", status.as_u16())),
        Error::UpstreamTimeout(text) => format!("litellm.Timeout: {text}"),
        other => other.to_string(),
    }
}
