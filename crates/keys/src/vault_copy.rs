//! A key's copy in Vault: what is written beside the raw key, and how a failed Vault call is
//! reported.

use std::collections::BTreeMap;

use secrecy::SecretString;
use vaultgate_core::{Error, Result};

use crate::mirror::MirrorConfig;
use crate::model::{KeyRecord, format_ms};

/// Writes a key's Vault copy with the description and metadata LiteLLM stores beside it.
pub(crate) async fn put_copy(
    mirror: &MirrorConfig,
    name: &str,
    raw: &SecretString,
    record: &KeyRecord,
) -> Result<()> {
    mirror
        .mirror
        .put(
            name,
            raw,
            mirror.description.as_deref(),
            &secret_metadata(record),
        )
        .await
}

/// Custom metadata stored with the Vault copy.
fn secret_metadata(record: &KeyRecord) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(alias) = &record.key_alias {
        m.insert("key_alias".into(), alias.clone());
    }
    m.insert("token".into(), record.token.clone());
    m.insert("key_name".into(), record.key_name.clone());
    m.insert("created_at".into(), format_ms(record.created_at));
    m.insert(
        "expires".into(),
        record.expires.map_or_else(|| "never".into(), format_ms),
    );
    m.insert("managed_by".into(), "vaultgate".into());
    m
}

/// A failed Vault call of the mirror (`what`: write, read, list, delete), counted and reported.
pub(crate) fn unavailable(what: &str, e: &Error) -> Error {
    metrics::counter!("vaultgate_key_vault_mirror_errors_total", "op" => what.to_owned())
        .increment(1);
    Error::Unavailable(format!(
        "Vault is unavailable ({what} of the virtual key copy failed: {e})"
    ))
}
