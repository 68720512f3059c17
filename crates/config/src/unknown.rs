//! Every key of the file checked against the table of `known.rs`, with its line: a key that is
//! neither vaultgate's nor LiteLLM's is an error with a suggestion, a LiteLLM key vaultgate does
//! not implement is a warning naming the feature.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::known::{self, Support};

/// A LiteLLM setting found in the file that vaultgate accepts but does not act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredSetting {
    /// Where it is, e.g. `model_list[1].litellm_params.vertex_project`.
    pub path: String,
    pub line: u64,
    /// What LiteLLM does with it that vaultgate does not.
    pub feature: &'static str,
}

impl fmt::Display for IgnoredSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (line {}): {}", self.path, self.line, self.feature)
    }
}

/// Said of a `litellm_params` key that nobody knows and that is not close to a known one.
const PASSED_TO_PROVIDER: &str =
    "not a setting vaultgate knows (LiteLLM would pass it to the provider call)";

/// The outcome of the check: errors (typos) and warnings (ignored LiteLLM settings).
#[derive(Debug, Default)]
pub struct KeyReport {
    pub errors: Vec<String>,
    pub ignored: Vec<IgnoredSetting>,
}

/// Checks the keys of `text`. YAML errors are left to the typed parse, which reports them.
pub fn check(text: &str, source: &str) -> KeyReport {
    let mut report = KeyReport::default();
    if let Ok(root) = serde_saphyr::from_str::<Node>(text) {
        walk(&root, "", "", source, &mut report);
    }
    report
}

/// A YAML document as maps, lists and leaves, every map key with its place in the file.
enum Node {
    Map(Vec<(Spanned<Key>, Node)>),
    List(Vec<Node>),
    Leaf,
}

struct Key(String);

/// `table` is the path in the table (`model_list[].litellm_params`), `at` the concrete one
/// (`model_list[0].litellm_params`).
fn walk(node: &Node, table: &str, at: &str, source: &str, report: &mut KeyReport) {
    match node {
        Node::List(items) => {
            for (index, item) in items.iter().enumerate() {
                walk(
                    item,
                    &format!("{table}[]"),
                    &format!("{at}[{index}]"),
                    source,
                    report,
                );
            }
        }
        Node::Map(entries) => {
            let kind = if table.is_empty() {
                Support::Section
            } else {
                known::support(table).unwrap_or(Support::Section)
            };
            for (key, value) in entries {
                let name = &key.value.0;
                let child_table = join(table, name);
                let child_at = join(at, name);
                let line = key.referenced.line();
                match known::support(&child_table) {
                    Some(Support::Implemented) => {}
                    Some(Support::Section | Support::OpenSection | Support::MetadataSection) => {
                        walk(value, &child_table, &child_at, source, report);
                    }
                    Some(Support::Ignored(feature)) => report.ignored.push(IgnoredSetting {
                        path: child_at,
                        line,
                        feature,
                    }),
                    None => {
                        let suggestion = suggest(table, name);
                        match (kind, suggestion) {
                            (Support::OpenSection, None) => report.ignored.push(IgnoredSetting {
                                path: child_at,
                                line,
                                feature: PASSED_TO_PROVIDER,
                            }),
                            (Support::MetadataSection, None) => {}
                            (_, suggestion) => {
                                let hint = suggestion
                                    .map(|s| format!("; did you mean `{s}`?"))
                                    .unwrap_or_else(|| implemented_here(table));
                                report.errors.push(format!(
                                    "{source}:{line}:{}: `{child_at}` is not a setting of \
                                     vaultgate or LiteLLM{hint}",
                                    key.referenced.column()
                                ));
                            }
                        }
                    }
                }
            }
        }
        Node::Leaf => {}
    }
}

/// "; vaultgate reads here: a, b, c" (LiteLLM's ignored keys would make the list too long).
fn implemented_here(table: &str) -> String {
    let names: Vec<&str> = known::children(table)
        .filter(|name| {
            !matches!(
                known::support(&join(table, name)),
                Some(Support::Ignored(_))
            )
        })
        .collect();
    format!("; vaultgate reads here: {}", names.join(", "))
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The known key `name` was most likely meant to be: a close spelling under the same parent,
/// else the same name in another section (a key put in the wrong place).
fn suggest(parent: &str, name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let close = known::children(parent)
        .map(|known| (strsim::damerau_levenshtein(&lower, known), known))
        .filter(|(distance, known)| *distance <= allowed_distance(known.len()))
        .min_by_key(|(distance, _)| *distance);
    if let Some((_, known)) = close {
        return Some(known.to_owned());
    }
    known::SETTINGS
        .iter()
        .map(|(path, _)| *path)
        .find(|path| path.rsplit('.').next() == Some(lower.as_str()))
        .map(|path| path.replace("[]", "[…]"))
}

/// Typos allowed for a key of this length: one for short keys, about one in four letters after.
fn allowed_distance(length: usize) -> usize {
    (length / 4).clamp(1, 3)
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("null".to_owned()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Node::Map(entries))
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}
