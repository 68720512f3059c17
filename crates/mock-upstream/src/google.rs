//! Google's side of Vertex AI: the OAuth token endpoint (`POST /token`), which verifies the
//! RS256 signature of a service account's JWT with the public key of the test key pair and
//! checks its claims, or the client and refresh token of gcloud's test user, before issuing an
//! access token; the GCE metadata server's token and project (`/computeMetadata/v1/…`, only
//! with `Metadata-Flavor: Google`); and the Bearer check of Vertex calls (`/v1/projects/…`),
//! which take only tokens it issued (and not expired) or was told to take. Also `:predict`
//! answers for text embeddings.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use http::HeaderMap;
use serde_json::{Value, json};

use crate::{USAGE, respond};

/// The private key of the test service account (PKCS#8 PEM). A test key, for tests only.
pub const TEST_PRIVATE_KEY: &str = include_str!("testdata/google_test_key.pem");
/// The public half, which the mock verifies assertions with.
pub const TEST_PUBLIC_KEY: &str = include_str!("testdata/google_test_key.pub.pem");
/// A key the mock does not know: assertions signed with it are refused.
pub const UNKNOWN_PRIVATE_KEY: &str = include_str!("testdata/google_unknown_key.pem");
/// The client email of test service accounts.
pub const TEST_CLIENT_EMAIL: &str = "vaultgate-test@test-project.iam.gserviceaccount.com";

/// The test user's OAuth client and refresh token (what `gcloud auth application-default
/// login` writes).
pub const TEST_CLIENT_ID: &str = "764086051850-test.apps.googleusercontent.com";
pub const TEST_CLIENT_SECRET: &str = "d-FL95Q19q7MQmFpd7hHD0Ty";
pub const TEST_REFRESH_TOKEN: &str = "1//0test-refresh-token-Zx9";
/// The project the metadata server names.
pub const METADATA_PROJECT: &str = "metadata-project";

/// gcloud's `application_default_credentials.json` of the test user, for `token_uri` (`None`:
/// the file names none, as gcloud writes it) and `refresh_token`.
pub fn authorized_user_json(
    token_uri: Option<&str>,
    refresh_token: &str,
    quota_project: &str,
) -> String {
    let mut user = json!({
        "account": "",
        "client_id": TEST_CLIENT_ID,
        "client_secret": TEST_CLIENT_SECRET,
        "quota_project_id": quota_project,
        "refresh_token": refresh_token,
        "type": "authorized_user",
        "universe_domain": "googleapis.com",
    });
    if let Some(uri) = token_uri {
        user["token_uri"] = json!(uri);
    }
    user.to_string()
}

/// A service-account key file's JSON for `token_uri`, signed with `private_key`.
pub fn service_account_json(token_uri: &str, private_key: &str, project: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": project,
        "private_key_id": "test-key-1",
        "private_key": private_key,
        "client_email": TEST_CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}

/// What the mock knows of Google auth.
#[derive(Debug)]
pub(crate) struct GoogleAuth {
    /// Where assertions must be addressed (`aud`): the mock's own `/token` URL.
    pub audience: String,
    /// Lifetime of the tokens it issues.
    pub lifetime: Duration,
    issued: Vec<(String, Instant)>,
    /// Tokens taken as they are (a Vault GCP engine's token).
    accepted: Vec<String>,
    counter: usize,
    /// Token requests (both endpoints) fail with a 500 while set.
    pub failing: bool,
}

impl GoogleAuth {
    pub fn new(audience: String) -> Self {
        Self {
            audience,
            lifetime: Duration::from_secs(3600),
            issued: Vec::new(),
            accepted: Vec::new(),
            counter: 0,
            failing: false,
        }
    }

    /// A new token `{kind}-{n}` of the mock's lifetime.
    fn issue(&mut self, kind: &str) -> (String, u64) {
        self.counter += 1;
        let token = format!("ya29.{kind}-{}", self.counter);
        self.issued
            .push((token.clone(), Instant::now() + self.lifetime));
        (token, self.lifetime.as_secs())
    }

    pub fn accept(&mut self, token: &str) {
        self.accepted.push(token.to_owned());
    }

