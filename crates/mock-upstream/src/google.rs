//! Google's side of Vertex AI: the OAuth token endpoint (`POST /token`), which verifies the
//! RS256 signature of a service account's JWT with the public key of the test key pair and
//! checks its claims before issuing an access token, and the Bearer check of Vertex calls
//! (`/v1/projects/…`), which take only tokens it issued (and not expired) or was told to take.
//! Also `:predict` answers for text embeddings.

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
}

impl GoogleAuth {
    pub fn new(audience: String) -> Self {
        Self {
            audience,
            lifetime: Duration::from_secs(3600),
            issued: Vec::new(),
            accepted: Vec::new(),
            counter: 0,
        }
    }

    pub fn accept(&mut self, token: &str) {
        self.accepted.push(token.to_owned());
    }

    /// Issues a token for a form body `grant_type=…&assertion=…` whose JWT verifies, or says
    /// why not (Google's `invalid_grant`).
    pub fn exchange(&mut self, form: &[u8]) -> Result<(String, u64), String> {
        let pairs: Vec<(String, String)> = url_pairs(form);
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
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
        self.counter += 1;
        let token = format!("ya29.mock-{}", self.counter);
        self.issued
            .push((token.clone(), Instant::now() + self.lifetime));
        Ok((token, self.lifetime.as_secs()))
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
