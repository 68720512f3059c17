//! Parsing of the LiteLLM key-management request bodies, by hand, so every mistake becomes a 400
//! that names the field (serde's derive errors name positions, not fields we can report).

use serde_json::{Map, Value};
use vaultgate_core::{Error, Result};

use crate::model::{KeyRecord, parse_duration, secret_name};

/// A field of an update: absent (keep), explicit null (clear), or a new value.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Patch<T> {
    #[default]
    Absent,
    Null,
    Set(T),
}

impl<T> Patch<T> {
    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Set(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

/// A JSON object body.
pub(crate) struct Body(Map<String, Value>);

impl Body {
    /// An empty body is an empty object (regenerate by path has no body).
    #[cfg(test)]
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(Error::bad_request("request body must be a JSON object")),
            Err(e) => Err(Error::bad_request(format!(
                "request body is not valid JSON: {e}"
            ))),
        }
    }

    /// A body already parsed as JSON (the typed API); must be an object (or null = empty).
    pub fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Self(map)),
            Value::Null => Ok(Self(Map::new())),
            _ => Err(Error::bad_request("request body must be a JSON object")),
        }
    }

    pub fn field(&self, name: &str) -> Patch<&Value> {
        match self.0.get(name) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(v) => Patch::Set(v),
        }
    }

    /// A field that may be absent or null; a present value goes through `parse`, and one it
    /// rejects (`None`) is a 400 saying "`name` must be `what`".
    fn typed<T>(
        &self,
        name: &str,
        what: &str,
        parse: impl FnOnce(&Value) -> Option<T>,
    ) -> Result<Patch<T>> {
        match self.field(name) {
            Patch::Set(value) => parse(value)
                .map(Patch::Set)
                .ok_or_else(|| Error::bad_param(name, format!("{name} must be {what}"))),
            Patch::Null => Ok(Patch::Null),
            Patch::Absent => Ok(Patch::Absent),
        }
    }

    pub fn string(&self, name: &str) -> Result<Patch<String>> {
        self.typed(name, "a string", |v| v.as_str().map(str::to_owned))
    }

    /// A non-empty string, required.
    pub fn required_string(&self, name: &str) -> Result<String> {
        match self.string(name)? {
            Patch::Set(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(Error::bad_param(name, format!("{name} is required"))),
        }
    }

    /// A money amount: a finite number ≥ 0.
    pub fn amount(&self, name: &str) -> Result<Patch<f64>> {
        self.typed(name, "a number >= 0", |v| {
            v.as_f64().filter(|v| v.is_finite() && *v >= 0.0)
        })
    }

    /// A non-negative integer (limits); a float without a fraction counts too.
    pub fn count(&self, name: &str) -> Result<Patch<u64>> {
        self.typed(name, "an integer >= 0", |v| {
            v.as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                        .map(|f| {
                            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                            let v = f as u64;
                            v
                        })
                })
                .filter(|v| i64::try_from(*v).is_ok())
        })
    }

    pub fn boolean(&self, name: &str) -> Result<Patch<bool>> {
        self.typed(name, "true or false", Value::as_bool)
    }

    /// A list of non-empty strings.
    pub fn string_list(&self, name: &str) -> Result<Patch<Vec<String>>> {
        self.typed(name, "a list of non-empty strings", |v| {
            v.as_array()?
                .iter()
                .map(|item| match item {
                    Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
                    _ => None,
                })
                .collect()
        })
    }

    pub fn object(&self, name: &str) -> Result<Patch<Map<String, Value>>> {
        self.typed(name, "a JSON object", |v| v.as_object().cloned())
    }

    /// A key value the client picked (`key` on generate, `new_key` on regenerate), if any.
    pub fn custom_key(&self, name: &str) -> Result<Option<String>> {
        match self.string(name)? {
            Patch::Set(key) => {
                validate_custom_key(name, &key)?;
                Ok(Some(key))
            }
            _ => Ok(None),
        }
    }

    /// A LiteLLM duration (`30s`, `30m`, `30h`, `30d`): the text and its length in ms.
    pub fn duration(&self, name: &str) -> Result<Patch<(String, i64)>> {
        match self.string(name)? {
            Patch::Set(text) => match parse_duration(&text) {
                Some(ms) => Ok(Patch::Set((text.trim().to_owned(), ms))),
                None => Err(Error::bad_param(
                    name,
                    format!(
                        "{name} '{}' is not a duration; use a positive number with s, m, h, d, w \
                         or mo, e.g. 30s, 30m, 30h, 30d",
                        text.chars().take(40).collect::<String>()
                    ),
                )),
            },
            Patch::Null => Ok(Patch::Null),
            Patch::Absent => Ok(Patch::Absent),
        }
    }
}

