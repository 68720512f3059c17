//! Where a team's virtual-key copies live in Vault (`metadata.secret_manager_settings` of the
//! team, LiteLLM's place for per-team secret-manager settings) and the address of one copy.
//!
//! An address is the copy's name (the alias or `virtual-key-<token>`, see
//! [`crate::model::secret_name`]) qualified by its location when that is not the gateway's own:
//! `namespace:mount:path_prefix//name`. Canonical names never hold `//` and location parts may
//! not either, so the first `//` separates them, and a plain name is a copy at the gateway's
//! location (the only kind before teams had locations). The address is what the key table and
//! the outbox keep, so a later change of the team's settings still knows where old copies are.

use std::fmt;

use serde_json::{Map, Value};
use vaultgate_core::{Error, Result};

/// The team metadata field holding a team's Vault settings.
pub const SETTINGS_FIELD: &str = "secret_manager_settings";

/// The settings a team may set, each falling back to the gateway's when absent.
const FIELDS: [&str; 3] = ["namespace", "mount", "path_prefix"];

/// A KV v2 location for copies: each part `None` is the gateway's (`HCP_VAULT_SECRET_NAMESPACE`,
/// `HCP_VAULT_MOUNT_NAME`, and `HCP_VAULT_PATH_PREFIX` + `prefix_for_stored_virtual_keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub namespace: Option<String>,
    pub mount: Option<String>,
    pub path_prefix: Option<String>,
}

impl Location {
    /// The gateway's own location.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// A team's location from its metadata: `secret_manager_settings` absent, null or `{}` is
    /// the gateway's. Unknown fields and malformed parts are a 400 naming them.
    pub fn of_metadata(metadata: &Map<String, Value>) -> Result<Self> {
        let settings = match metadata.get(SETTINGS_FIELD) {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Object(settings)) => settings,
            Some(_) => return Err(bad("metadata.secret_manager_settings must be an object")),
        };
        if let Some(unknown) = settings.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            let hint = match unknown.as_str() {
                "data" => " (LiteLLM's `data` override is not supported by vaultgate)".to_owned(),
                other => {
                    suggestion(other).map_or_else(String::new, |s| format!("; did you mean '{s}'?"))
                }
            };
            return Err(bad(&format!(
                "metadata.secret_manager_settings.{unknown} is not a setting{hint}; use namespace, \
                 mount and path_prefix"
            )));
        }
        let part = |field: &str| -> Result<Option<String>> {
            match settings.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => normalize(field, text),
                Some(_) => Err(bad(&format!(
                    "metadata.secret_manager_settings.{field} must be a string"
                ))),
            }
        };
        Ok(Self {
            namespace: part("namespace")?,
            mount: part("mount")?,
            path_prefix: part("path_prefix")?,
        })
    }

    /// `namespace:mount:path_prefix` (empty parts for the gateway's); empty for the default.
    pub(crate) fn encode(&self) -> String {
        if self.is_default() {
            return String::new();
        }
        let part = |p: &Option<String>| p.clone().unwrap_or_default();
        format!(
            "{}:{}:{}",
            part(&self.namespace),
            part(&self.mount),
            part(&self.path_prefix)
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let mut next = || parts.next().map(|p| (!p.is_empty()).then(|| p.to_owned()));
        let location = Self {
            namespace: next()?,
            mount: next()?,
            path_prefix: next()?,
        };
        next().is_none().then_some(location)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_default() {
            return f.write_str("the gateway's Vault location");
        }
        let part = |p: &Option<String>| p.clone().unwrap_or_else(|| "(gateway's)".into());
        write!(
            f,
            "namespace {}, mount {}, path_prefix {}",
            part(&self.namespace),
            part(&self.mount),
            part(&self.path_prefix)
        )
    }
}

/// Where one copy is: a location and a name in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CopyAddr {
    pub location: Location,
    pub name: String,
}

impl CopyAddr {
    pub fn new(location: Location, name: impl Into<String>) -> Self {
        Self {
            location,
            name: name.into(),
        }
    }

