//! A key's copy in Vault, written all-or-nothing. A copy takes several Vault calls (read the
//! current version, write the custom metadata, write the value with check-and-set); when one
//! fails, the caller does not commit the key, and whatever may have been written is repaired by
//! the outbox from what the store says (see [`crate::outbox`]). A write whose answer was lost (a
//! timeout after Vault applied it, a retry that then met its own version) is recognised by
//! reading the copy back, so a key is never refused while Vault holds it, nor committed while
//! Vault does not.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use vaultgate_core::{Error, Result};

use crate::mirror::{CopyState, MirrorConfig};
use crate::model::{KeyRecord, format_ms, hash_key};

/// How far back [`find_version`] looks for a key's value (KV v2 keeps 10 versions by default).
const HISTORY_DEPTH: u64 = 10;

/// A copy that was not written. `touched`: Vault may hold part of it (the name must be repaired
/// through the outbox); false when Vault certainly holds nothing new.
#[derive(Debug)]
pub(crate) struct CopyFailure {
    pub error: Error,
    pub touched: bool,
}

/// Makes the copy at `name` hold `raw` (the key of `record`) with LiteLLM's description and
/// metadata: metadata first (a token without metadata rights fails before any value is
/// written), then the value as the next version after the one read (check-and-set).
pub(crate) async fn write_copy(
    mirror: &MirrorConfig,
    name: &str,
    raw: &SecretString,
    record: &KeyRecord,
) -> std::result::Result<(), CopyFailure> {
    let untouched = |error| CopyFailure {
        error,
        touched: false,
    };
    let current = mirror
        .read(name, None)
        .await
        .map_err(|e| untouched(mirror_error("read", &e)))?;
    if let Err(e) = mirror.write_metadata(name, &secret_metadata(record)).await {
        return Err(CopyFailure {
            // A refusal was not applied; a lost answer may have been.
            touched: !e.is_vault_refusal() && !is_request_error(&e),
            error: mirror_error("write metadata", &e),
        });
    }
    if current
        .value()
        .is_some_and(|v| hash_key(v.expose_secret()) == record.token)
    {
        return Ok(()); // holds this key already (an earlier attempt's write landed)
    }
    let written = mirror.write(name, raw, current.version).await;
    let error = match written {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => Error::Unavailable(format!(
            "the Vault copy '{name}' changed while it was being written; try again"
        )),
        Err(e) => mirror_error("write", &e),
    };
    // Conflict or no answer: the write may have landed all the same. Vault decides.
    match mirror.read(name, None).await {
        Ok(read)
            if read
                .value()
                .is_some_and(|v| hash_key(v.expose_secret()) == record.token) =>
        {
            tracing::info!(
                secret = name,
                "Vault write was applied although its answer was lost"
            );
            Ok(())
        }
        _ => Err(CopyFailure {
            error,
            touched: true,
        }),
    }
}

/// The newest readable version of `name` (at most [`HISTORY_DEPTH`] back from `latest`) that
/// holds the key with this token.
pub(crate) async fn find_version(
    mirror: &MirrorConfig,
    name: &str,
    latest: u64,
    token: &str,
) -> Result<Option<SecretString>> {
    let oldest = latest.saturating_sub(HISTORY_DEPTH).max(1);
    for version in (oldest..=latest).rev() {
        let read = mirror.read(name, Some(version)).await?;
        if let CopyState::Live(value) = read.state
            && hash_key(value.expose_secret()) == token
        {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// Custom metadata stored with the Vault copy.
pub(crate) fn secret_metadata(record: &KeyRecord) -> BTreeMap<String, String> {
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

/// A failed mirror call (`what`: write, read, list, delete), counted, and reported by whose
/// fault it is: Vault unreachable, sealed or overloaded is a 503 ("try again"); a refusal (a
/// 403 names the policy line to add) is Vault's answer, a 502; a name the client refused is
/// the request's, a 400.
pub(crate) fn mirror_error(what: &str, e: &Error) -> Error {
    metrics::counter!("vaultgate_key_vault_mirror_errors_total", "op" => what.to_owned())
        .increment(1);
    match e {
        Error::Vault { message, status } if e.is_vault_refusal() => Error::Vault {
            message: format!("the virtual key's Vault copy was not changed: {message}"),
            status: *status,
        },
        Error::BadRequest { .. } => Error::bad_param("key_alias", e.to_string()),
        _ => Error::Unavailable(format!(
            "Vault is unavailable ({what} of the virtual key copy failed: {e})"
        )),
    }
}

/// An error of the request itself (a name the client refused), never sent to Vault.
fn is_request_error(e: &Error) -> bool {
    matches!(e, Error::BadRequest { .. })
}