/// The settable fields shared by generate, update and regenerate.
#[derive(Debug, Default)]
pub(crate) struct KeyFields {
    pub key_alias: Patch<String>,
    pub duration: Patch<(String, i64)>,
    pub models: Patch<Vec<String>>,
    pub max_budget: Patch<f64>,
    pub budget_duration: Patch<(String, i64)>,
    pub spend: Patch<f64>,
    pub metadata: Patch<Map<String, Value>>,
    pub tpm_limit: Patch<u64>,
    pub rpm_limit: Patch<u64>,
    pub max_parallel_requests: Patch<u64>,
    pub user_id: Patch<String>,
    pub team_id: Patch<String>,
    pub tags: Patch<Vec<String>>,
    pub blocked: Patch<bool>,
}

impl KeyFields {
    pub fn parse(body: &Body) -> Result<Self> {
        let key_alias = body.string("key_alias")?;
        if let Patch::Set(alias) = &key_alias {
            validate_alias(alias)?;
        }
        Ok(Self {
            key_alias,
            duration: body.duration("duration")?,
            models: body.string_list("models")?,
            max_budget: body.amount("max_budget")?,
            budget_duration: body.duration("budget_duration")?,
            spend: body.amount("spend")?,
            metadata: body.object("metadata")?,
            tpm_limit: body.count("tpm_limit")?,
            rpm_limit: body.count("rpm_limit")?,
            max_parallel_requests: body.count("max_parallel_requests")?,
            user_id: body.string("user_id")?,
            team_id: body.string("team_id")?,
            tags: body.string_list("tags")?,
            blocked: body.boolean("blocked")?,
        })
    }

    /// Applies the fields to `record` at time `now_ms` (durations count from now).
    pub fn apply(&self, record: &mut KeyRecord, now_ms: i64) {
        fn opt<T: Clone>(patch: &Patch<T>, target: &mut Option<T>) {
            match patch {
                Patch::Set(v) => *target = Some(v.clone()),
                Patch::Null => *target = None,
                Patch::Absent => {}
            }
        }
        fn list(patch: &Patch<Vec<String>>, target: &mut Vec<String>) {
            match patch {
                Patch::Set(v) => v.clone_into(target),
                Patch::Null => target.clear(),
                Patch::Absent => {}
            }
        }
        opt(&self.key_alias, &mut record.key_alias);
        match &self.duration {
            Patch::Set((_, ms)) => record.expires = Some(now_ms.saturating_add(*ms)),
            Patch::Null => record.expires = None,
            Patch::Absent => {}
        }
        list(&self.models, &mut record.models);
        opt(&self.max_budget, &mut record.max_budget);
        match &self.budget_duration {
            Patch::Set((text, ms)) => {
                record.budget_duration = Some(text.clone());
                record.budget_reset_at = Some(now_ms.saturating_add(*ms));
            }
            Patch::Null => {
                record.budget_duration = None;
                record.budget_reset_at = None;
            }
            Patch::Absent => {}
        }
        match &self.spend {
            Patch::Set(v) => record.spend = *v,
            Patch::Null => record.spend = 0.0,
            Patch::Absent => {}
        }
        match &self.metadata {
            Patch::Set(v) => v.clone_into(&mut record.metadata),
            Patch::Null => record.metadata.clear(),
            Patch::Absent => {}
        }
        opt(&self.tpm_limit, &mut record.tpm_limit);
        opt(&self.rpm_limit, &mut record.rpm_limit);
        opt(
            &self.max_parallel_requests,
            &mut record.max_parallel_requests,
        );
        opt(&self.user_id, &mut record.user_id);
        opt(&self.team_id, &mut record.team_id);
        list(&self.tags, &mut record.tags);
        match &self.blocked {
            Patch::Set(v) => record.blocked = *v,
            Patch::Null => record.blocked = false,
            Patch::Absent => {}
        }
    }
}

