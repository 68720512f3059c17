//! KV v2 metadata of one secret: its current version, when that was written and whether it is
//! deleted. Never the value (the admin console shows this for each virtual key's copy).

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;
use vaultgate_core::Result;

use super::VaultClient;

/// The state of a secret's current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretVersion {
    pub version: u64,
    /// RFC 3339, when the current version was written.
    pub written_at: Option<String>,
    /// RFC 3339, when the current version was soft-deleted; `None` while it is readable.
    pub deleted_at: Option<String>,
    /// The current version's data is gone for good.
    pub destroyed: bool,
}

impl VaultClient {
    /// `GET …/metadata/…` of secret `name`; `None` when Vault has no such secret at all.
    pub async fn secret_version(&self, name: &str) -> Result<Option<SecretVersion>> {
        let url = self.secret_url("metadata", name, false)?;
        let reply = self.authed("read_metadata", Method::GET, url, None).await?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            status => return Err(self.fail("read metadata of", name, status, &reply)),
        }
        let data = reply.body.as_ref().and_then(|b| b.get("data"));
        let version = data
            .and_then(|d| d.get("current_version"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let current = data.and_then(|d| d.pointer(&format!("/versions/{version}")));
        let time = |field: &str| {
            current
                .and_then(|v| v.get(field))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        Ok(Some(SecretVersion {
            version,
            written_at: time("created_time"),
            deleted_at: time("deletion_time"),
            destroyed: current
                .and_then(|v| v.get("destroyed"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }))
    }
}
