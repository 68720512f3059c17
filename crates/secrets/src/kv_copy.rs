//! KV v2 calls for secrets the gateway writes itself (the virtual-key mirror): reads that say
//! which version they saw and whether it is live, deleted or destroyed; writes guarded by
//! check-and-set, so a write retried after a lost answer, or one that raced another writer, is
//! recognised instead of silently overwriting; custom metadata on its own; a recursive listing.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use vaultgate_core::{Error, Result};

use crate::client::VaultClient;

/// One version of a KV v2 secret as read.
#[derive(Debug)]
pub enum KvState {
    /// Readable; the value of its `key` field.
    Live(SecretString),
    /// Soft-deleted (`DELETE …/data/…`): undeletable by someone with the right, not readable.
    Deleted,
    /// Destroyed: the value is gone for good (the version number remains).
    Destroyed,
    /// Readable but without a `key` field: not a value the gateway wrote.
    Other,
    /// No such secret (or no version of it yet).
    Absent,
}

/// What a read saw: the version number (0 when the secret has none) and its state.
#[derive(Debug)]
pub struct KvRead {
    pub version: u64,
    pub state: KvState,
}

/// Longest folder depth a listing descends (aliases are at most 256 characters).
const MAX_LIST_DEPTH: usize = 64;

impl VaultClient {
    /// Reads the latest version of `name` (or `version`): its number and state.
    pub async fn read_kv(&self, name: &str, version: Option<u64>) -> Result<KvRead> {
        let mut url = self.secret_url("data", name, false)?;
        if let Some(version) = version {
            url.query_pairs_mut()
                .append_pair("version", &version.to_string());
        }
        let reply = self.authed("read", Method::GET, url, None).await?;
        if reply.status != StatusCode::OK && reply.status != StatusCode::NOT_FOUND {
            return Err(self.fail("read", name, reply.status, &reply));
        }
        let data = reply.body.as_ref().and_then(|b| b.get("data"));
        let metadata = data.and_then(|d| d.get("metadata"));
        let number = metadata
            .and_then(|m| m.get("version"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let flag = |name: &str| metadata.and_then(|m| m.get(name));
        let state = if flag("destroyed").and_then(Value::as_bool) == Some(true) {
            KvState::Destroyed
        } else if flag("deletion_time")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
        {
            KvState::Deleted
        } else {
            match data
                .and_then(|d| d.get("data"))
                .and_then(|d| d.get("key"))
                .and_then(Value::as_str)
            {
                Some(value) if reply.status == StatusCode::OK => {
                    KvState::Live(SecretString::from(value.to_owned()))
                }
                _ if reply.status == StatusCode::OK => KvState::Other,
                _ => KvState::Absent,
            }
        };
        Ok(KvRead {
            version: number,
            state,
        })
    }

    /// Writes `{"key": value, "description": D}` as a new version if the latest version is
    /// `cas` (0: no version yet). Returns the new version, or `None` when the latest version
    /// is another (a concurrent writer, or this very write retried after its answer was lost).
    pub async fn write_kv(
        &self,
        name: &str,
        value: &SecretString,
        description: Option<&str>,
        cas: u64,
    ) -> Result<Option<u64>> {
        let url = self.secret_url("data", name, false)?;
        let mut data = serde_json::Map::new();
        data.insert(
            "key".into(),
            Value::String(value.expose_secret().to_owned()),
        );
        if let Some(description) = description {
            data.insert("description".into(), Value::String(description.to_owned()));
        }
        let body = json!({ "options": { "cas": cas }, "data": data });
        let reply = self.authed("write", Method::POST, url, Some(body)).await?;
        if reply.status.is_success() {
            return Ok(Some(
                reply
                    .body
                    .as_ref()
                    .and_then(|b| b.pointer("/data/version"))
                    .and_then(Value::as_u64)
                    .unwrap_or(cas + 1),
            ));
        }
        if reply.status == StatusCode::BAD_REQUEST && reply.errors().contains("check-and-set") {
            return Ok(None);
        }
        Err(self.fail("write", name, reply.status, &reply))
    }

    /// Sets the secret's custom metadata (creating the metadata entry when there is none yet;
    /// it then has no version and reads as absent).
    pub async fn write_kv_metadata(
        &self,
        name: &str,
        custom_metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        let url = self.secret_url("metadata", name, false)?;
        let body = json!({ "custom_metadata": custom_metadata });
        let reply = self
            .authed("write_metadata", Method::POST, url, Some(body))
            .await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(self.fail("write metadata of", name, reply.status, &reply))
        }
    }

    /// Every secret name under `prefix_dir` (relative to it), folders descended: `a`, `team/x`.
    pub async fn list_kv_tree(&self, prefix_dir: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut folders = vec![(String::new(), 0usize)];
        while let Some((folder, depth)) = folders.pop() {
            let path = format!("{}/{folder}", prefix_dir.trim_end_matches('/'));
            for entry in self.list_secrets(&path).await? {
                let full = format!("{folder}{entry}");
                if entry.ends_with('/') {
                    if depth >= MAX_LIST_DEPTH {
                        return Err(Error::vault(
                            format!("listing {prefix_dir}: folders nested too deep"),
                            None,
                        ));
                    }
                    folders.push((full, depth + 1));
                } else {
                    names.push(full);
                }
            }
        }
        names.sort();
        Ok(names)
    }
}
