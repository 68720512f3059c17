//! Shared primitives: the single [`Error`] type (with its one mapping to an HTTP status and an
//! OpenAI-shaped body) and the secret newtype re-exports every room uses.

mod error;

pub use error::{Error, Result};
pub use secrecy::{ExposeSecret, SecretString};

/// The hasher of the request path's maps and caches: foldhash, seeded per process, several times
/// faster than the standard SipHash on short keys (model names, key ids, key hashes).
pub type FastHashState = foldhash::fast::RandomState;

/// A hash map with [`FastHashState`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastHashState>;

/// Builds a [`SecretString`] from anything string-like.
pub fn secret(value: impl Into<String>) -> SecretString {
    SecretString::from(value.into())
}
