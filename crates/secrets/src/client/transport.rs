//! How calls reach Vault: the one HTTP client (CA, mTLS identity, timeouts), bounded retries
//! of transient failures, and the single re-login a 403 with an old token deserves.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use vaultgate_core::{Error, Result};

use super::{RELOGIN_MIN_AGE, RETRY_AFTER_MAX, VaultClient, jitter};
use crate::metrics as m;
use crate::settings::{VaultAuth, VaultSettings};

/// An answer from Vault after retries: status and JSON body (if any).
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
}

impl Reply {
    /// Vault's `errors` array, joined; never contains a secret value.
    pub fn errors(&self) -> String {
        let errors = self
            .body
            .as_ref()
            .and_then(|b| b.get("errors"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.trim().replace("\n\t* ", " ").replace('\n', " "))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        if errors.is_empty() {
            "(no error text)".into()
        } else {
            errors
        }
    }

    fn is_permission_denied(&self) -> bool {
        self.status == StatusCode::FORBIDDEN
    }
}

fn read_file(what: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Config(format!("{what} {}: {e}", path.display())))
}

pub(super) fn build_http(settings: &VaultSettings) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("vaultgate/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &settings.ca_cert {
        let pem = read_file("cannot read the Vault CA certificate", ca)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::Config(format!("Vault CA certificate {}: {e}", ca.display())))?;
        builder = builder.tls_certs_only(certs);
    }
    if settings.skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    if let (Some(cert), Some(key)) = (&settings.client_cert, &settings.client_key) {
        let mut pem = pem_blocks(&read_file(
            "cannot read the Vault client certificate",
            cert,
        )?);
        pem.extend(pem_blocks(&read_file(
            "cannot read the Vault client key",
            key,
        )?));
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            Error::Config(format!(
                "Vault client certificate {} / key {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| Error::Config(format!("Vault HTTP client: {e}")))
}

/// Only the certificate and private-key blocks of a PEM file: `openssl` also writes
/// `EC PARAMETERS` blocks and bag attributes, which the TLS stack refuses.
fn pem_blocks(pem: &[u8]) -> Vec<u8> {
    const KEEP: [&str; 4] = [
        "CERTIFICATE",
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
    ];
    let text = String::from_utf8_lossy(pem);
    let mut out = String::new();
    let mut inside: Option<&str> = None;
    for line in text.lines() {
        let line = line.trim();
        match inside {
            None => {
                if let Some(label) = line
                    .strip_prefix("-----BEGIN ")
                    .and_then(|l| l.strip_suffix("-----"))
                    && KEEP.contains(&label)
                {
                    inside = Some(label);
                    out.push_str(line);
                    out.push('\n');
                }
            }
            Some(label) => {
                out.push_str(line);
                out.push('\n');
                if line == format!("-----END {label}-----") {
                    inside = None;
                }
            }
        }
    }
    out.into_bytes()
}

impl VaultClient {
    /// A call with the current token; on 403 re-logs in (single-flight) and tries once more.
    pub(crate) async fn authed(
        &self,
        op: &'static str,
        method: Method,
        url: url::Url,
        body: Option<Value>,
    ) -> Result<Reply> {
        let state = self
            .inner
            .token
            .load_full()
            .ok_or_else(|| Error::vault("not logged in to Vault", None))?;
        let reply = self
            .send(
                op,
                method.clone(),
                url.clone(),
                body.as_ref(),
                Some(&state.token),
                None,
            )
            .await?;
        // A token that is seconds old and still denied lacks a policy: a new login won't help.
        if !reply.is_permission_denied()
            || !self.can_relogin()
            || state.logged_in.elapsed() < RELOGIN_MIN_AGE
        {
            return Ok(reply);
        }
        tracing::warn!(
            operation = op,
            "Vault said permission denied; logging in again"
        );
        self.relogin(Some(state.generation)).await?;
        let Some(state) = self.inner.token.load_full() else {
            return Ok(reply);
        };
        self.send(op, method, url, body.as_ref(), Some(&state.token), None)
            .await
    }

    pub(super) fn can_relogin(&self) -> bool {
        !matches!(self.inner.settings.auth, VaultAuth::Token { .. })
    }

    /// One HTTP call with bounded retries of transport errors, 412, 429 and 5xx except 501
    /// (honouring `Retry-After`); other statuses are returned as they are.
    pub(super) async fn send(
        &self,
        op: &'static str,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
        token: Option<&SecretString>,
        namespace: Option<&str>,
    ) -> Result<Reply> {
        let max_retries = self.inner.settings.max_retries;
        let mut attempt = 0u32;
        loop {
            let mut request = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .header("X-Vault-Request", "true");
            if let Some(token) = token {
                // Sensitive: never indexed by HPACK nor shown by http's Debug.
                let mut value = reqwest::header::HeaderValue::from_str(token.expose_secret())
                    .map_err(|_| {
                        Error::Config(
                            "the Vault token has characters not allowed in a header".into(),
                        )
                    })?;
                value.set_sensitive(true);
                request = request.header("X-Vault-Token", value);
            }
            if let Some(ns) = namespace {
                request = request.header("X-Vault-Namespace", ns);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            let result = request.send().await;
            let elapsed = started.elapsed();
            m::request_duration(op, elapsed);
            let retry_wait = match result {
                Ok(response) => {
                    let status = response.status();
                    m::request(op, status.as_str());
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let retryable = status == StatusCode::PRECONDITION_FAILED
                        || status == StatusCode::TOO_MANY_REQUESTS
                        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED);
                    if !retryable || attempt >= max_retries {
                        // A body that is not JSON (a proxy page) is treated as none.
                        let bytes = response.bytes().await.unwrap_or_default();
                        let body = serde_json::from_slice(&bytes).ok();
                        return Ok(Reply { status, body });
                    }
                    tracing::debug!(
                        operation = op,
                        status = status.as_u16(),
                        attempt,
                        "Vault call will be retried"
                    );
                    retry_after.map(|d| d.min(RETRY_AFTER_MAX))
                }
                Err(error) => {
                    m::request(op, "error");
                    let error = error.without_url();
                    let what = if error.is_timeout() {
                        "timed out"
                    } else {
                        "unreachable"
                    };
                    if attempt >= max_retries {
                        return Err(Error::vault(
                            format!("{op} {}: Vault {what}: {}", url.path(), chain(&error)),
                            None,
                        ));
                    }
                    tracing::debug!(operation = op, attempt, error = %error, "Vault call will be retried");
                    None
                }
            };
            let backoff =
                Duration::from_millis(250u64 << attempt.min(3)).min(Duration::from_millis(1500));
            // Retry-After is a floor (Vault sends `0` under a rate-limit quota).
            let wait = jitter(backoff, 0.8, 1.2).max(retry_wait.unwrap_or_default());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.shutdown.cancelled() => {
                    return Err(Error::vault(format!("{op} {}: shutting down", url.path()), None));
                }
            }
            attempt += 1;
        }
    }
}

/// An error with its causes (`error sending request: … connection refused`), which reqwest's
/// own `Display` leaves out. Transport errors carry no secret (the URL is stripped).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub(super) fn error_status(error: &Error) -> Option<u16> {
    match error {
        Error::Vault { status, .. } => *status,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_keeps_certificates_and_keys_only() {
        let input = b"Bag Attributes\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n";
        let out = String::from_utf8(pem_blocks(input)).unwrap();
        assert_eq!(
            out,
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"
        );
    }
}