/// Aliases become Vault secret names: refuse what Vault paths cannot hold, and what would make
/// two aliases look alike (invisible characters).
fn validate_alias(alias: &str) -> Result<()> {
    let bad = |why: &str| Error::bad_param("key_alias", format!("key_alias {why}"));
    if alias.trim().is_empty() {
        return Err(bad("must not be empty"));
    }
    if alias.len() > 256 {
        return Err(bad("must be at most 256 characters"));
    }
    if alias.contains("..") {
        return Err(bad("must not contain '..'"));
    }
    if alias.starts_with('/') || alias.ends_with('/') {
        return Err(bad("must not start or end with '/'"));
    }
    if alias.split('/').any(|segment| segment.trim() == ".") {
        return Err(bad("must not contain a '.' path segment"));
    }
    if secret_name(Some(alias), "").is_empty() {
        return Err(bad("must contain characters other than '/' and spaces"));
    }
    if let Some(c) = alias
        .chars()
        .find(|&c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(bad(&format!(
            "must not contain control characters (found U+{:04X})",
            u32::from(c)
        )));
    }
    if let Some(c) = alias.chars().find(|&c| is_invisible(c)) {
        return Err(bad(&format!(
            "must not contain invisible characters (found U+{:04X})",
            u32::from(c)
        )));
    }
    Ok(())
}

/// Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): characters that render
/// as nothing, such as U+200B ZERO WIDTH SPACE, U+202E RIGHT-TO-LEFT OVERRIDE and U+FEFF.
fn is_invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// A user-chosen raw key (`key` on generate, `new_key` on regenerate).
fn validate_custom_key(field: &str, key: &str) -> Result<()> {
    if !key.starts_with("sk-") {
        return Err(Error::bad_param(
            field,
            format!("{field} must start with 'sk-'"),
        ));
    }
    if key.len() == 3 {
        return Err(Error::bad_param(
            field,
            format!("{field} must have characters after 'sk-'"),
        ));
    }
    if key.len() > 512 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::bad_param(
            field,
            format!("{field} must be at most 512 printable ASCII characters without spaces"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn param(e: Error) -> Option<String> {
        match e {
            Error::BadRequest { param, .. } => param,
            other => panic!("not a bad request: {other:?}"),
        }
    }

    #[test]
    fn field_errors_name_the_field() {
        let cases = [
            (r#"{"max_budget": -1}"#, "max_budget"),
            (r#"{"max_budget": "10"}"#, "max_budget"),
            (r#"{"duration": "soon"}"#, "duration"),
            (r#"{"budget_duration": 5}"#, "budget_duration"),
            (r#"{"models": "gpt-4o"}"#, "models"),
            (r#"{"models": [1]}"#, "models"),
            (r#"{"tpm_limit": 1.5}"#, "tpm_limit"),
            (r#"{"rpm_limit": -3}"#, "rpm_limit"),
            (r#"{"metadata": []}"#, "metadata"),
            (r#"{"blocked": "yes"}"#, "blocked"),
            (r#"{"key_alias": ""}"#, "key_alias"),
            (r#"{"key_alias": "a/../b"}"#, "key_alias"),
            (r#"{"key_alias": "a/./b"}"#, "key_alias"),
            (r#"{"key_alias": "a/ . /b"}"#, "key_alias"),
            (r#"{"key_alias": "."}"#, "key_alias"),
            (r#"{"key_alias": " / "}"#, "key_alias"),
            (r#"{"key_alias": "pay\u202Eroll"}"#, "key_alias"),
            (r#"{"key_alias": "a\u200Bb"}"#, "key_alias"),
            (r#"{"key_alias": "\uFEFFx"}"#, "key_alias"),
            (r#"{"tags": [""]}"#, "tags"),
            (r#"{"user_id": 7}"#, "user_id"),
        ];
        for (body, field) in cases {
            let body = Body::parse(body.as_bytes()).unwrap();
            let err = KeyFields::parse(&body).expect_err(field);
            assert_eq!(param(err).as_deref(), Some(field));
        }
    }

    #[test]
    fn bodies() {
        assert!(Body::parse(b"").is_ok());
        assert!(Body::parse(b"[1]").is_err());
        assert!(Body::parse(b"{").is_err());
        let body = Body::parse(br#"{"tpm_limit": 10.0, "max_budget": null}"#).unwrap();
        let fields = KeyFields::parse(&body).unwrap();
        assert_eq!(fields.tpm_limit, Patch::Set(10));
        assert_eq!(fields.max_budget, Patch::Null);
        assert!(validate_custom_key("key", "pk-123456789").is_err());
        assert!(validate_custom_key("key", "sk-").is_err());
        assert!(validate_custom_key("key", "sk-has space 123").is_err());
        assert!(validate_custom_key("key", "sk-custom-key-1234").is_ok());
    }
}
