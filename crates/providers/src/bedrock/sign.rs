//! AWS credentials and Signature Version 4 (`aws-sigv4`).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use vaultgate_core::{Error, Result};

use crate::UpstreamRequest;

/// One set of AWS credentials. Never printed: `Debug` shows `***` and the expiry only.
#[derive(Clone)]
pub struct AwsCredentials {
    identity: Identity,
    expires: Option<SystemTime>,
}

impl AwsCredentials {
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
        expires: Option<SystemTime>,
    ) -> Self {
        let credentials = Credentials::new(
            access_key_id,
            secret_access_key,
            session_token.filter(|t| !t.is_empty()).map(str::to_owned),
            expires,
            "vaultgate",
        );
        Self {
            identity: credentials.into(),
            expires,
        }
    }

    /// When temporary credentials stop working; `None` for long-term keys.
    pub fn expires(&self) -> Option<SystemTime> {
        self.expires
    }

    fn credentials(&self) -> Option<&Credentials> {
        self.identity.data::<Credentials>()
    }

    /// The parts, for signing a request of our own (STS). Not for logs.
    pub fn parts(&self) -> Option<(&str, &str, Option<&str>)> {
        self.credentials()
            .map(|c| (c.access_key_id(), c.secret_access_key(), c.session_token()))
    }
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("keys", &"***")
            .field("expires", &self.expires)
            .finish()
    }
}

/// Credentials obtained in the background (STS, the default chain), read lock-free by requests.
/// Empty until the first fetch succeeds; `error` says why it is empty or stale.
#[derive(Debug, Default)]
pub struct CredentialSlot {
    current: ArcSwapOption<AwsCredentials>,
    error: std::sync::Mutex<Option<String>>,
    /// When the credentials in use were obtained, and from where (`assume_role`,
    /// `environment`, `web_identity`, `shared_file`).
    obtained: std::sync::Mutex<Option<(SystemTime, &'static str)>>,
}

impl CredentialSlot {
    pub fn load(&self) -> Option<Arc<AwsCredentials>> {
        self.current.load_full()
    }

    /// Puts new credentials from `source` in use, clearing the error.
    pub fn store(&self, credentials: AwsCredentials, source: &'static str) {
        self.current.store(Some(Arc::new(credentials)));
        if let Ok(mut obtained) = self.obtained.lock() {
            *obtained = Some((SystemTime::now(), source));
        }
        self.set_error(None);
    }

    pub fn set_error(&self, error: Option<String>) {
        if let Ok(mut slot) = self.error.lock() {
            *slot = error;
        }
    }

    /// The last failure to fetch credentials, cleared on success.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    /// When and from where the credentials in use were obtained.
    pub fn obtained(&self) -> Option<(SystemTime, &'static str)> {
        self.obtained.lock().ok().and_then(|o| *o)
    }
}

/// Signs `request` for `service` in `region` at `now`: adds `x-amz-date`, `authorization` and,
/// with temporary credentials, `x-amz-security-token` (the last two marked sensitive). The body
/// is hashed as sent; the path is signed double-encoded, as every service but S3 expects.
pub fn sign_request(
    request: &mut UpstreamRequest,
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<()> {
    let params = v4::SigningParams::builder()
        .identity(&credentials.identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Error::Internal(format!("SigV4 parameters: {e}")))?
        .into();
    let uri = request.uri().to_string();
    let headers = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    let signable = SignableRequest::new(
        request.method().as_str(),
        &uri,
        headers,
        SignableBody::Bytes(request.body()),
    )
    .map_err(|e| Error::Internal(format!("SigV4: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| Error::Internal(format!("SigV4: {e}")))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    for name in ["authorization", "x-amz-security-token"] {
        if let Some(value) = request.headers_mut().get_mut(name) {
            value.set_sensitive(true);
        }
    }
    Ok(())
}
