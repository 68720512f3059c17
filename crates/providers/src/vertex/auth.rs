//! Google OAuth 2.0 for service accounts (RFC 7523): a JWT signed with the account's RSA key
//! (RS256) is exchanged at its `token_uri` for an access token. gcloud's user credentials and
//! the metadata server are in [`crate::vertex::adc`]. The request is built and the answer
//! parsed here; the caller sends it, caches the token and refreshes it before expiry.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vaultgate_core::{Error, Result};

use crate::UpstreamRequest;
use crate::deployment::parse_url;
pub use crate::vertex::adc::AuthorizedUser;

/// The scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, for keys that name none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Lifetime asked for in the assertion (Google's maximum).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// Google's access tokens live an hour (12 at most); one said to live longer is refreshed daily.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// What a `vertex_credentials` value is.
#[derive(Debug)]
pub enum Credential {
    /// A service-account key or gcloud's user credentials (JSON text, or base64 of it as
    /// Vault's GCP engine returns `private_key_data`).
    Key(GoogleKey),
    /// The path of such a file (read by the caller, off the request path).
    File(String),
    /// A ready OAuth access token (Vault's GCP engine `…/token`), sent as it is.
    Token,
}

impl Credential {
    /// Reads what `value` is. A value that is neither JSON, base64 of JSON nor a path is taken
    /// as a ready token; JSON that is not a usable key is an error.
    pub fn classify(value: &str) -> Result<Self> {
        let value = value.trim();
        if value.starts_with('{') {
            return GoogleKey::from_json(value).map(Self::Key);
        }
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value)
            && decoded.first() == Some(&b'{')
        {
            let text = String::from_utf8(decoded).map_err(|_| {
                Error::Config("vertex_credentials: the base64 value is not UTF-8 JSON".into())
            })?;
            return GoogleKey::from_json(&text).map(Self::Key);
        }
        if value.contains(['/', '\\']) || value.ends_with(".json") {
            return Ok(Self::File(value.to_owned()));
        }
        Ok(Self::Token)
    }
}

/// A credentials file Google's libraries read: a service-account key or gcloud's
/// `application_default_credentials.json` (an `authorized_user`).
#[derive(Debug)]
pub enum GoogleKey {
    ServiceAccount(Box<ServiceAccount>),
    AuthorizedUser(Box<AuthorizedUser>),
}

impl GoogleKey {
    /// Parses a credentials file's JSON by its `type` (a key without one is a service
    /// account's); other kinds of Google credentials are refused by name.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Error::Config(format!(
                "vertex_credentials is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        match value.get("type").and_then(Value::as_str) {
            Some("service_account") | None => {
                ServiceAccount::from_value(value).map(|a| Self::ServiceAccount(Box::new(a)))
            }
            Some("authorized_user") => {
                AuthorizedUser::from_value(value).map(|u| Self::AuthorizedUser(Box::new(u)))
            }
            Some(other) => Err(Error::Config(format!(
                "vertex_credentials: credentials of type '{other}' are not supported; use a \
                 service-account key (type service_account), gcloud's user credentials (type \
                 authorized_user) or an access token"
            ))),
        }
    }

    /// The token request of these credentials at `now`.
    pub fn token_request(&self, now: SystemTime) -> Result<UpstreamRequest> {
        match self {
            Self::ServiceAccount(account) => account.token_request(now),
            Self::AuthorizedUser(user) => user.token_request(),
        }
    }

    /// The project requests go to when the deployment names none: the account's
    /// `project_id`, or the user's `quota_project_id` (as LiteLLM takes it).
    pub fn project(&self) -> Option<&str> {
        match self {
            Self::ServiceAccount(account) => account.project_id.as_deref(),
            Self::AuthorizedUser(user) => user.quota_project_id.as_deref(),
        }
        .filter(|p| !p.trim().is_empty())
    }

    /// `service_account` or `authorized_user`, for readiness.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ServiceAccount(_) => "service_account",
            Self::AuthorizedUser(_) => "authorized_user",
        }
    }
}

