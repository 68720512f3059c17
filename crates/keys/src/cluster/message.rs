//! The payload of one notification: JSON naming the sender and what changed. PostgreSQL takes
//! payloads below 8000 bytes, so a large batch of changes goes out in several.

use serde::{Deserialize, Serialize};

use super::Change;
use crate::principals::directory::Scope;

/// Payloads are cut before this many bytes (PostgreSQL refuses 8000 and more).
const PAYLOAD_MAX: usize = 7_000;

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Message {
    /// The announcing instance.
    pub from: String,
    /// Tokens of keys that changed or are gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// `(kind, id)` of teams, users, organizations, budgets and end users that changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<(String, String)>,
    /// Key ids whose spend was written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spend: Vec<String>,
    /// Other objects whose spend was written: `[kind, id]` or `["member", team, user]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<Vec<String>>,
}

impl Message {
    fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.objects.is_empty()
            && self.spend.is_empty()
            && self.scopes.is_empty()
    }
}

pub(crate) fn scope_parts(scope: &Scope) -> Vec<String> {
    match scope {
        Scope::Team(id) => vec!["team".into(), id.to_string()],
        Scope::User(id) => vec!["user".into(), id.to_string()],
        Scope::Member(team, user) => vec!["member".into(), team.to_string(), user.to_string()],
        Scope::Org(id) => vec!["organization".into(), id.to_string()],
        Scope::EndUser(id) => vec!["end_user".into(), id.to_string()],
    }
}

pub(crate) fn scope_of(parts: &[String]) -> Option<Scope> {
    match parts {
        [kind, id] => match kind.as_str() {
            "team" => Some(Scope::Team(id.as_str().into())),
            "user" => Some(Scope::User(id.as_str().into())),
            "organization" => Some(Scope::Org(id.as_str().into())),
            "end_user" => Some(Scope::EndUser(id.as_str().into())),
            _ => None,
        },
        [kind, team, user] if kind == "member" => {
            Some(Scope::Member(team.as_str().into(), user.as_str().into()))
        }
        _ => None,
    }
}

/// The JSON payloads announcing `changes` (none when there is nothing to say).
pub(crate) fn payloads(from: &str, changes: Vec<Change>) -> Vec<String> {
    let mut out = Vec::new();
    let mut message = Message {
        from: from.to_owned(),
        ..Message::default()
    };
    // A rough size of the message so far (the JSON adds a few bytes per item).
    let mut size = from.len() + 64;
    let mut add = |message: &mut Message, size: &mut usize, len: usize| {
        if *size + len > PAYLOAD_MAX && !message.is_empty() {
            out.push(serde_json::to_string(message).unwrap_or_default());
            *message = Message {
                from: from.to_owned(),
                ..Message::default()
            };
            *size = from.len() + 64;
        }
        *size += len + 8;
    };
    for change in changes {
        match change {
            Change::Key(token) => {
                add(&mut message, &mut size, token.len());
                message.keys.push(token);
            }
            Change::Object(kind, id) => {
                add(&mut message, &mut size, kind.len() + id.len() + 4);
                message.objects.push((kind.to_owned(), id));
            }
            Change::Spend(keys, scopes) => {
                for key in keys {
                    add(&mut message, &mut size, key.len());
                    message.spend.push(key);
                }
                for scope in scopes {
                    let parts = scope_parts(&scope);
                    add(
                        &mut message,
                        &mut size,
                        parts.iter().map(|p| p.len() + 3).sum(),
                    );
                    message.scopes.push(parts);
                }
            }
        }
    }
    if !message.is_empty() {
        out.push(serde_json::to_string(&message).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn large_batches_are_cut_below_the_payload_limit_and_read_back() {
        let keys: Vec<Change> = (0..500).map(|i| Change::Key(format!("{i:064}"))).collect();
        let mut changes = keys;
        changes.push(Change::Spend(
            vec!["key-1".into()],
            vec![Scope::Member("t 1".into(), "u\"2".into())],
        ));
        let sent = payloads("me", changes);
        assert!(sent.len() > 1);
        let mut tokens = 0;
        for payload in &sent {
            assert!(payload.len() < 8_000, "{}", payload.len());
            let message: Message = serde_json::from_str(payload).unwrap();
            assert_eq!(message.from, "me");
            tokens += message.keys.len();
            if let Some(parts) = message.scopes.first() {
                assert_eq!(
                    scope_of(parts),
                    Some(Scope::Member("t 1".into(), "u\"2".into()))
                );
            }
        }
        assert_eq!(tokens, 500);
        assert!(payloads("me", Vec::new()).is_empty());
    }
}
