//! Temporary AWS credentials for Bedrock deployments that name a role (`aws_role_name`: STS
//! AssumeRole, signed with the deployment's own keys or the default chain's) or no keys at all
//! (the default chain). They are fetched in the background, at start and again at about 2/3 of
//! their lifetime; requests take them from the deployment's slot and never wait on STS. While
//! a fetch fails, the last credentials serve and the slot's error says why.
//!
//! The default chain, as the AWS SDKs walk it: environment keys, a web identity token file with
//! a role (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, as EKS gives pods), then the shared
//! credentials file. Container and instance metadata credentials are not fetched.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use vaultgate_config::{AwsParams, ConfigValue};
use vaultgate_core::{Error, Result};
use vaultgate_providers::UpstreamRequest;
use vaultgate_providers::bedrock::{AwsCredentials, CredentialSlot, CredentialSource, sts};
use vaultgate_secrets::{LiveSecrets, SecretMap};

const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Keys that do not expire (the shared credentials file) are read again this often.
const REREAD_LASTING: Duration = Duration::from_secs(300);
/// Credentials are never fetched again sooner than this after a success.
const MIN_REFRESH: Duration = Duration::from_secs(5);
const STS_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SESSION_NAME: &str = "vaultgate";

/// Starts the fetcher of one deployment; it ends when the slot is dropped (the router with it).
pub(crate) fn spawn(
    deployment: String,
    aws: AwsParams,
    source: CredentialSource,
    slot: &Arc<CredentialSlot>,
    secrets: Arc<LiveSecrets>,
) -> Result<()> {
    if source == CredentialSource::Keys {
        return Ok(());
    }
    let http = reqwest::Client::builder()
        .timeout(STS_TIMEOUT)
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the STS client: {e}")))?;
    let slot = Arc::downgrade(slot);
    tokio::spawn(async move {
        let fetcher = Fetcher {
            deployment,
            aws,
            source,
            http,
            secrets,
        };
        fetcher.run(slot).await;
    });
    Ok(())
}

struct Fetcher {
    deployment: String,
    aws: AwsParams,
    source: CredentialSource,
    http: reqwest::Client,
    secrets: Arc<LiveSecrets>,
}

impl Fetcher {
    async fn run(self, slot: Weak<CredentialSlot>) {
        let mut backoff = RETRY_MIN;
        loop {
            let result = self.fetch().await;
            let Some(slot) = slot.upgrade() else {
                return;
            };
            let wait = match result {
                Ok((credentials, from)) => {
                    backoff = RETRY_MIN;
                    let wait = refresh_after(credentials.expires());
                    tracing::info!(deployment = %self.deployment, source = from,
                        refresh_in_secs = wait.as_secs(), "AWS credentials obtained");
                    slot.store(credentials, from);
                    wait
                }
                Err(error) => {
                    tracing::warn!(deployment = %self.deployment, %error,
                        "cannot obtain AWS credentials; retrying");
                    slot.set_error(Some(error.to_string()));
                    let wait = backoff;
                    backoff = (backoff * 2).min(RETRY_MAX);
                    wait
                }
            };
            drop(slot);
            tokio::time::sleep(wait).await;
        }
    }

    /// The credentials and where they came from (see [`CredentialSlot::obtained`]).
    async fn fetch(&self) -> Result<(AwsCredentials, &'static str)> {
        let secrets = self.secrets.snapshot();
        let region = resolved(&secrets, &self.aws.aws_region_name)
            .unwrap_or(vaultgate_providers::bedrock::DEFAULT_REGION);
        let endpoint = resolved(&secrets, &self.aws.aws_sts_endpoint)
            .map(str::to_owned)
            .or_else(|| env("AWS_ENDPOINT_URL_STS"))
            .unwrap_or_else(|| sts::default_endpoint(region));
        if self.source == CredentialSource::DefaultChain {
            return self.default_chain(&endpoint).await;
        }
        let role_arn = resolved(&secrets, &self.aws.aws_role_name)
            .ok_or_else(|| Error::Config("aws_role_name resolves to nothing".into()))?;
        let base = match (
            resolved(&secrets, &self.aws.aws_access_key_id),
            resolved(&secrets, &self.aws.aws_secret_access_key),
        ) {
            (Some(id), Some(secret)) => AwsCredentials::new(
                id,
                secret,
                resolved(&secrets, &self.aws.aws_session_token),
                None,
            ),
            _ => self.default_chain(&endpoint).await?.0,
        };
        let assume = sts::AssumeRole {
            endpoint: &endpoint,
            region,
            role_arn,
            session_name: resolved(&secrets, &self.aws.aws_session_name)
                .unwrap_or(DEFAULT_SESSION_NAME),
            external_id: resolved(&secrets, &self.aws.aws_external_id),
        };
        let request = sts::assume_role_request(&assume, &base, SystemTime::now())?;
        Ok((self.call_sts(request).await?, "assume_role"))
    }

