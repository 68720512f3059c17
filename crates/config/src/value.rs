use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

const REFERENCE_PREFIX: &str = "os.environ/";

/// A config string that is either written in the file or a reference `os.environ/NAME` to a
/// secret resolved at start (environment or Vault). Literal values may be secrets too (an
/// `api_key` written in the file), so `Debug` and `Serialize` never show them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ConfigValue {
    Literal(String),
    Reference(String),
}

impl ConfigValue {
    pub fn parse(text: &str) -> Self {
        match text.trim().strip_prefix(REFERENCE_PREFIX) {
            Some(name) => Self::Reference(name.trim().to_owned()),
            None => Self::Literal(text.to_owned()),
        }
    }

    pub fn reference(&self) -> Option<&str> {
        match self {
            Self::Reference(name) => Some(name),
            Self::Literal(_) => None,
        }
    }
}

impl fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(_) => f.write_str("Literal(***)"),
            Self::Reference(name) => write!(f, "Reference({REFERENCE_PREFIX}{name})"),
        }
    }
}

impl Serialize for ConfigValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Literal(_) => serializer.serialize_str("***"),
            Self::Reference(name) => serializer.serialize_str(&format!("{REFERENCE_PREFIX}{name}")),
        }
    }
}

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl Visitor<'_> for ValueVisitor {
            type Value = ConfigValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or `os.environ/NAME`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ConfigValue::parse(v))
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
