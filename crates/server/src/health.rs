//! Liveness, readiness and metrics. Anyone may ask whether the gateway is ready; only an
//! operator (the master key, or `general_settings.metrics_key`) sees why, or the metrics,
//! unless the config opens them (`public_readiness_details`, LiteLLM's
//! `litellm_settings.require_auth_for_metrics_endpoint: false`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue};
use serde_json::json;
use subtle::ConstantTimeEq;
use vaultgate_core::Error;
use vaultgate_keys::{KeyService, QuotaHealth, key_from_headers};

use crate::state::AppState;

/// How long readiness waits for the database before calling it down.
const DB_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn liveliness() -> Json<&'static str> {
    Json("I'm alive!")
}

pub async fn readiness(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let vault = app.secrets.readiness();
    let mut db = match &app.keys {
        None => json!({"status": "disabled"}),
        Some(keys) => match tokio::time::timeout(DB_PING_TIMEOUT, keys.ping()).await {
            Ok(Ok(())) => {
                json!({"status": "connected", "backend": format!("{:?}", keys.backend()).to_lowercase()})
            }
            Ok(Err(error)) => json!({"status": "disconnected", "error": error.to_string()}),
            Err(_) => json!({"status": "disconnected", "error": "no answer within 2 s"}),
        },
    };
    // Spend kept in memory because writes fail: shown, and the instance is degraded.
    let spend = app.keys.as_ref().map(KeyService::spend_status);
    if let (Some(spend), Some(db)) = (&spend, db.as_object_mut()) {
        db.insert("spend".into(), json!(spend));
    }
    // Several instances on one PostgreSQL database: whether this one hears the others' changes
    // and whether it is the one running the background jobs.
    if let (Some(keys), Some(db)) = (&app.keys, db.as_object_mut())
        && keys.backend() == vaultgate_keys::Backend::Postgres
    {
        db.insert(
            "cluster".into(),
            json!({
                "listening": keys.hears_other_instances(),
                "runs_background_jobs": keys.runs_background_jobs(),
            }),
        );
    }
    let spend_failing = spend.is_some_and(|s| s.failing_since.is_some());
    let redis = app
        .keys
        .as_ref()
        .map_or_else(|| json!({"status": "disabled"}), redis_readiness);
    let (credentials, credentials_unavailable) = crate::credentials_health::readiness(&app);
    let degraded = vault.status == "degraded"
        || db["status"] == "disconnected"
        || spend_failing
        || redis["status"] == "degraded"
        || credentials_unavailable;
    let status = if degraded { "degraded" } else { "healthy" };
    if !(app.health.public_readiness_details || app.is_operator(request.headers())) {
        return Json(json!({"status": status})).into_response();
    }
    let auth = match app.master_key {
        Some(_) => json!({"mode": "master_key"}),
        None => json!({"mode": "unauthenticated",
            "warning": "no master key: anyone who can reach this port can use every model"}),
    };
    // LiteLLM's fields (`db` as a word, `litellm_version`, `cache`, `success_callbacks`) for
    // the clients that read them; ours (`database`, `vault`, `redis`) with the details.
    let connected = if db["status"] == "connected" {
        "connected"
    } else {
        "Not connected"
    };
    Json(json!({
        "status": status,
        "db": connected,
        "litellm_version": env!("CARGO_PKG_VERSION"),
        // No response cache: Redis here only carries shared limits (`redis`).
        "cache": null,
        // `litellm_settings.success_callback` is not implemented: no callback runs.
        "success_callbacks": [],
        "version": env!("CARGO_PKG_VERSION"),
        "auth": auth,
        "vault": vault,
        "database": db,
        "redis": redis,
        "credentials": credentials,
    }))
    .into_response()
}

/// The shared rate limits' Redis: `disabled` (limits per instance by configuration),
/// `connected`, or `degraded` with the error while each instance admits its share alone.
fn redis_readiness(keys: &KeyService) -> serde_json::Value {
    let instances = keys.limits_instances_seen();
    match keys.limits_health() {
        QuotaHealth::Local => json!({"status": "disabled"}),
        QuotaHealth::Shared => json!({"status": "connected", "instances": instances}),
        QuotaHealth::Degraded { error } => {
            let share = instances.unwrap_or(0).max(1);
            json!({
                "status": "degraded",
                "error": error,
                "instances": instances,
                "limits": format!(
                    "per instance until Redis answers: this one admits ceil(limit / {share})"
                ),
            })
        }
    }
}

pub async fn metrics(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !(app.health.public_metrics || app.is_operator(&headers)) {
        return Error::Unauthorized(
            "Authentication Error, /metrics takes the master key or general_settings.metrics_key"
                .into(),
        )
        .into_response();
    }
    crate::litellm_metrics::deployment_states(&app);
    (
        [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        app.metrics.render(),
    )
        .into_response()
}

/// Who may see what the health routes hide.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthAccess {
    pub public_readiness_details: bool,
    pub public_metrics: bool,
}

impl AppState {
    /// The master key, the metrics key, or anyone when the gateway runs without a master key
    /// (everyone is an administrator then anyway).
    fn is_operator(&self, headers: &HeaderMap) -> bool {
        let Some(master) = &self.master_key else {
            return true;
        };
        let Some(presented) = key_from_headers(headers) else {
            return false;
        };
        let secrets = self.secrets.snapshot();
        [Some(master), self.metrics_key.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|value| secrets.value(value))
            .any(|known| {
                !known.is_empty() && bool::from(known.as_bytes().ct_eq(presented.as_bytes()))
            })
    }
}