/// The fields of a service-account key file that matter here. `Debug` never shows the key.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    pub client_email: String,
    private_key: SecretString,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub token_uri: Option<String>,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key", &"***")
            .field("project_id", &self.project_id)
            .finish()
    }
}

impl ServiceAccount {
    fn from_value(value: Value) -> Result<Self> {
        let account: Self = serde_json::from_value(value).map_err(|e| {
            // serde names the missing field; the message never quotes values.
            Error::Config(format!(
                "vertex_credentials: not a service-account key: {e}"
            ))
        })?;
        jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.expose_secret().as_bytes())
            .map_err(|_| {
                Error::Config("vertex_credentials: private_key is not an RSA key in PEM".into())
            })?;
        Ok(account)
    }

    /// Where tokens of this account are minted.
    pub fn token_uri(&self) -> &str {
        token_uri_or_default(self.token_uri.as_deref())
    }

    /// The signed assertion (`iss`, `scope`, `aud`, `iat`, `exp`), valid from `now` for an hour.
    pub fn assertion(&self, now: SystemTime) -> Result<String> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            scope: &'a str,
            aud: &'a str,
            iat: u64,
            exp: u64,
        }
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::Internal("the clock is before 1970".into()))?
            .as_secs();
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: self.token_uri(),
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid.clone_from(&self.private_key_id);
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(self.private_key.expose_secret().as_bytes())
                .map_err(|_| {
                    Error::Config("vertex_credentials: private_key is not an RSA key in PEM".into())
                })?;
        jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| Error::Internal(format!("cannot sign the Google token request: {e}")))
    }

    /// The token request: the assertion POSTed as a form to the account's `token_uri`.
    pub fn token_request(&self, now: SystemTime) -> Result<UpstreamRequest> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", JWT_BEARER)
            .append_pair("assertion", &self.assertion(now)?)
            .finish();
        form_request(self.token_uri(), body)
    }
}

/// `token_uri` as given, else Google's.
pub(crate) fn token_uri_or_default(token_uri: Option<&str>) -> &str {
    token_uri
        .filter(|u| !u.trim().is_empty())
        .unwrap_or(DEFAULT_TOKEN_URI)
}

/// A form POST to a token endpoint.
pub(crate) fn form_request(token_uri: &str, body: String) -> Result<UpstreamRequest> {
    let uri = parse_url(token_uri).ok_or_else(|| {
        Error::Config("vertex_credentials: token_uri is not an http(s) URL".into())
    })?;
    let mut request = http::Request::post(uri)
        .body(Bytes::from(body))
        .map_err(|e| Error::Internal(e.to_string()))?;
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    Ok(request)
}

/// An OAuth access token and when it stops working. Never printed.
pub struct AccessToken {
    value: SecretString,
    pub issued: SystemTime,
    pub expires: SystemTime,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"***")
            .field("expires", &self.expires)
            .finish()
    }
}

impl AccessToken {
    /// A lifetime past [`MAX_TOKEN_LIFETIME`] counts as that: an endpoint answering
    /// `expires_in: 18446744073709551615` would overflow the clock (a panic) and never refresh.
    pub fn new(value: &str, issued: SystemTime, lifetime: Duration) -> Self {
        Self {
            value: SecretString::from(value.to_owned()),
            issued,
            expires: issued + lifetime.min(MAX_TOKEN_LIFETIME),
        }
    }

    /// The token, to send as a Bearer key. Not for logs.
    pub fn secret(&self) -> &str {
        self.value.expose_secret()
    }

    /// When to replace it: a third of its lifetime before it expires (20 minutes of Google's
    /// hour), so a failed refresh has time to be retried before requests need the new one.
    pub fn refresh_at(&self) -> SystemTime {
        let lifetime = self.expires.duration_since(self.issued).unwrap_or_default();
        self.expires - lifetime / 3
    }

    /// Whether it is still good for a request sent at `now`, with a margin for the trip (10 s,
    /// less for tokens that live under a minute).
    pub fn usable_at(&self, now: SystemTime) -> bool {
        let lifetime = self.expires.duration_since(self.issued).unwrap_or_default();
        now + (lifetime / 6).min(Duration::from_secs(10)) < self.expires
    }
}