    /// Issues a token for a form body `grant_type=…&assertion=…` whose JWT verifies, or
    /// `grant_type=refresh_token` with the test user's client and refresh token, or says why
    /// not (Google's `invalid_grant`).
    pub fn exchange(&mut self, form: &[u8]) -> Result<(String, u64), String> {
        let pairs: Vec<(String, String)> = url_pairs(form);
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if get("grant_type") == Some("refresh_token") {
            if get("client_id") != Some(TEST_CLIENT_ID)
                || get("client_secret") != Some(TEST_CLIENT_SECRET)
            {
                return Err("The OAuth client was not found.".into());
            }
            if get("refresh_token") != Some(TEST_REFRESH_TOKEN) {
                return Err("Token has been expired or revoked.".into());
            }
            return Ok(self.issue("user"));
        }
        if get("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return Err("unsupported grant_type".into());
        }
        let assertion = get("assertion").ok_or("no assertion")?;
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes())
            .map_err(|e| format!("the mock's public key: {e}"))?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_issuer(&[TEST_CLIENT_EMAIL]);
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
        let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
            .map_err(|e| format!("Invalid JWT: {e}"))?
            .claims;
        if claims.get("scope").and_then(Value::as_str)
            != Some("https://www.googleapis.com/auth/cloud-platform")
        {
            return Err("the assertion asks for no cloud-platform scope".into());
        }
        Ok(self.issue("mock"))
    }

    /// Whether a Vertex call carries a token the mock issued (and not expired) or accepts.
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        self.accepted.iter().any(|t| t == token)
            || self
                .issued
                .iter()
                .any(|(t, expires)| t == token && *expires > Instant::now())
    }
}

fn url_pairs(form: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(form).into_owned().collect()
}

/// Google's error answer.
pub(crate) fn google_error(status: u16, message: &str, kind: &str) -> Response {
    let body = json!({"error": {"code": status, "message": message, "status": kind}});
    respond(status, "application/json", Body::from(body.to_string()))
}

/// The token endpoint's answer for a form body.
pub(crate) fn token_answer(auth: &mut GoogleAuth, form: &[u8]) -> Response {
    if auth.failing {
        return failing();
    }
    match auth.exchange(form) {
        Ok((token, expires_in)) => {
            let body =
                json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"});
            respond(200, "application/json", Body::from(body.to_string()))
        }
        Err(why) => {
            let body = json!({"error": "invalid_grant", "error_description": why});
            respond(400, "application/json", Body::from(body.to_string()))
        }
    }
}

fn failing() -> Response {
    let body =
        json!({"error": "internal_failure", "error_description": "the mock was told to fail"});
    respond(500, "application/json", Body::from(body.to_string()))
}

/// The metadata server's answer to a GET of `path` (`None`: not one of its paths). Without
/// `Metadata-Flavor: Google` it refuses, as GCE does.
pub(crate) fn metadata_answer(
    auth: &mut GoogleAuth,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    let path = path.strip_prefix("/computeMetadata/v1/")?;
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        let text = "Missing required header \"Metadata-Flavor\": \"Google\"";
        return Some(respond(403, "text/plain", Body::from(text)));
    }
    Some(match path {
        "instance/service-accounts/default/token" if auth.failing => failing(),
        "instance/service-accounts/default/token" => {
            let (token, expires_in) = auth.issue("metadata");
            let body =
                json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"});
            respond(200, "application/json", Body::from(body.to_string()))
        }
        "project/project-id" => respond(200, "application/text", Body::from(METADATA_PROJECT)),
        _ => respond(404, "text/plain", Body::from("Not Found")),
    })
}

/// Vertex's `:predict` for text embeddings: one prediction per instance.
pub(crate) fn predict_answer(body: &Value) -> Response {
    let count = body
        .get("instances")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let predictions: Vec<Value> = (0..count)
        .map(|_| {
            json!({"embeddings": {"values": [0.5, -0.25, 0.125],
                "statistics": {"token_count": USAGE.0, "truncated": false}}})
        })
        .collect();
    respond(
        200,
        "application/json",
        Body::from(json!({"predictions": predictions}).to_string()),
    )
}
