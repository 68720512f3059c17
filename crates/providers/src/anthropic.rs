//! Anthropic Messages API adapter: pure translation between OpenAI chat completions and
//! Anthropic's `/v1/messages` (both directions), its SSE stream, its errors and its headers.
//! No HTTP happens here so every mapping can be tested with golden fixtures; the caller owns I/O.
//!
//! Request path (OpenAI client → Anthropic deployment):
//! [`chat_to_messages_request`] → POST [`messages_url`] with [`upstream_headers`] →
//! on success [`messages_response_to_chat`] (or [`StreamTranslator`] when streaming),
//! on an error status [`map_error`].
//!
//! Anthropic-native clients (`POST /v1/messages` → OpenAI deployment):
//! [`messages_to_chat_request`] → OpenAI upstream → [`chat_response_to_messages`] (or
//! [`MessagesStreamTranslator`] when streaming).

mod errors;
mod native;
mod native_stream;
mod request;
mod response;
mod stream;

use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};
use vaultgate_core::{Error, Result};

use crate::{now_secs, openai_assistant_message};

pub use errors::{error_type_for_status, map_error};
pub use native::{chat_response_to_messages, messages_to_chat_request};
pub use native_stream::MessagesStreamTranslator;
pub use request::chat_to_messages_request;
pub use response::messages_response_to_chat;
pub use stream::StreamTranslator;

/// The `anthropic-version` header value used unless the deployment configures another one.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; OpenAI clients usually omit it, so we need a default.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Knobs of the OpenAI → Anthropic request translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslateOptions {
    /// Sent as `max_tokens` when the client gives neither `max_tokens` nor `max_completion_tokens`.
    pub default_max_tokens: u64,
    /// `litellm_settings.drop_params`: silently drop OpenAI params Anthropic cannot honour
    /// instead of answering 400.
    pub drop_params: bool,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        Self {
            default_max_tokens: DEFAULT_MAX_TOKENS,
            drop_params: false,
        }
    }
}

/// The Messages endpoint for an `api_base`, accepting the bare host (LiteLLM's form), a base
/// ending in `/v1`, or the full endpoint, so any of the three spellings in configs works.
pub fn messages_url(api_base: &str) -> String {
    let base = api_base.trim_end_matches('/');
    if base.ends_with("/v1/messages") {
        base.to_owned()
    } else if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

/// Headers for an upstream Messages call: `x-api-key` (marked sensitive so it is never logged),
/// `anthropic-version` (default [`DEFAULT_ANTHROPIC_VERSION`]) and `content-type`.
/// Without a key the header is left out and Anthropic's own 401 reaches the client.
pub fn upstream_headers(
    api_key: Option<&str>,
    anthropic_version: Option<&str>,
) -> Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    if let Some(key) = api_key {
        let mut value = HeaderValue::from_str(key).map_err(|_| {
            Error::Config(
                "the anthropic api key contains characters not allowed in an HTTP header".into(),
            )
        })?;
        value.set_sensitive(true);
        headers.insert("x-api-key", value);
    }
    let version = anthropic_version.unwrap_or(DEFAULT_ANTHROPIC_VERSION);
    let version = HeaderValue::from_str(version).map_err(|_| {
        Error::Config(format!(
            "anthropic-version {version:?} is not a valid HTTP header value"
        ))
    })?;
    headers.insert("anthropic-version", version);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(headers)
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything newer read as a normal stop.
        _ => "stop",
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason` (the inverse of [`finish_reason`]).
fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Token counts of an Anthropic `usage` object, kept apart so streams can update them piecemeal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TokenCounts {
    input: u64,
    output: u64,
    cache_creation: u64,
    cache_read: u64,
}

impl TokenCounts {
    /// Overwrites the counts present in `usage` (Anthropic's counts are cumulative, not deltas).
    fn update(&mut self, usage: &Value) {
        let get = |name: &str| usage.get(name).and_then(Value::as_u64);
        if let Some(n) = get("input_tokens") {
            self.input = n;
        }
        if let Some(n) = get("output_tokens") {
            self.output = n;
        }
        if let Some(n) = get("cache_creation_input_tokens") {
            self.cache_creation = n;
        }
        if let Some(n) = get("cache_read_input_tokens") {
            self.cache_read = n;
        }
    }

    /// Anthropic's `input_tokens` excludes cached tokens; OpenAI's `prompt_tokens` includes them,
    /// and spend tracking needs the whole prompt, so all three are added up.
    fn prompt(&self) -> u64 {
        self.input + self.cache_creation + self.cache_read
    }

    /// OpenAI `usage`, with LiteLLM's extra cache fields when caching was involved.
    fn to_openai(self) -> Value {
        let prompt = self.prompt();
        let mut usage = json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output,
            "total_tokens": prompt + self.output,
            "prompt_tokens_details": {"cached_tokens": self.cache_read},
        });
        if self.cache_creation > 0 || self.cache_read > 0 {
            usage["cache_creation_input_tokens"] = json!(self.cache_creation);
            usage["cache_read_input_tokens"] = json!(self.cache_read);
        }
        usage
    }
}

/// A required list parameter (`messages`, `tools`) of a request being translated.
fn list_param<'a>(value: Option<&'a Value>, param: &str) -> Result<&'a [Value]> {
    match value {
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(Error::bad_param(param, format!("`{param}` must be a list"))),
        None => Err(Error::bad_param(
            param,
            format!("missing required parameter `{param}`"),
        )),
    }
}

/// A block, part or tool `type` as error messages quote it (`"image"`, or `null` when absent).
fn quoted_type(kind: Option<&str>) -> String {
    kind.map_or_else(|| "null".to_owned(), |k| format!("{k:?}"))
}

/// A string field of a JSON object, empty when absent or not a string (translations are lenient
/// about what they only copy).
fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// An Anthropic `tool_use` block as an OpenAI tool call, whose arguments are a JSON string.
fn openai_tool_call(block: &Value) -> Value {
    let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
    json!({
        "id": block.get("id").cloned().unwrap_or(Value::Null),
        "type": "function",
        "function": {
            "name": block.get("name").cloned().unwrap_or(Value::Null),
            "arguments": input.to_string(),
        },
    })
}