    async fn default_chain(&self, endpoint: &str) -> Result<(AwsCredentials, &'static str)> {
        let step = ChainStep::now();
        if step == ChainStep::Environment
            && let (Some(id), Some(secret)) =
                (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
        {
            let keys = AwsCredentials::new(&id, &secret, env("AWS_SESSION_TOKEN").as_deref(), None);
            return Ok((keys, step.name()));
        }
        if step == ChainStep::WebIdentity
            && let (Some(file), Some(role_arn)) =
                (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN"))
        {
            // Read at every fetch: the platform rotates the token in place.
            let token = tokio::fs::read_to_string(&file).await.map_err(|e| {
                Error::Unavailable(format!(
                    "cannot read AWS_WEB_IDENTITY_TOKEN_FILE {file}: {e}"
                ))
            })?;
            let session = env("AWS_ROLE_SESSION_NAME");
            let request = sts::assume_role_with_web_identity_request(
                endpoint,
                &role_arn,
                session.as_deref().unwrap_or(DEFAULT_SESSION_NAME),
                token.trim(),
            )?;
            return Ok((self.call_sts(request).await?, step.name()));
        }
        let secrets = self.secrets.snapshot();
        let profile = resolved(&secrets, &self.aws.aws_profile_name)
            .map(str::to_owned)
            .or_else(|| env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".to_owned());
        Ok((
            shared_file_credentials(&profile).await?,
            ChainStep::SharedFile.name(),
        ))
    }

    async fn call_sts(&self, request: UpstreamRequest) -> Result<AwsCredentials> {
        let request = reqwest::Request::try_from(request.map(reqwest::Body::from))
            .map_err(|e| Error::Internal(format!("STS request: {e}")))?;
        let unreachable =
            |e: reqwest::Error| Error::Unavailable(format!("STS unreachable: {}", e.without_url()));
        let response = self.http.execute(request).await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        sts::parse_response(status, &body)
    }
}

/// The step of the default chain that serves now, as the AWS SDKs pick it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChainStep {
    /// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (STS AssumeRoleWithWebIdentity).
    WebIdentity,
    /// A profile of the shared credentials file.
    SharedFile,
}

impl ChainStep {
    pub(crate) fn now() -> Self {
        let both = |a, b| env(a).is_some() && env(b).is_some();
        if both("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") {
            Self::Environment
        } else if both("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN") {
            Self::WebIdentity
        } else {
            Self::SharedFile
        }
    }

    /// Its name in readiness and `vaultgate check`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::WebIdentity => "web_identity",
            Self::SharedFile => "shared_file",
        }
    }
}

fn resolved<'a>(secrets: &'a SecretMap, value: &'a Option<ConfigValue>) -> Option<&'a str> {
    value
        .as_ref()
        .and_then(|v| secrets.value(v))
        .filter(|v| !v.trim().is_empty())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// When to fetch again: at about 2/3 of the time left, or every few minutes for keys that do
/// not expire.
fn refresh_after(expires: Option<SystemTime>) -> Duration {
    match expires {
        None => REREAD_LASTING,
        Some(at) => at
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .mul_f64(2.0 / 3.0)
            .max(MIN_REFRESH),
    }
}

/// The keys of `profile` in the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
/// `~/.aws/credentials`).
async fn shared_file_credentials(profile: &str) -> Result<AwsCredentials> {
    let path = match env("AWS_SHARED_CREDENTIALS_FILE") {
        Some(path) => std::path::PathBuf::from(path),
        None => match env("HOME") {
            Some(home) => std::path::Path::new(&home).join(".aws").join("credentials"),
            None => return Err(no_credentials("no HOME for ~/.aws/credentials")),
        },
    };
    let text = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| no_credentials(&format!("{}: {e}", path.display())))?;
    let keys = profile_keys(&text, profile);
    match (
        keys.get("aws_access_key_id"),
        keys.get("aws_secret_access_key"),
    ) {
        (Some(id), Some(secret)) => Ok(AwsCredentials::new(
            id,
            secret,
            keys.get("aws_session_token").map(String::as_str),
            None,
        )),
        _ => Err(no_credentials(&format!(
            "{} has no aws_access_key_id and aws_secret_access_key in profile [{profile}]",
            path.display()
        ))),
    }
}

fn no_credentials(why: &str) -> Error {
    Error::Unavailable(format!(
        "no AWS credentials ({why}): set aws_access_key_id and aws_secret_access_key, \
         aws_role_name, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or a shared credentials \
         file; container and instance metadata credentials are not supported"
    ))
}

/// The `key = value` pairs of `[profile]` in an INI-style credentials file.
fn profile_keys(text: &str, profile: &str) -> std::collections::HashMap<String, String> {
    let mut keys = std::collections::HashMap::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = section.trim() == profile;
            continue;
        }
        if inside && let Some((key, value)) = line.split_once('=') {
            keys.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_read_from_its_section_only() {
        let text = "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key=d\n\n# a comment\n[prod]\nAWS_ACCESS_KEY_ID = AKIAPROD\naws_secret_access_key = p/+=\naws_session_token=t\n";
        let prod = profile_keys(text, "prod");
        assert_eq!(prod["aws_access_key_id"], "AKIAPROD");
        assert_eq!(prod["aws_secret_access_key"], "p/+=");
        assert_eq!(prod["aws_session_token"], "t");
        assert_eq!(
            profile_keys(text, "default")["aws_access_key_id"],
            "AKIADEFAULT"
        );
        assert!(profile_keys(text, "missing").is_empty());
    }

    #[test]
    fn credentials_are_fetched_again_at_two_thirds_of_their_life() {
        let hour = SystemTime::now() + Duration::from_secs(3600);
        let wait = refresh_after(Some(hour)).as_secs();
        assert!((2390..=2400).contains(&wait), "{wait}");
        assert_eq!(refresh_after(None), REREAD_LASTING);
        assert_eq!(refresh_after(Some(SystemTime::UNIX_EPOCH)), MIN_REFRESH);
    }
}