    /// Reads an address as stored (a plain name is at the gateway's location).
    pub fn parse(stored: &str) -> Self {
        if let Some((location, name)) = stored.split_once("//")
            && let Some(location) = Location::decode(location)
        {
            return Self::new(location, name);
        }
        Self::new(Location::default(), stored)
    }

    /// The form stored in the key table and the outbox.
    pub fn encode(&self) -> String {
        if self.location.is_default() {
            self.name.clone()
        } else {
            format!("{}//{}", self.location.encode(), self.name)
        }
    }
}

/// A part trimmed of spaces and `/`, empty as `None`; characters Vault paths take, no `..`.
fn normalize(field: &str, text: &str) -> Result<Option<String>> {
    let segments: Vec<&str> = text
        .split('/')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if segments.is_empty() {
        return Ok(None);
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if let Some(bad_segment) = segments
        .iter()
        .find(|s| **s == "." || **s == ".." || !s.chars().all(allowed))
    {
        return Err(bad(&format!(
            "metadata.secret_manager_settings.{field} '{}': each '/'-separated part is letters, \
             digits, '-', '_' or '.' (not '{}')",
            text.chars().take(80).collect::<String>(),
            bad_segment.chars().take(40).collect::<String>()
        )));
    }
    Ok(Some(segments.join("/")))
}

fn suggestion(field: &str) -> Option<&'static str> {
    let field = field.to_ascii_lowercase();
    FIELDS.into_iter().find(|known| {
        let short = field.replace(['-', ' '], "_");
        short == *known
            || known.starts_with(&short)
            || short.starts_with(known)
            || (short.contains("prefix") && *known == "path_prefix")
            || (short.contains("mount") && *known == "mount")
            || (short.contains("namespace") && *known == "namespace")
    })
}

fn bad(message: &str) -> Error {
    Error::bad_param("metadata", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(settings: Value) -> Result<Location> {
        let metadata = json!({ "secret_manager_settings": settings });
        Location::of_metadata(metadata.as_object().unwrap_or(&Map::new()))
    }

    #[test]
    fn a_team_location_round_trips_through_its_address_and_plain_names_stay_default() {
        let location =
            of(json!({"namespace": " team-a/ ", "mount": "kv-a", "path_prefix": "/keys//x/"}))
                .unwrap_or_default();
        assert_eq!(location.namespace.as_deref(), Some("team-a"));
        assert_eq!(location.path_prefix.as_deref(), Some("keys/x"));
        let addr = CopyAddr::new(location.clone(), "my/alias");
        assert_eq!(addr.encode(), "team-a:kv-a:keys/x//my/alias");
        assert_eq!(CopyAddr::parse(&addr.encode()), addr);
        let mount_only = CopyAddr::new(of(json!({"mount": "kv-b"})).unwrap_or_default(), "k");
        assert_eq!(CopyAddr::parse(&mount_only.encode()), mount_only);
        for plain in ["billing-app", "team/a b", "virtual-key-abc", "a:b:c"] {
            let parsed = CopyAddr::parse(plain);
            assert!(parsed.location.is_default(), "{plain}");
            assert_eq!(parsed.name, plain);
            assert_eq!(parsed.encode(), plain);
        }
        assert!(of(json!({})).unwrap_or_default().is_default());
        assert!(of(Value::Null).unwrap_or_default().is_default());
    }

    #[test]
    fn typos_and_bad_parts_are_refused_with_the_field_named() {
        let message = |settings: Value| {
            of(settings)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(message(json!({"prefix": "x"})).contains("did you mean 'path_prefix'"));
        assert!(message(json!({"mount_name": "x"})).contains("did you mean 'mount'"));
        assert!(message(json!({"data": {}})).contains("not supported"));
        assert!(message(json!({"mount": "a/../b"})).contains("mount"));
        assert!(message(json!({"mount": "a:b"})).contains("not 'a:b'"));
        assert!(message(json!({"namespace": 3})).contains("must be a string"));
        assert!(message(json!("kv")).contains("must be an object"));
    }
}
