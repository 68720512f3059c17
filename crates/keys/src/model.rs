//! The virtual key record and the small pure helpers around it (hashing, naming, durations).

use std::fmt;

use base64::Engine;
use rand::RngCore;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Model name that grants every model (LiteLLM's special value).
pub const ALL_PROXY_MODELS: &str = "all-proxy-models";

/// One virtual key as stored. Holds only the SHA-256 `token`, never the raw key.
#[derive(Clone, PartialEq)]
pub struct KeyRecord {
    /// SHA-256 hex of the raw key; changes on regenerate.
    pub token: String,
    /// Stable id across regenerations, used for spend bookkeeping.
    pub key_id: String,
    /// `sk-...` + last 4 characters of the raw key.
    pub key_name: String,
    pub key_alias: Option<String>,
    /// Allowed models; empty means all.
    pub models: Vec<String>,
    pub max_budget: Option<f64>,
    pub budget_duration: Option<String>,
    /// Unix milliseconds.
    pub budget_reset_at: Option<i64>,
    /// Spend as last read from the store (the live figure is in the service).
    pub spend: f64,
    pub metadata: Map<String, Value>,
    pub tpm_limit: Option<u64>,
    pub rpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u64>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub tags: Vec<String>,
    pub blocked: bool,
    /// Unix milliseconds; `None` = never expires.
    pub expires: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Name of the Vault copy relative to the mirror prefix, when mirrored.
    pub vault_secret_name: Option<String>,
}

/// Debug shows no secret material and only a prefix of the token, so records can be logged.
impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field(
                "token",
                &format_args!("{}…", self.token.get(..8).unwrap_or("")),
            )
            .field("key_id", &self.key_id)
            .field("key_name", &self.key_name)
            .field("key_alias", &self.key_alias)
            .field("models", &self.models)
            .field("max_budget", &self.max_budget)
            .field("budget_duration", &self.budget_duration)
            .field("spend", &self.spend)
            .field("metadata_fields", &self.metadata.len())
            .field("tpm_limit", &self.tpm_limit)
            .field("rpm_limit", &self.rpm_limit)
            .field("max_parallel_requests", &self.max_parallel_requests)
            .field("user_id", &self.user_id)
            .field("team_id", &self.team_id)
            .field("blocked", &self.blocked)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl KeyRecord {
    /// Whether the key has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires.is_some_and(|e| e <= now_ms)
    }

    /// The LiteLLM-shaped JSON object for info/list/update responses (no raw key).
    pub fn to_json(&self) -> Value {
        json!({
            "token": self.token,
            "key_name": self.key_name,
            "key_alias": self.key_alias,
            "spend": self.spend,
            "max_budget": self.max_budget,
            "expires": self.expires.map(format_ms),
            "models": self.models,
            "user_id": self.user_id,
            "team_id": self.team_id,
            "metadata": self.metadata,
            "tags": self.tags,
            "tpm_limit": self.tpm_limit,
            "rpm_limit": self.rpm_limit,
            "max_parallel_requests": self.max_parallel_requests,
            "budget_duration": self.budget_duration,
            "budget_reset_at": self.budget_reset_at.map(format_ms),
            "blocked": self.blocked,
            "created_at": format_ms(self.created_at),
            "updated_at": format_ms(self.updated_at),
            "vault_secret_name": self.vault_secret_name,
        })
    }
}

/// SHA-256 hex of a raw key: the only form in which a key is stored.
pub fn hash_key(raw: &str) -> String {
    // Byte by byte into a buffer: `hex::encode` pushes one `char` at a time into a growing
    // String, which cost several times the digest itself (with the CPU's SHA extensions).
    let mut digits = [0u8; 64];
    // Cannot fail: a digest's 32 bytes are exactly 64 digits.
    let _ = hex::encode_to_slice(Sha256::digest(raw.as_bytes()), &mut digits);
    String::from_utf8_lossy(&digits).into_owned()
}

/// A fresh raw key: `sk-` + 32 URL-safe characters from 24 CSPRNG bytes (192 bits).
pub fn generate_raw_key() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "sk-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// LiteLLM's abbreviation: `sk-...` + the last 4 characters.
pub fn key_name(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("sk-...{tail}")
}

