//! A client's JSON request body, kept as the bytes it arrived in. The gateway reads only
//! `model`, `stream` and `stream_options` up front; the upstream gets the client's bytes with the
//! model name (and, when spend tracking needs it, `stream_options`) spliced in. Nothing is
//! re-serialised on the way: prompts, numbers and key order reach the upstream exactly as sent.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use vaultgate_core::{Error, Result};

/// The request body with the fields the gateway needs read up front.
pub struct ChatBody {
    raw: Bytes,
    /// Where the value of `model` sits in `raw`; `None` for a translated request without one.
    model_span: Option<Range<usize>>,
    /// Where the value of `stream_options` sits in `raw`, when it is an object.
    options_span: Option<Range<usize>>,
    /// `stream_options` is present but not an object: left alone.
    options_other: bool,
    pub model: String,
    pub stream: bool,
    /// The client asked for the usage chunk (`stream_options.include_usage: true`).
    pub include_usage: bool,
    /// The end user the request is for (OpenAI's `user`), when a non-empty string.
    pub user: Option<String>,
    /// The whole body as JSON, parsed only when an adapter needs it (translation, mock answers).
    fields: OnceLock<std::result::Result<Map<String, Value>, String>>,
    /// Where each member's value sits in `raw`, in order (for removing members).
    values: Vec<Range<usize>>,
    /// Some member is one of LiteLLM's own params ([`crate::is_proxy_param`]).
    has_proxy_params: bool,
}

/// The top-level members the gateway reads, found in one borrowed pass over the body.
#[derive(Default)]
struct Members<'a> {
    model: Option<&'a RawValue>,
    stream: Option<&'a RawValue>,
    stream_options: Option<&'a RawValue>,
    user: Option<&'a RawValue>,
    duplicate: Option<&'static str>,
    /// Every member's value, in order.
    all: Vec<&'a RawValue>,
    proxy_params: bool,
}

impl ChatBody {
    /// Parses a client body: a JSON object with a non-empty string `model`.
    pub fn parse(bytes: Bytes) -> Result<Self> {
        let body = Self::scan(bytes)?;
        if body.model_span.is_none() {
            return Err(Error::bad_param(
                "model",
                "missing required parameter `model`",
            ));
        }
        Ok(body)
    }

    /// A body built by the gateway (a translated request), for the public `model`.
    pub fn from_fields(fields: Map<String, Value>, model: String) -> Result<Self> {
        let bytes = serde_json::to_vec(&fields).map_err(|e| Error::Internal(e.to_string()))?;
        let mut body = Self::scan(Bytes::from(bytes))?;
        body.model = model;
        body.fields = OnceLock::from(Ok(fields));
        Ok(body)
    }

