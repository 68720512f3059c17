//! A thin Vault / OpenBao client on reqwest: the dozen endpoints vaultgate needs, with the
//! behaviour of a good long-running client (COMPAT §7): one mTLS-capable HTTP client for every
//! call, bounded retries of transient failures, renewal at ~2/3 of the TTL and re-login forever.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use rand::Rng;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use vaultgate_core::{Error, Result};

use crate::metrics as m;
use crate::settings::{VaultAuth, VaultSettings, trim_part};

mod location;
mod login;
mod metadata;
mod paths;
mod transport;

pub(crate) use transport::Reply;
use transport::{build_http, error_status};

pub use location::KvLocation;
use login::renewal_task;
pub use metadata::SecretVersion;
pub use paths::{Lease, PathRead};

/// Re-login backoff bounds (Vault Agent's).
const LOGIN_BACKOFF_MIN: Duration = Duration::from_secs(1);
const LOGIN_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Longest `Retry-After` we honour inside one call; longer waits are the refresher's job.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(10);
/// A 403 re-logs in only with a token older than this (else it is a policy problem).
const RELOGIN_MIN_AGE: Duration = Duration::from_secs(2);
/// How often a non-expiring token (root, periodic without TTL) is checked with lookup-self.
const NON_EXPIRING_CHECK: Duration = Duration::from_secs(3600);

/// What `lookup-self` says about our token. Never holds the token itself.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// `approle`, `cert`, `token` or `kubernetes`.
    pub method: &'static str,
    /// Seconds left when looked up; 0 means the token never expires (root).
    pub ttl_secs: u64,
    pub renewable: bool,
    pub policies: Vec<String>,
    /// RFC 3339, when the token expires.
    pub expire_time: Option<String>,
}

/// The current token and what we know about it.
struct TokenState {
    token: SecretString,
    /// Bumped at every login: lets a 403 handler see whether someone already re-logged.
    generation: u64,
    /// Lease length when obtained or last renewed, in seconds (0 = never expires).
    ttl_secs: u64,
    /// When `ttl_secs` was measured.
    measured: Instant,
    /// When this token was obtained.
    logged_in: Instant,
    renewable: bool,
    policies: Vec<String>,
    /// The increment to ask for on renewal (the token's creation TTL).
    increment_secs: u64,
    /// False once a renewal came back shorter than asked: the max TTL is near, re-login instead.
    growing: bool,
}

impl TokenState {
    fn remaining(&self) -> Duration {
        Duration::from_secs(self.ttl_secs).saturating_sub(self.measured.elapsed())
    }
}

struct Inner {
    settings: VaultSettings,
    http: reqwest::Client,
    base: url::Url,
    token: ArcSwapOption<TokenState>,
    /// Single-flight for logins.
    login_lock: tokio::sync::Mutex<()>,
    /// The last login/renewal failure, cleared on success (readiness).
    auth_error: Mutex<Option<String>>,
    /// Wakes the renewal task to re-plan after a login done elsewhere.
    replan: Arc<Notify>,
    shutdown: CancellationToken,
    logins: AtomicU64,
    renewals: AtomicU64,
}

/// Counters of token upkeep (for tests, logs and debugging).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    /// Successful logins, the first included (for token auth: successful token checks).
    pub logins: u64,
    /// Successful renewals.
    pub renewals: u64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A Vault / OpenBao client. Cheap to clone (an `Arc` inside); the renewal task stops when the
/// last clone is dropped or [`VaultClient::shutdown`] is called.
#[derive(Clone)]
pub struct VaultClient {
    inner: Arc<Inner>,
    /// KV calls go here instead of the settings' location (see [`VaultClient::at_location`]).
    location: Option<Arc<KvLocation>>,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("addr", &self.inner.settings.addr)
            .field("auth", &self.inner.settings.auth.method())
            .finish()
    }
}

/// Rejects names that could escape the mount or smuggle control characters (COMPAT §2).
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::bad_request(format!(
            "invalid Vault secret name: {why}"
        )))
    };
    if name.contains("..") {
        return bad("contains '..'");
    }
    if name.chars().any(|c| {
        let c = c as u32;
        c <= 0x1f || (0x7f..=0x9f).contains(&c) || c == 0x2028 || c == 0x2029
    }) {
        return bad("contains a control character");
    }
    if name.split('/').any(|segment| segment.trim() == ".") {
        return bad("contains a '.' segment");
    }
    Ok(())
}

