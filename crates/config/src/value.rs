use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

const REFERENCE_PREFIX: &str = "os.environ/";
const VAULT_PREFIX: &str = "vault://";

/// A config string that is written in the file, a reference `os.environ/NAME` to a secret
/// resolved at start (environment or Vault), or a `vault://mount/path#field` reference to a
/// field of any Vault secret (KV or a dynamic engine's lease). Literal values may be secrets too
/// (an `api_key` written in the file), so `Debug` and `Serialize` never show them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ConfigValue {
    Literal(String),
    Reference(String),
    Vault(VaultRef),
}

/// `vault://{mount}/{path}#{field}` with an optional `?version=N` (KV): one field of the secret
/// Vault returns for `{mount}/{path}`. References to the same path share one read (and lease).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VaultRef {
    /// The reference as written, trimmed: the key its value is found under.
    text: String,
    path: String,
    field: String,
    version: Option<u64>,
}

impl VaultRef {
    /// Parses `vault://mount/path#field[?version=N]` (the query may also stand before `#`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let rest = text
            .strip_prefix(VAULT_PREFIX)
            .ok_or_else(|| format!("'{text}' does not start with {VAULT_PREFIX}"))?;
        let (location, field) = rest.split_once('#').ok_or_else(|| {
            format!("'{text}' names no field: write {VAULT_PREFIX}mount/path#field")
        })?;
        let (path, mut query) = match location.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (location, None),
        };
        let (field, field_query) = match field.split_once('?') {
            Some((field, q)) => (field, Some(q)),
            None => (field, None),
        };
        if field_query.is_some() {
            if query.is_some() {
                return Err(format!("'{text}' has two queries"));
            }
            query = field_query;
        }
        let path = path.trim_matches('/');
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() < 2 || segments.iter().any(|s| s.trim().is_empty()) {
            return Err(format!(
                "'{text}': the path must be mount/path (e.g. aws/creds/my-role), without empty parts"
            ));
        }
        if segments.iter().any(|s| *s == "." || *s == "..")
            || path.chars().chain(field.chars()).any(char::is_control)
        {
            return Err(format!(
                "'{text}': the path may not contain '.', '..' or control characters"
            ));
        }
        let field = field.trim();
        if field.is_empty() {
            return Err(format!("'{text}' has an empty field after '#'"));
        }
        let mut version = None;
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            match pair.split_once('=') {
                Some(("version", n)) => match n.parse::<u64>() {
                    Ok(n) if n > 0 => version = Some(n),
                    _ => return Err(format!("'{text}': version must be a positive integer")),
                },
                _ => {
                    return Err(format!(
                        "'{text}': unknown query '{pair}' (supported: version=N)"
                    ));
                }
            }
        }
        Ok(Self {
            text: text.to_owned(),
            path: path.to_owned(),
            field: field.to_owned(),
            version,
        })
    }

    /// The reference as written (no secret in it): its key in the resolved secrets.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `mount/path`, without the leading `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn field(&self) -> &str {
        &self.field
    }

    /// The pinned KV version, if any.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// What one read fetches: the path and its pinned version (fields share it).
    pub fn location(&self) -> (&str, Option<u64>) {
        (&self.path, self.version)
    }
}

impl fmt::Debug for VaultRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for VaultRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl ConfigValue {
    /// Parses a config string; a malformed `vault://` reference is an error (a typo must not
    /// become a literal value sent upstream).
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if let Some(name) = trimmed.strip_prefix(REFERENCE_PREFIX) {
            return Ok(Self::Reference(name.trim().to_owned()));
        }
        if trimmed.starts_with(VAULT_PREFIX) {
            return VaultRef::parse(trimmed).map(Self::Vault);
        }
        Ok(Self::Literal(text.to_owned()))
    }

    /// The name of an `os.environ/NAME` reference.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Self::Reference(name) => Some(name),
            Self::Literal(_) | Self::Vault(_) => None,
        }
    }

    pub fn vault_ref(&self) -> Option<&VaultRef> {
        match self {
            Self::Vault(reference) => Some(reference),
            _ => None,
        }
    }
}

impl fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(_) => f.write_str("Literal(***)"),
            Self::Reference(name) => write!(f, "Reference({REFERENCE_PREFIX}{name})"),
            Self::Vault(reference) => write!(f, "Vault({reference})"),
        }
    }
}

impl Serialize for ConfigValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Literal(_) => serializer.serialize_str("***"),
            Self::Reference(name) => serializer.serialize_str(&format!("{REFERENCE_PREFIX}{name}")),
            Self::Vault(reference) => serializer.serialize_str(reference.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl Visitor<'_> for ValueVisitor {
            type Value = ConfigValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number, `os.environ/NAME` or `vault://mount/path#field`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ConfigValue::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ConfigValue::Literal(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ConfigValue::Literal(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ConfigValue::Literal(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ConfigValue::Literal(v.to_string()))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}
