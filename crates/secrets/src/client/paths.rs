//! Reads of any Vault path (`vault://mount/path#field`): KV v1 and v2 (found by asking Vault
//! which engine the mount is) and dynamic engines (AWS, GCP, Azure, databases…), whose answers
//! carry a lease; and the two lease calls, renew and revoke.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use vaultgate_core::{Error, Result};

use super::{VaultClient, secs, segments};

/// What one read of a path gave: every field (numbers and booleans as text, objects as JSON),
/// and the lease when the engine issued one.
pub struct PathRead {
    pub fields: BTreeMap<String, SecretString>,
    pub lease: Option<Lease>,
    /// How long the values are good for when the answer says so without a lease (a KV v1
    /// `ttl`, a GCP token's `token_ttl`).
    pub ttl: Option<Duration>,
}

/// A lease of a dynamic secret. The id is a handle on the credentials (it can renew and revoke
/// them), so it is never printed.
pub struct Lease {
    pub id: SecretString,
    pub duration: Duration,
    pub renewable: bool,
}

impl std::fmt::Debug for PathRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathRead")
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field("lease", &self.lease.as_ref().map(|l| l.duration))
            .finish()
    }
}

impl VaultClient {
    /// `{ADDR}/v1/{secret namespace}/{path}`: for messages; never a value.
    pub fn path_url(&self, path: &str) -> String {
        self.api_url(self.inner.settings.secret_namespace.as_deref(), path)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| path.to_owned())
    }

    /// Reads `path` (`mount/rest`): `None` when Vault has nothing there (404). A KV v2 mount is
    /// read at `mount/data/rest` (unless the path says `data/` itself), `version` pinning one
    /// version; other engines are read as they are.
    pub async fn read_path(&self, path: &str, version: Option<u64>) -> Result<Option<PathRead>> {
        crate::client::validate_name(path)?;
        let (url_path, kv2) = match self.kv2_mount(path).await {
            Some(mount) => {
                let rest = path
                    .strip_prefix(mount.as_str())
                    .unwrap_or(path)
                    .trim_start_matches('/');
                if rest.starts_with("data/") {
                    (path.to_owned(), true)
                } else {
                    (format!("{mount}/data/{rest}"), true)
                }
            }
            None => (path.to_owned(), false),
        };
        let namespace = self.inner.settings.secret_namespace.clone();
        let mut url = self.api_url(namespace.as_deref(), &url_path)?;
        if let Some(version) = version {
            url.query_pairs_mut()
                .append_pair("version", &version.to_string());
        }
        let reply = self.authed("read_path", Method::GET, url, None).await?;
        let shown = || self.path_url(&url_path);
        match reply.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            status => {
                return Err(Error::vault(
                    format!("read {}: {} {}", shown(), status.as_u16(), reply.errors()),
                    Some(status.as_u16()),
                ));
            }
        }
        let body = reply.body.unwrap_or(Value::Null);
        let data = if kv2 {
            body.pointer("/data/data")
        } else {
            body.get("data")
        };
        let Some(Value::Object(data)) = data else {
            // KV v2's deleted or destroyed latest version has `data: null`.
            return Ok(None);
        };
        let fields = data
            .iter()
            .map(|(name, value)| {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (name.clone(), SecretString::from(text))
            })
            .collect();
        let lease_id = body
            .get("lease_id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        let duration = Duration::from_secs(secs(body.get("lease_duration")));
        let lease = lease_id.map(|id| Lease {
            id: SecretString::from(id.to_owned()),
            duration,
            renewable: body
                .get("renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        });
        // Without a lease, a lifetime only when the secret states one: a KV v1 secret written
        // with `ttl` (which Vault then returns as `lease_duration`; without it the mount's
        // default shows there, meaning nothing), a GCP token's `token_ttl`.
        let token_ttl = secs(data.get("token_ttl"));
        let ttl = if lease.is_some() {
            None
        } else if token_ttl > 0 {
            Some(Duration::from_secs(token_ttl))
        } else {
            (data.contains_key("ttl") && !duration.is_zero()).then_some(duration)
        };
        Ok(Some(PathRead { fields, lease, ttl }))
    }

    /// The mount of `path` when it is a KV v2 engine, from `sys/internal/ui/mounts/{path}` (what
    /// the Vault CLI asks); `None` for other engines, or when Vault does not say.
    async fn kv2_mount(&self, path: &str) -> Option<String> {
        let namespace = self.inner.settings.secret_namespace.clone();
        let url = self
            .api_url(
                namespace.as_deref(),
                &format!("sys/internal/ui/mounts/{path}"),
            )
            .ok()?;
        let reply = self.authed("mount", Method::GET, url, None).await.ok()?;
        let data = reply.body.as_ref()?.get("data")?;
        let kv2 = data.get("type").and_then(Value::as_str) == Some("kv")
            && data.pointer("/options/version").and_then(Value::as_str) == Some("2");
        let mount: Vec<&str> = segments(data.get("path").and_then(Value::as_str)?).collect();
        (kv2 && !mount.is_empty()).then(|| mount.join("/"))
    }

    /// `PUT sys/leases/renew`: the lease's new duration (Vault may cap it at the max TTL).
    pub async fn renew_lease(&self, lease: &SecretString, increment: Duration) -> Result<Duration> {
        use secrecy::ExposeSecret;
        let body = json!({"lease_id": lease.expose_secret(), "increment": increment.as_secs()});
        let reply = self.lease_call("renew", body).await?;
        Ok(Duration::from_secs(secs(
            reply.as_ref().and_then(|b| b.get("lease_duration")),
        )))
    }

    /// `PUT sys/leases/revoke`: the credentials stop working now.
    pub async fn revoke_lease(&self, lease: &SecretString) -> Result<()> {
        use secrecy::ExposeSecret;
        self.lease_call("revoke", json!({"lease_id": lease.expose_secret()}))
            .await
            .map(|_| ())
    }

    async fn lease_call(&self, what: &'static str, body: Value) -> Result<Option<Value>> {
        let namespace = self.inner.settings.secret_namespace.clone();
        let url = self.api_url(namespace.as_deref(), &format!("sys/leases/{what}"))?;
        let reply = self.authed(what, Method::PUT, url, Some(body)).await?;
        if !reply.status.is_success() {
            return Err(Error::vault(
                format!("lease {what}: {} {}", reply.status.as_u16(), reply.errors()),
                Some(reply.status.as_u16()),
            ));
        }
        Ok(reply.body)
    }
}