/// Vault name of a key's copy, relative to the mirror prefix (LiteLLM's naming): the alias, or
/// `virtual-key-<token>`. The alias is written in the one form Vault addresses it by (each
/// `/` segment trimmed, empty segments dropped), so `"x"`, `" x "` and `"a//b"`/`"a/b"` have
/// the same name, and the store's uniqueness rule on names refuses a second key for it.
pub fn secret_name(alias: Option<&str>, token: &str) -> String {
    match alias {
        Some(alias) => alias
            .split('/')
            .map(str::trim)
            .filter(|segment| !segment.is_empty())
            .collect::<Vec<_>>()
            .join("/"),
        None => format!("virtual-key-{token}"),
    }
}

/// Whether `input` names a key by its raw value (as opposed to its hash).
pub fn is_raw_key(input: &str) -> bool {
    input.starts_with("sk-")
}

/// The token for a key given raw or hashed.
pub fn token_of(input: &str) -> String {
    if is_raw_key(input) {
        hash_key(input)
    } else {
        input.to_ascii_lowercase()
    }
}

/// A short, non-secret way to name a key in messages.
pub fn describe_key(input: &str) -> String {
    if is_raw_key(input) {
        key_name(input)
    } else {
        input.to_owned()
    }
}

/// Parses LiteLLM durations: `30s`, `30m`, `30h`, `30d`, `2w`, `1mo` (30 days). Returns milliseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    if number <= 0 {
        return None;
    }
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "mo" => 30 * 86_400_000,
        _ => return None,
    };
    number.checked_mul(unit_ms)
}

/// Unix milliseconds as RFC 3339 (UTC).
pub fn format_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Whether `model` matches an allow-list entry (exact, or a `prefix*` wildcard).
pub fn model_matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => pattern == model,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(30_000));
        assert_eq!(parse_duration("30m"), Some(1_800_000));
        assert_eq!(parse_duration("30h"), Some(108_000_000));
        assert_eq!(parse_duration("30d"), Some(2_592_000_000));
        assert_eq!(parse_duration("1mo"), Some(2_592_000_000));
        for bad in [
            "",
            "30",
            "d",
            "-1d",
            "0d",
            "3x",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn raw_keys_are_random_and_well_formed() {
        let a = generate_raw_key();
        let b = generate_raw_key();
        assert_ne!(a, b);
        assert!(a.starts_with("sk-"));
        assert!(a.len() >= 3 + 22);
        assert!(
            a[3..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(hash_key(&a).len(), 64);
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(key_name("sk-abcdef1234"), "sk-...1234");
        assert_eq!(token_of(&a), hash_key(&a));
    }

    #[test]
    fn aliases_that_address_one_vault_path_have_one_secret_name() {
        for alias in ["x", "x ", " x", "\u{a0}x\t"] {
            assert_eq!(secret_name(Some(alias), "t"), "x", "{alias:?}");
        }
        for alias in ["a/b", "a//b", " a / b ", "a/ /b"] {
            assert_eq!(secret_name(Some(alias), "t"), "a/b", "{alias:?}");
        }
        assert_eq!(secret_name(Some("my key"), "t"), "my key");
        assert_eq!(secret_name(None, "abc"), "virtual-key-abc");
    }

    #[test]
    fn debug_hides_secrets() {
        let raw = generate_raw_key();
        let mut metadata = Map::new();
        metadata.insert("note".into(), Value::String("secret-note".into()));
        let record = KeyRecord {
            token: hash_key(&raw),
            key_id: "id".into(),
            key_name: key_name(&raw),
            key_alias: None,
            models: vec![],
            max_budget: None,
            budget_duration: None,
            budget_reset_at: None,
            spend: 0.0,
            metadata,
            tpm_limit: None,
            rpm_limit: None,
            max_parallel_requests: None,
            user_id: None,
            team_id: None,
            tags: vec![],
            blocked: false,
            expires: None,
            created_at: 0,
            updated_at: 0,
            vault_secret_name: None,
        };
        let debug = format!("{record:?}");
        assert!(!debug.contains(&raw));
        assert!(!debug.contains(&record.token));
        assert!(!debug.contains("secret-note"));
    }
}