pub(crate) fn segments(part: &str) -> impl Iterator<Item = &str> {
    part.split('/').map(str::trim).filter(|s| !s.is_empty())
}

fn secs(value: Option<&Value>) -> u64 {
    value
        .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)))
        .unwrap_or(0)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn jitter(base: Duration, low: f64, high: f64) -> Duration {
    base.mul_f64(rand::rng().random_range(low..high))
}

impl VaultClient {
    /// Builds the HTTP client, logs in, looks the token up and starts the renewal task.
    /// Must be called inside a tokio runtime.
    pub async fn connect(settings: VaultSettings) -> Result<Self> {
        let http = build_http(&settings)?;
        let base = url::Url::parse(&settings.addr)
            .map_err(|e| Error::Config(format!("HCP_VAULT_ADDR '{}': {e}", settings.addr)))?;
        if base.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "HCP_VAULT_ADDR '{}' is not a base URL",
                settings.addr
            )));
        }
        let client = Self {
            location: None,
            inner: Arc::new(Inner {
                settings,
                http,
                base,
                token: ArcSwapOption::empty(),
                login_lock: tokio::sync::Mutex::new(()),
                auth_error: Mutex::new(None),
                replan: Arc::new(Notify::new()),
                shutdown: CancellationToken::new(),
                logins: AtomicU64::new(0),
                renewals: AtomicU64::new(0),
            }),
        };
        client.relogin(None).await?;
        if let Some(state) = client.inner.token.load_full() {
            tracing::info!(
                addr = %client.inner.settings.addr,
                method = client.inner.settings.auth.method(),
                ttl_secs = state.ttl_secs,
                renewable = state.renewable,
                policies = ?state.policies,
                "logged in to Vault"
            );
        }
        let weak = Arc::downgrade(&client.inner);
        let shutdown = client.inner.shutdown.clone();
        tokio::spawn(renewal_task(weak, client.inner.replan.clone(), shutdown));
        Ok(client)
    }

    pub fn settings(&self) -> &VaultSettings {
        &self.inner.settings
    }

    pub fn stats(&self) -> ClientStats {
        ClientStats {
            logins: self.inner.logins.load(Ordering::Relaxed),
            renewals: self.inner.renewals.load(Ordering::Relaxed),
        }
    }

    /// Stops the renewal task (the client keeps working for explicit calls).
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// The last login or renewal failure, `None` once one succeeded since.
    pub fn auth_error(&self) -> Option<String> {
        self.inner.auth_error.lock().ok().and_then(|e| e.clone())
    }

    /// Seconds the current token has left; `None` when it never expires or there is none.
    pub fn token_ttl_remaining(&self) -> Option<u64> {
        let state = self.inner.token.load_full()?;
        (state.ttl_secs > 0).then(|| state.remaining().as_secs())
    }

    /// `{ADDR}/v1/{secret_ns}/{mount}/data/{prefix}/{name}`: for messages; never a value.
    pub fn secret_path(&self, name: &str) -> Result<String> {
        Ok(self.secret_url("data", name, false)?.to_string())
    }

    /// The path of a secret relative to the secret namespace (`{mount}/data/{prefix}/{name}`),
    /// the form `sys/capabilities-self` and policies use.
    pub fn secret_policy_path(&self, name: &str) -> Result<String> {
        self.policy_path("data", name)
    }

    /// [`VaultClient::secret_policy_path`] for `data` or `metadata`.
    pub(crate) fn policy_path(&self, kind: &str, name: &str) -> Result<String> {
        validate_name(name)?;
        let mut parts: Vec<&str> = segments(self.kv_mount()).collect();
        parts.extend(location::below_mount(kind, self.kv_path_prefix(), name));
        Ok(parts.join("/"))
    }

    pub(crate) fn secret_url(&self, kind: &str, name: &str, allow_empty: bool) -> Result<url::Url> {
        validate_name(name)?;
        let name = trim_part(name);
        if name.is_none() && !allow_empty {
            return Err(Error::bad_request("invalid Vault secret name: empty"));
        }
        let mut url = self.inner.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| Error::Config("HCP_VAULT_ADDR is not a base URL".into()))?;
            path.pop_if_empty().push("v1");
            path.extend(segments(self.kv_namespace().unwrap_or("")));
            path.extend(segments(self.kv_mount()));
            path.extend(location::below_mount(
                kind,
                self.kv_path_prefix(),
                name.as_deref().unwrap_or(""),
            ));
        }
        Ok(url)
    }

    /// A `/v1/...` URL from an API path (segments trimmed, empty ones dropped).
    fn api_url(&self, namespace: Option<&str>, path: &str) -> Result<url::Url> {
        let mut url = self.inner.base.clone();
        {
            let mut segs = url
                .path_segments_mut()
                .map_err(|()| Error::Config("HCP_VAULT_ADDR is not a base URL".into()))?;
            segs.pop_if_empty().push("v1");
            segs.extend(segments(namespace.unwrap_or("")));
            segs.extend(segments(path));
        }
        Ok(url)
    }

    /// Reads `data.data.key`. `None` when the secret does not exist or its latest version is
    /// deleted or destroyed (404, with or without a body).
    pub async fn read_secret(&self, name: &str) -> Result<Option<SecretString>> {
        let url = self.secret_url("data", name, false)?;
        let reply = self.authed("read", Method::GET, url, None).await?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            status => return Err(self.fail("read", name, status, &reply)),
        }
        let data = reply.body.as_ref().and_then(|b| b.pointer("/data/data"));
        match data.and_then(|d| d.get("key")) {
            Some(Value::String(value)) => Ok(Some(SecretString::from(value.clone()))),
            Some(_) => Err(Error::vault(
                format!("{}: field `key` is not a string", self.secret_path(name)?),
                Some(200),
            )),
            None if data.is_none_or(Value::is_null) => Ok(None),
            None => {
                let fields: Vec<String> = data
                    .and_then(Value::as_object)
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default();
                Err(Error::vault(
                    format!(
                        "{}: no field `key` (fields: {}); store the value as key=VALUE",
                        self.secret_path(name)?,
                        fields.join(", ")
                    ),
                    Some(200),
                ))
            }
        }
    }

    /// Writes `{"key": value, "description": D}` as a new version, then the custom metadata.
    pub async fn write_secret(
        &self,
        name: &str,
        value: &SecretString,
        description: Option<&str>,
        custom_metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        let url = self.secret_url("data", name, false)?;
        let mut data = serde_json::Map::new();
        data.insert(
            "key".into(),
            Value::String(value.expose_secret().to_owned()),
        );
        if let Some(description) = description {
            data.insert("description".into(), Value::String(description.to_owned()));
        }
        let body = json!({ "data": data });
        let reply = self.authed("write", Method::POST, url, Some(body)).await?;
        if !reply.status.is_success() {
            return Err(self.fail("write", name, reply.status, &reply));
        }
        if !custom_metadata.is_empty() {
            let url = self.secret_url("metadata", name, false)?;
            let body = json!({ "custom_metadata": custom_metadata });
            let reply = self
                .authed("write_metadata", Method::POST, url, Some(body))
                .await?;
            if !reply.status.is_success() {
                return Err(self.fail("write metadata of", name, reply.status, &reply));
            }
        }
        Ok(())
    }

    /// Soft-deletes the latest version (`DELETE …/data/…`); succeeds when absent too.
    pub async fn delete_secret(&self, name: &str) -> Result<()> {
        let url = self.secret_url("data", name, false)?;
        let reply = self.authed("delete", Method::DELETE, url, None).await?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(self.fail("delete", name, reply.status, &reply))
        }
    }

    /// Removes every version and the metadata (`DELETE …/metadata/…`): nothing left to undelete.
    pub async fn destroy_secret(&self, name: &str) -> Result<()> {
        let url = self.secret_url("metadata", name, false)?;
        let reply = self.authed("destroy", Method::DELETE, url, None).await?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(self.fail("destroy", name, reply.status, &reply))
        }
    }

    /// Names under `prefix_dir` (relative to the path prefix; folders end in `/`). An empty or
    /// absent folder is an empty list. Soft-deleted secrets are still listed (metadata remains).
    pub async fn list_secrets(&self, prefix_dir: &str) -> Result<Vec<String>> {
        let mut url = self.secret_url("metadata", prefix_dir, true)?;
        url.query_pairs_mut().append_pair("list", "true");
        let reply = self.authed("list", Method::GET, url, None).await?;
        match reply.status {
            StatusCode::OK => Ok(strings(
                reply.body.as_ref().and_then(|b| b.pointer("/data/keys")),
            )),
            StatusCode::NOT_FOUND => Ok(Vec::new()),
            status => Err(self.fail("list", prefix_dir, status, &reply)),
        }
    }

    /// A fresh `lookup-self` of the current token.
    pub async fn token_info(&self) -> Result<TokenInfo> {
        let state = self
            .inner
            .token
            .load_full()
            .ok_or_else(|| Error::vault("not logged in", None))?;
        let reply = self.lookup_self(&state.token).await?;
        let data = reply.body.as_ref().and_then(|b| b.get("data"));
        Ok(TokenInfo {
            method: self.inner.settings.auth.method(),
            ttl_secs: secs(data.and_then(|d| d.get("ttl"))),
            renewable: data
                .and_then(|d| d.get("renewable"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            policies: strings(data.and_then(|d| d.get("policies"))),
            expire_time: data
                .and_then(|d| d.get("expire_time"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// The token's capabilities on `path`, relative to the secret namespace (for example
    /// `secret/data/litellm/x`; see [`VaultClient::secret_policy_path`]).
    pub async fn capabilities_self(&self, path: &str) -> Result<Vec<String>> {
        let url = self.api_url(self.kv_namespace(), "sys/capabilities-self")?;
        let body = json!({ "paths": [path] });
        let reply = self
            .authed("capabilities", Method::POST, url, Some(body))
            .await?;
        if !reply.status.is_success() {
            return Err(Error::vault(
                format!(
                    "capabilities-self on {path}: {} {}",
                    reply.status.as_u16(),
                    reply.errors()
                ),
                Some(reply.status.as_u16()),
            ));
        }
        let data = reply.body.as_ref().and_then(|b| b.get("data"));
        let caps = data
            .and_then(|d| d.get(path))
            .or_else(|| data.and_then(|d| d.get("capabilities")));
        Ok(strings(caps))
    }

    /// The error of a KV call that Vault answered with `status`. A 403 names the policy path
    /// and the capability the call needs, so the operator knows the line to add.
    pub(crate) fn fail(&self, what: &str, name: &str, status: StatusCode, reply: &Reply) -> Error {
        if status == StatusCode::FORBIDDEN {
            let (kind, capabilities) = match what {
                "read" => ("data", r#""read""#),
                "write" => ("data", r#""create", "update""#),
                "write metadata of" => ("metadata", r#""create", "update""#),
                "delete" => ("data", r#""delete""#),
                "destroy" => ("metadata", r#""delete""#),
                "list" => ("metadata", r#""list""#),
                _ => ("data", r#""read""#),
            };
            let path = self
                .policy_path(kind, name)
                .unwrap_or_else(|_| name.to_owned());
            return Error::vault(
                format!(
                    "Vault denied {what} {path} (403 {}): the gateway's Vault token lacks a \
                     capability; add to its policy: path \"{path}\" {{ capabilities = \
                     [{capabilities}] }}",
                    reply.errors()
                ),
                Some(403),
            );
        }
        let path = self.secret_path(name).unwrap_or_else(|_| name.to_owned());
        Error::vault(
            format!("{what} {path}: {} {}", status.as_u16(), reply.errors()),
            Some(status.as_u16()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for bad in [
            "a/../b",
            "..",
            "a\nb",
            "a\u{7f}",
            "a\u{85}",
            "a\u{2028}",
            "x/./y",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        for good in [
            "AZURE_API_KEY",
            "litellm/virtual-key-abc",
            "a.b",
            "name with space",
        ] {
            assert!(validate_name(good).is_ok(), "{good:?}");
        }
    }
}
