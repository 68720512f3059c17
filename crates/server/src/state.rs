use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use vaultgate_config::{Config, ConfigValue};
use vaultgate_core::{Error, Result};
use vaultgate_keys::KeyService;
use vaultgate_router::Router;
use vaultgate_secrets::LiveSecrets;

/// Largest accepted request body when `general_settings.max_request_size_mb` is not set.
const DEFAULT_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// Settings of the server that do not come from `config.yaml`.
#[derive(Clone)]
pub struct Options {
    pub metrics: PrometheusHandle,
    /// The virtual key service; `None` without a master key (nobody could manage keys).
    pub keys: Option<KeyService>,
    /// Serve the admin console at `/ui/` (see [`crate::console_enabled`]).
    pub console: bool,
}

/// Everything a request needs, shared by all requests. The live parts (secrets) swap
/// atomically inside; the rest is fixed for the life of the process.
pub struct AppState {
    pub router: Router,
    pub secrets: Arc<LiveSecrets>,
    /// One pooled HTTP client for every upstream call.
    pub http: Arc<crate::http_client::HttpClient>,
    /// Access tokens of Vertex AI service accounts.
    pub(crate) google_tokens: crate::google_tokens::GoogleTokens,
    pub master_key: Option<ConfigValue>,
    /// Opens `/metrics` and readiness details besides the master key.
    pub metrics_key: Option<ConfigValue>,
    pub(crate) health: crate::health::HealthAccess,
    pub body_limit: usize,
    pub metrics: PrometheusHandle,
    pub keys: Option<KeyService>,
    /// The admin console is served and its sessions are accepted on admin routes.
    pub console: bool,
    /// `prefix_for_stored_virtual_keys` when virtual keys are copied into Vault.
    pub mirror_prefix: Option<String>,
    /// Samples of the request counters for the console's error rates (admin calls only).
    pub(crate) rate_samples: crate::admin_models::RateSamples,
    /// Handles of the per-request metrics, registered on first use.
    pub(crate) request_metrics: crate::proxy::RequestMetrics,
    /// What `/model/info` and `/model_group/info` show, built at start.
    pub(crate) catalog: crate::model_info::ModelCatalog,
}

impl AppState {
    pub fn new(config: &Config, secrets: Arc<LiveSecrets>, options: Options) -> Result<Self> {
        let body_limit = match config.general_settings.max_request_size_mb {
            Some(mb) if mb.is_finite() && mb > 0.0 => (mb * 1024.0 * 1024.0) as usize,
            Some(_) => {
                return Err(Error::Config(
                    "general_settings.max_request_size_mb must be a positive number".into(),
                ));
            }
            None => DEFAULT_BODY_LIMIT,
        };
        let router = Router::from_config(config)?;
        check_deployments(&router, &secrets)?;
        let http = Arc::new(crate::http_client::HttpClient::new()?);
        let state = Self {
            router,
            secrets,
            google_tokens: crate::google_tokens::GoogleTokens::new(Arc::clone(&http)),
            http,
            master_key: config.general_settings.master_key.clone(),
            metrics_key: config.general_settings.metrics_key.clone(),
            health: crate::health::HealthAccess {
                public_readiness_details: config.general_settings.public_readiness_details,
                public_metrics: config.litellm_settings.require_auth_for_metrics_endpoint
                    == Some(false),
            },
            body_limit,
            metrics: options.metrics,
            keys: options.keys,
            console: options.console,
            mirror_prefix: {
                let kms = &config.general_settings.key_management_settings;
                kms.store_virtual_keys.then(|| kms.virtual_key_prefix())
            },
            rate_samples: Default::default(),
            request_metrics: Default::default(),
            catalog: crate::model_info::ModelCatalog::new(config),
        };
        crate::google_tokens::prepare_vertex(&state);
        Ok(state)
    }
}

/// Settings a deployment cannot be called without (an `api_base` where its provider has no
/// default) stop the start; a hosted provider's default host without any key gets a warning
/// (its own 401 will reach the clients).
fn check_deployments(router: &Router, secrets: &Arc<LiveSecrets>) -> Result<()> {
    let snapshot = secrets.snapshot();
    let mut problems = Vec::new();
    for name in router.models() {
        let Some(group) = router.group(name) else {
            continue;
        };
        for deployment in &group.deployments {
            if let Some(bedrock) = deployment.bedrock.as_deref() {
                crate::aws_credentials::spawn(
                    deployment.id.clone(),
                    bedrock.aws.clone(),
                    bedrock.source,
                    &bedrock.credentials,
                    Arc::clone(secrets),
                )?;
            }
            let resolved = crate::upstream::resolve(&snapshot, deployment);
            if let Some(problem) = deployment.missing_setting(&resolved) {
                problems.push(problem);
            } else if deployment.spec.key_required
                && resolved.api_key.is_none()
                && resolved.api_base.is_none()
                && deployment.mock_response.is_none()
            {
                tracing::warn!(
                    deployment = %deployment.id,
                    "no api_key and none of {} is set; requests go upstream without a key",
                    deployment.spec.key_env.join(", ")
                );
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(problems.join("; ")))
    }
}
