//! Amazon Bedrock adapter: OpenAI chat ↔ the Converse and ConverseStream APIs, SigV4 signing,
//! AWS event-stream framing, Bedrock's errors, and the STS calls that turn a role into
//! credentials. No HTTP happens here; the caller owns I/O.
//!
//! Request path: [`chat_to_converse_request`] → [`build_request`] (URL, headers, signature) →
//! on success [`converse_response_to_chat`] (or [`StreamTranslator`] when streaming), on an
//! error status [`map_error`].

mod errors;
mod request;
mod response;
mod sign;
mod stream;
pub mod sts;

use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderValue;
use vaultgate_config::AwsParams;
use vaultgate_core::{Error, Result};

pub use errors::map_error;
pub use request::{ConverseOptions, chat_to_converse_request};
pub use response::converse_response_to_chat;
pub use sign::{AwsCredentials, CredentialSlot, sign_request};
pub use stream::{StreamTranslator, stream_opened_with_error};

use crate::deployment::{Target, bad_base, parse_url};
use crate::{Deployment, Resolved, UpstreamRequest};

/// LiteLLM's region when none is configured anywhere.
pub const DEFAULT_REGION: &str = "us-west-2";
/// The SigV4 service name of the Bedrock runtime.
pub const SERVICE: &str = "bedrock";
/// The content type of ConverseStream answers.
pub const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// How a Bedrock deployment gets its credentials, decided once from its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `aws_access_key_id` + `aws_secret_access_key` (+ `aws_session_token`), resolved per
    /// request from the live secrets (so Vault refreshes and lease swaps apply at once).
    Keys,
    /// `aws_role_name`: temporary credentials from STS AssumeRole, kept in the slot.
    AssumeRole,
    /// Neither: the default chain (profile file, web identity, container, instance), kept in
    /// the slot.
    DefaultChain,
}

/// A Bedrock deployment's AWS settings and its background-fetched credentials.
#[derive(Debug)]
pub struct BedrockSettings {
    pub aws: AwsParams,
    pub source: CredentialSource,
    /// Credentials of [`CredentialSource::AssumeRole`] and [`CredentialSource::DefaultChain`],
    /// filled by the server's background fetcher.
    pub credentials: std::sync::Arc<CredentialSlot>,
}

impl BedrockSettings {
    pub fn new(aws: AwsParams) -> Self {
        let source = if aws.aws_role_name.is_some() {
            CredentialSource::AssumeRole
        } else if aws.aws_access_key_id.is_some() || aws.aws_secret_access_key.is_some() {
            CredentialSource::Keys
        } else {
            CredentialSource::DefaultChain
        };
        Self {
            aws,
            source,
            credentials: Default::default(),
        }
    }
}

/// The AWS settings of a Bedrock deployment resolved for one request.
#[derive(Debug, Default, Clone, Copy)]
pub struct ResolvedAws<'a> {
    pub region: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub access_key_id: Option<&'a str>,
    pub secret_access_key: Option<&'a str>,
    pub session_token: Option<&'a str>,
}

/// The region of a deployment: configured, else the one in a model ARN, else LiteLLM's default.
pub fn region<'a>(resolved: &ResolvedAws<'a>, model_id: &'a str) -> &'a str {
    resolved
        .region
        .filter(|r| !r.trim().is_empty())
        .or_else(|| arn_region(model_id))
        .unwrap_or(DEFAULT_REGION)
}

/// `us-east-1` of `arn:aws:bedrock:us-east-1:123456789012:inference-profile/…`.
fn arn_region(model_id: &str) -> Option<&str> {
    let mut parts = model_id.strip_prefix("arn:")?.split(':');
    let region = parts.nth(2)?;
    (!region.is_empty()).then_some(region)
}

/// `https://bedrock-runtime.{region}.amazonaws.com`.
pub fn default_endpoint(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// `{endpoint}/model/{model id}/converse` (or `converse-stream`), the id encoded as one path
/// segment as AWS SDKs encode it (`:` and the `/` of ARNs included).
pub fn converse_url(endpoint: &str, model_id: &str, stream: bool) -> String {
    let mut url = endpoint.trim_end_matches('/').to_owned();
    url.push_str("/model/");
    for byte in model_id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url.push_str(if stream {
        "/converse-stream"
    } else {
        "/converse"
    });
    url
}

/// The signed Converse (or ConverseStream) request of `body` for the deployment.
pub fn build_request(
    deployment: &Deployment,
    resolved: &Resolved<'_>,
    body: Vec<u8>,
    stream: bool,
    now: SystemTime,
) -> Result<UpstreamRequest> {
    let settings = deployment.bedrock.as_deref().ok_or_else(|| {
        Error::Internal(format!("deployment {} is not a Bedrock one", deployment.id))
    })?;
    let aws = &resolved.aws;
    let region = region(aws, &deployment.upstream_model);
    let endpoint = resolved.api_base.or(aws.endpoint);
    // The cache keys on what the URL is built from: the endpoint, else the region.
    let url = deployment
        .urls
        .get(
            Target::Bedrock { stream },
            endpoint.unwrap_or(region),
            None,
            || {
                let endpoint = endpoint.map_or_else(|| default_endpoint(region), str::to_owned);
                parse_url(&converse_url(&endpoint, &deployment.upstream_model, stream))
            },
        )
        .ok_or_else(|| bad_base(deployment))?;
    let mut request = http::Request::post(url)
        .body(Bytes::from(body))
        .map_err(|e| Error::Internal(e.to_string()))?;
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static(if stream {
            EVENT_STREAM
        } else {
            "application/json"
        }),
    );
    let credentials = match settings.source {
        CredentialSource::Keys => match (aws.access_key_id, aws.secret_access_key) {
            (Some(id), Some(secret)) => AwsCredentials::new(id, secret, aws.session_token, None),
            _ => {
                return Err(Error::Config(format!(
                    "deployment {}: aws_access_key_id and aws_secret_access_key go together; set both",
                    deployment.id
                )));
            }
        },
        CredentialSource::AssumeRole | CredentialSource::DefaultChain => {
            match settings.credentials.load() {
                Some(credentials) => (*credentials).clone(),
                None => {
                    let why = settings
                        .credentials
                        .error()
                        .unwrap_or_else(|| "not obtained yet".to_owned());
                    return Err(Error::Unavailable(format!(
                        "deployment {}: no AWS credentials: {why}",
                        deployment.id
                    )));
                }
            }
        }
    };
    sign_request(&mut request, &credentials, region, SERVICE, now)?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_one_encoded_path_segment() {
        assert_eq!(
            converse_url(
                "https://bedrock-runtime.us-east-1.amazonaws.com/",
                "anthropic.claude-3-haiku-20240307-v1:0",
                false
            ),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
        );
        assert_eq!(
            converse_url(
                "http://127.0.0.1:9",
                "arn:aws:bedrock:eu-west-1:1:inference-profile/eu.x",
                true
            ),
            "http://127.0.0.1:9/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A1%3Ainference-profile%2Feu.x/converse-stream"
        );
    }

    #[test]
    fn region_comes_from_settings_then_arn_then_default() {
        let arn = "arn:aws:bedrock:eu-west-1:1:inference-profile/eu.x";
        let mut aws = ResolvedAws::default();
        assert_eq!(region(&aws, "anthropic.claude"), DEFAULT_REGION);
        assert_eq!(region(&aws, arn), "eu-west-1");
        aws.region = Some("ap-south-1");
        assert_eq!(region(&aws, arn), "ap-south-1");
    }
}
