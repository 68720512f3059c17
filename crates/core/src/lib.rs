//! Shared primitives: the single [`Error`] type (with its one mapping to an HTTP status and an
//! OpenAI-shaped body) and the secret newtype re-exports every room uses.

mod error;

pub use error::{Error, Result};
pub use secrecy::{ExposeSecret, SecretString};

/// Builds a [`SecretString`] from anything string-like.
pub fn secret(value: impl Into<String>) -> SecretString {
    SecretString::from(value.into())
}