    fn scan(raw: Bytes) -> Result<Self> {
        check_text(&raw)?;
        let members: Members<'_> = serde_json::from_slice(&raw).map_err(|e| {
            if e.is_data() {
                Error::bad_request("request body must be a JSON object")
            } else {
                Error::bad_request(format!("request body is not valid JSON: {e}"))
            }
        })?;
        if let Some(name) = members.duplicate {
            return Err(Error::bad_param(
                name,
                format!("`{name}` appears more than once in the request body"),
            ));
        }
        let model = match members.model {
            Some(value) => match serde_json::from_str::<String>(value.get()) {
                Ok(model) if !model.is_empty() => model,
                _ => {
                    return Err(Error::bad_param(
                        "model",
                        "`model` must be a non-empty string",
                    ));
                }
            },
            None => String::new(),
        };
        let stream = members
            .stream
            .is_some_and(|v| serde_json::from_str::<bool>(v.get()).unwrap_or(false));
        // Its members unparsed: a number that is no f64 (`1e400`) still leaves an object.
        let options = members
            .stream_options
            .and_then(|v| serde_json::from_str::<Options<'_>>(v.get()).ok());
        let include_usage = options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .is_some_and(|v| v.get() == "true");
        let options_is_object = options.is_some();
        let user = members
            .user
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
            .filter(|u| !u.is_empty());
        let span = |value: &RawValue| span_of(&raw, value);
        let values = members
            .all
            .iter()
            .map(|value| span(value))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            values,
            has_proxy_params: members.proxy_params,
            model_span: members.model.map(span).transpose()?,
            options_span: members
                .stream_options
                .filter(|_| options_is_object)
                .map(span)
                .transpose()?,
            options_other: members.stream_options.is_some() && !options_is_object,
            model,
            stream,
            include_usage,
            user,
            fields: OnceLock::new(),
            raw,
        })
    }

    /// The client's bytes as sent.
    pub fn bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The body as a JSON object (parsed on first use).
    pub fn fields(&self) -> Result<&Map<String, Value>> {
        self.fields
            .get_or_init(|| serde_json::from_slice(&self.raw).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::bad_request(format!("request body is not valid JSON: {e}")))
    }

    /// The client's bytes with `model` set to `model` and, when `include_usage`, the usage chunk
    /// asked for (`stream_options.include_usage: true`; a non-object `stream_options` is left
    /// alone). Everything else is copied as sent.
    pub fn upstream_body(&self, model: &str, include_usage: bool) -> Vec<u8> {
        let model_json = json_string(model);
        let mut patches: Vec<(Range<usize>, Vec<u8>)> = Vec::with_capacity(2);
        let add_options = include_usage && !self.options_other && self.options_span.is_none();
        let mut model_patch = model_json;
        if add_options {
            model_patch.extend_from_slice(br#","stream_options":{"include_usage":true}"#);
        }
        match &self.model_span {
            Some(span) => patches.push((span.clone(), model_patch)),
            None => {
                // No `model` member: insert one as the first member.
                let open = self.raw.iter().position(|&b| b == b'{').unwrap_or(0) + 1;
                let empty = self.raw[open..]
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|&b| b == b'}');
                let mut member = br#""model":"#.to_vec();
                member.extend_from_slice(&model_patch);
                if !empty {
                    member.push(b',');
                }
                patches.push((open..open, member));
            }
        }
        if include_usage && let Some(span) = &self.options_span {
            patches.push((span.clone(), self.options_with_usage(span)));
        }
        patches.sort_by_key(|(span, _)| span.start);
        let mut out = Vec::with_capacity(self.raw.len() + 64);
        let mut at = 0;
        for (span, bytes) in patches {
            out.extend_from_slice(&self.raw[at..span.start]);
            out.extend_from_slice(&bytes);
            at = span.end;
        }
        out.extend_from_slice(&self.raw[at..]);
        out
    }

    /// Whether the body has members that are LiteLLM's own params.
    pub fn has_proxy_params(&self) -> bool {
        self.has_proxy_params
    }

    /// The body without the members `drop` names (never `model`), as the bytes it arrived in
    /// minus those members; `None` when nothing is dropped.
    pub fn without(&self, drop: impl Fn(&str) -> bool) -> Result<Option<Self>> {
        let broken =
            || Error::Internal("a request member was not found in the request body".into());
        let mut out = Vec::with_capacity(self.raw.len());
        out.push(b'{');
        let mut lead = self
            .raw
            .iter()
            .position(|&b| b == b'{')
            .ok_or_else(broken)?
            + 1;
        let (mut kept, mut dropped) = (0, false);
        for value in &self.values {
            let region = self.raw.get(lead..value.start).ok_or_else(broken)?;
            let quote = region.iter().position(|&b| b == b'"').ok_or_else(broken)?;
            let key = serde_json::Deserializer::from_slice(&region[quote..])
                .into_iter::<String>()
                .next()
                .and_then(|key| key.ok())
                .ok_or_else(broken)?;
            if key != "model" && drop(&key) {
                dropped = true;
            } else {
                if kept > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&self.raw[lead + quote..value.end]);
                kept += 1;
            }
            lead = value.end;
        }
        if !dropped {
            return Ok(None);
        }
        out.push(b'}');
        let mut body = Self::scan(Bytes::from(out))?;
        body.model.clone_from(&self.model);
        Ok(Some(body))
    }

    /// Splits off LiteLLM's own params (all but those `keep` names): their values, and the body
    /// the upstream may see. Free when the body has none.
    pub fn take_proxy_params(self, keep: &[&str]) -> Result<(Self, Map<String, Value>)> {
        if !self.has_proxy_params {
            return Ok((self, Map::new()));
        }
        let is_taken = |name: &str| crate::is_proxy_param(name) && !keep.contains(&name);
        let params: Map<String, Value> = self
            .fields()?
            .iter()
            .filter(|(name, _)| is_taken(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let body = match self.without(is_taken)? {
            Some(mut body) => {
                body.has_proxy_params = false;
                body
            }
            None => self,
        };
        Ok((body, params))
    }

    /// The client's `stream_options` object with `include_usage: true`; its other values are
    /// copied as sent (parsed, a number such as `1e400` or one of 100 digits would change).
    fn options_with_usage(&self, span: &Range<usize>) -> Vec<u8> {
        let options: Options<'_> =
            serde_json::from_slice(&self.raw[span.clone()]).unwrap_or_default();
        let mut out = b"{".to_vec();
        for (name, value) in options.iter().filter(|(name, _)| *name != "include_usage") {
            out.extend_from_slice(&json_string(name));
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
            out.push(b',');
        }
        out.extend_from_slice(br#""include_usage":true}"#);
        out
    }
}

/// A `stream_options` object, its values as sent.
type Options<'a> = BTreeMap<String, &'a RawValue>;

/// How deeply objects and arrays may nest: serde_json's own limit when it builds values, so a
/// body that passes could be parsed whole by us (translations) or a JSON parser upstream.
const MAX_DEPTH: usize = 128;

/// What the borrowed scan cannot see, since it skips every member it does not read without
/// decoding it: text that is not UTF-8, and nesting past [`MAX_DEPTH`] (100,000 `[` would be
/// forwarded, and crash a recursive reader on the way).
fn check_text(raw: &[u8]) -> Result<()> {
    if let Err(error) = std::str::from_utf8(raw) {
        return Err(Error::bad_request(format!(
            "request body is not valid UTF-8 (at byte {})",
            error.valid_up_to()
        )));
    }
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(&byte) = raw.get(at) {
        at += 1;
        match byte {
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Error::bad_request(format!(
                        "request body nests objects and arrays deeper than {MAX_DEPTH} levels"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            // Skip a string: brackets inside it do not count.
            b'"' => loop {
                match memchr::memchr2(b'"', b'\\', raw.get(at..).unwrap_or_default()) {
                    Some(offset) => {
                        let found = raw.get(at + offset).copied();
                        at += offset + 1;
                        if found == Some(b'"') {
                            break;
                        }
                        at += 1; // the escaped byte
                    }
                    None => {
                        at = raw.len();
                        break;
                    }
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// Where `value` (borrowed from `raw` by the parser) sits in `raw`, checked.
pub(crate) fn span_of(raw: &[u8], value: &RawValue) -> Result<Range<usize>> {
    let text = value.get();
    let start = (text.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
    let span = start..start.wrapping_add(text.len());
    match raw.get(span.clone()) {
        Some(bytes) if bytes == text.as_bytes() => Ok(span),
        _ => Err(Error::Internal(
            "a request member was not found in the request body".into(),
        )),
    }
}

fn json_string(text: &str) -> Vec<u8> {
    serde_json::to_vec(text).unwrap_or_else(|_| b"\"\"".to_vec())
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor(std::marker::PhantomData))
    }
}

struct MembersVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for MembersVisitor<'a> {
    type Value = Members<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(
        self,
        mut map: M,
    ) -> std::result::Result<Members<'a>, M::Error> {
        let mut members = Members::default();
        while let Some(Key(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            members.all.push(value);
            let (name, slot) = match key.as_ref() {
                "model" => ("model", &mut members.model),
                "stream" => ("stream", &mut members.stream),
                "stream_options" => ("stream_options", &mut members.stream_options),
                "user" => ("user", &mut members.user),
                other => {
                    members.proxy_params |= crate::is_proxy_param(other);
                    continue;
                }
            };
            if slot.replace(value).is_some() {
                members.duplicate = Some(name);
            }
        }
        Ok(members)
    }
}

/// A member name, borrowed unless it has escapes (`"mod\u0065l"` is `model` too).
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}