/// The token of a successful answer, or the error the endpoint gave (`error: description`).
pub fn parse_token_response(
    status: http::StatusCode,
    body: &[u8],
    now: SystemTime,
) -> Result<AccessToken> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(Value::as_str)
    };
    if !status.is_success() {
        let code = field("error").unwrap_or("error");
        let description = field("error_description").unwrap_or_default();
        return Err(Error::Unavailable(format!(
            "the Google token endpoint answered {}: {code}: {description}",
            status.as_u16()
        )));
    }
    let token = field("access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::Unavailable("the Google token endpoint answered no access_token".into())
        })?;
    let lifetime = json
        .as_ref()
        .and_then(|j| j.get("expires_in"))
        .and_then(Value::as_u64)
        .unwrap_or(3600);
    Ok(AccessToken::new(token, now, Duration::from_secs(lifetime)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_told_apart() {
        assert!(matches!(
            Credential::classify("ya29.c.b0AXv0zTPx-token_value").unwrap(),
            Credential::Token
        ));
        assert!(matches!(
            Credential::classify("/etc/keys/vertex.json").unwrap(),
            Credential::File(_)
        ));
        // gcloud's user credentials are a key of their own; without a refresh token, an error
        // naming the field.
        let error = Credential::classify(r#"{"type": "authorized_user"}"#).unwrap_err();
        assert!(error.to_string().contains("client_id"), "{error}");
        let user = r#"{"type": "authorized_user", "client_id": "1.apps", "client_secret": "d-secret", "refresh_token": "1//refresh-secret", "quota_project_id": "quota-p"}"#;
        let Credential::Key(key) = Credential::classify(user).unwrap() else {
            panic!("not a key")
        };
        assert_eq!(key.kind(), "authorized_user");
        assert_eq!(key.project(), Some("quota-p"));
        let shown = format!("{key:?}");
        assert!(
            !shown.contains("d-secret") && !shown.contains("refresh-secret"),
            "{shown}"
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(user);
        assert!(matches!(
            Credential::classify(&encoded).unwrap(),
            Credential::Key(GoogleKey::AuthorizedUser(_))
        ));
        let error = Credential::classify(r#"{"type": "external_account"}"#).unwrap_err();
        assert!(error.to_string().contains("'external_account'"), "{error}");
        let error = Credential::classify(r#"{"type": "service_account"}"#).unwrap_err();
        assert!(error.to_string().contains("client_email"), "{error}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(r#"{"type": "x"}"#);
        let error = Credential::classify(&encoded).unwrap_err();
        assert!(error.to_string().contains("'x'"), "{error}");
    }

    #[test]
    fn token_answers_and_errors_are_read() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let token = parse_token_response(
            http::StatusCode::OK,
            br#"{"access_token":"ya29.abc","expires_in":3599,"token_type":"Bearer"}"#,
            now,
        )
        .unwrap();
        assert_eq!(token.secret(), "ya29.abc");
        assert_eq!(token.expires, now + Duration::from_secs(3599));
        assert!(token.refresh_at() < token.expires && token.refresh_at() > now);
        assert!(token.usable_at(now + Duration::from_secs(3500)));
        assert!(!token.usable_at(now + Duration::from_secs(3590)));
        let short = AccessToken::new("t", now, Duration::from_secs(12));
        assert!(short.usable_at(now + Duration::from_secs(9)));
        assert!(!short.usable_at(now + Duration::from_secs(11)));
        assert!(!format!("{token:?}").contains("ya29"));
        // A lifetime past the clock's range panicked; it counts as a day.
        let forever = parse_token_response(
            http::StatusCode::OK,
            br#"{"access_token":"t","expires_in":18446744073709551615}"#,
            now,
        )
        .unwrap();
        assert_eq!(forever.expires, now + MAX_TOKEN_LIFETIME);
        let error = parse_token_response(
            http::StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
            now,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the Google token endpoint answered 400: invalid_grant: Invalid JWT Signature."
        );
    }
}
