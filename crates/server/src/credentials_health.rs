//! What readiness shows of the cloud credentials fetched in the background, per deployment:
//! Vertex AI's Google tokens and Bedrock's AWS credentials (their source, time left, last
//! refresh, last error; never a secret). A deployment whose credentials are gone and cannot
//! be fetched again is `unavailable`, which makes the instance `degraded` (the others serve).
//! Also what `vaultgate check` says of where they will come from.

use std::time::SystemTime;

use serde_json::{Value, json};
use vaultgate_config::{Config, Provider, parse_model};
use vaultgate_providers::Deployment;
use vaultgate_providers::bedrock::{BedrockSettings, CredentialSource};
use vaultgate_providers::vertex::adc::{AdcSource, application_default};

use crate::aws_credentials::ChainStep;

use crate::state::AppState;

/// What is known of one deployment's credentials (never a secret).
pub(crate) struct CredentialStatus {
    /// Vertex: `token`, `service_account`, `authorized_user`, `key_file`,
    /// `application_default`; Bedrock: `keys`, `assume_role`, or the default chain's step
    /// (`environment`, `web_identity`, `shared_file`).
    pub source: &'static str,
    /// The file or metadata server it comes from.
    pub detail: Option<String>,
    /// Set as configured: nothing is fetched.
    pub fixed: bool,
    /// When the credentials in use were obtained and when they expire.
    pub obtained: Option<SystemTime>,
    pub expires: Option<SystemTime>,
    pub usable: bool,
    pub error: Option<String>,
}

/// One line per Vertex and Bedrock deployment, and whether any is unavailable.
pub(crate) fn readiness(app: &AppState) -> (Vec<Value>, bool) {
    let mut lines = Vec::new();
    let mut unavailable = false;
    for deployment in app.router.deployments() {
        if deployment.mock_response.is_some() {
            continue;
        }
        let status = match (&deployment.vertex, &deployment.bedrock) {
            (Some(_), _) => crate::google_tokens::vertex_status(app, deployment),
            (None, Some(bedrock)) => bedrock_status(bedrock),
            (None, None) => continue,
        };
        let line = line(deployment, &status);
        unavailable |= line["status"] == "unavailable";
        lines.push(line);
    }
    (lines, unavailable)
}

fn bedrock_status(bedrock: &BedrockSettings) -> CredentialStatus {
    let slot = &bedrock.credentials;
    let current = slot.load();
    let expires = current.as_ref().and_then(|c| c.expires());
    let obtained = slot.obtained();
    CredentialStatus {
        source: match bedrock.source {
            CredentialSource::Keys => "keys",
            CredentialSource::AssumeRole => "assume_role",
            CredentialSource::DefaultChain => obtained.map_or("default_chain", |(_, from)| from),
        },
        detail: None,
        fixed: bedrock.source == CredentialSource::Keys,
        obtained: obtained.map(|(at, _)| at),
        expires,
        usable: current.is_some() && expires.is_none_or(|at| at > SystemTime::now()),
        error: slot.error(),
    }
}

fn line(deployment: &Deployment, status: &CredentialStatus) -> Value {
    // `static` (configured, nothing fetched), `ok`, `pending` (the first fetch is not done) or
    // `unavailable` (nothing usable and the last fetch failed).
    let state = match (status.fixed, status.usable, status.error.is_some()) {
        (true, _, _) => "static",
        (false, true, _) => "ok",
        (false, false, false) => "pending",
        (false, false, true) => "unavailable",
    };
    let now = SystemTime::now();
    let secs_between = |from: SystemTime, to: SystemTime| match to.duration_since(from) {
        Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
        Err(behind) => -i64::try_from(behind.duration().as_secs()).unwrap_or(i64::MAX),
    };
    json!({
        "deployment": deployment.id,
        "model_name": deployment.model_name,
        "provider": deployment.spec.prefix,
        "source": status.source,
        "detail": status.detail,
        "status": state,
        // Negative once expired.
        "expires_in_secs": status.expires.map(|at| secs_between(now, at)),
        "refreshed_secs_ago": status.obtained.map(|at| secs_between(at, now)),
        "last_error": status.error,
    })
}

/// For `vaultgate check`: where each Vertex and Bedrock model's credentials will come from,
/// found as at start but without fetching anything: `("ok" | "warn", line)`. A source that
/// cannot work is a warning: the gateway starts and reports it in readiness.
pub fn credential_sources(config: &Config) -> Vec<(&'static str, String)> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut lines = Vec::new();
    for entry in &config.model_list {
        let params = &entry.litellm_params;
        if params.mock_response.is_some() {
            continue;
        }
        let name = &entry.model_name;
        let (level, text) = match parse_model(&params.model) {
            Ok((Provider::VertexAi, _)) if params.vertex.vertex_credentials.is_some() => {
                ("ok", "vertex_credentials".to_owned())
            }
            Ok((Provider::VertexAi, _)) => match application_default(env, std::path::Path::is_file)
            {
                AdcSource::File { path, .. } if !path.is_file() => (
                    "warn",
                    format!(
                        "GOOGLE_APPLICATION_CREDENTIALS names {}, which is not a file",
                        path.display()
                    ),
                ),
                found @ AdcSource::File { .. } => (
                    "ok",
                    format!("application default credentials from {found}"),
                ),
                AdcSource::Metadata { host } => (
                    "warn",
                    format!(
                        "no vertex_credentials, GOOGLE_APPLICATION_CREDENTIALS or gcloud \
                         application_default_credentials.json: tokens will be asked of the \
                         metadata server at {host} (GCE and GKE only)"
                    ),
                ),
            },
            Ok((Provider::Bedrock, _)) => match BedrockSettings::new(params.aws.clone()).source {
                CredentialSource::Keys => {
                    ("ok", "aws_access_key_id and aws_secret_access_key".into())
                }
                CredentialSource::AssumeRole => ("ok", "STS AssumeRole of aws_role_name".into()),
                CredentialSource::DefaultChain => match ChainStep::now() {
                    ChainStep::Environment => {
                        ("ok", "AWS_ACCESS_KEY_ID from the environment".into())
                    }
                    ChainStep::WebIdentity => (
                        "ok",
                        "AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN (STS)".into(),
                    ),
                    ChainStep::SharedFile => {
                        let file = env("AWS_SHARED_CREDENTIALS_FILE")
                            .or_else(|| env("HOME").map(|h| format!("{h}/.aws/credentials")))
                            .unwrap_or_else(|| "~/.aws/credentials".into());
                        if std::path::Path::new(&file).is_file() {
                            ("ok", format!("the shared credentials file {file}"))
                        } else {
                            let why = "no keys, role, web identity or shared credentials file";
                            (
                                "warn",
                                format!("{why} ({file} does not exist): unavailable"),
                            )
                        }
                    }
                },
            },
            _ => continue,
        };
        lines.push((level, format!("{name}: {text}")));
    }
    lines
}
