//! Ollama's native API, as LiteLLM speaks it: `ollama_chat/` models get `/api/chat` (messages,
//! images, tools), `ollama/` models get `/api/generate` with the conversation written into one
//! prompt (`### System:` / `### User:` / `### Assistant:` sections, LiteLLM's `ollama_pt`), and
//! embeddings go to `/api/embed`. Ollama's OpenAI-compatible `/v1` is what `openai/` with an
//! `api_base` of `http://host:11434/v1` reaches. Streams are JSON lines, not SSE.

mod answer;

use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

pub use answer::{
    OllamaStream, chat_answer, completion_answer, embed_answer, generate_chat_answer, map_error,
};

use crate::TranslateOptions;
use crate::params::{content_text, number, positive_int, stop_sequences, unsupported};

/// Ollama runtime options accepted at the top level of a request and sent in `options`.
const OPTIONS: &[&str] = &[
    "num_ctx",
    "num_gpu",
    "num_gqa",
    "num_thread",
    "num_keep",
    "num_batch",
    "mirostat",
    "mirostat_eta",
    "mirostat_tau",
    "repeat_last_n",
    "repeat_penalty",
    "tfs_z",
    "top_k",
    "min_p",
    "typical_p",
];

/// Which native endpoint a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/api/chat` with messages.
    Chat,
    /// `/api/generate` with the conversation as one prompt.
    GenerateFromChat,
    /// `/api/generate` for a legacy completions request.
    Generate,
    /// `/api/embed`.
    Embed,
}

impl Route {
    /// The path after the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "api/chat",
            Self::GenerateFromChat | Self::Generate => "api/generate",
            Self::Embed => "api/embed",
        }
    }
}

/// The native request body for `route`, from the client's OpenAI body.
pub fn request(
    route: Route,
    body: &Map<String, Value>,
    upstream_model: &str,
    opts: &TranslateOptions,
) -> Result<Value> {
    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    if route == Route::Embed {
        return embed_request(body, out);
    }
    let mut options = Map::new();
    let mut tools = None;
    let mut stream = false;
    for (name, value) in body {
        if value.is_null() {
            continue;
        }
        match name.as_str() {
            "model" | "messages" | "prompt" | "stream_options" | "user" | "tool_choice" => {}
            "stream" => {
                stream = value
                    .as_bool()
                    .ok_or_else(|| Error::bad_param(name, "`stream` must be a boolean"))?;
            }
            "max_tokens" | "max_completion_tokens" => {
                options.insert("num_predict".into(), json!(positive_int(name, value)?));
            }
            "temperature" | "top_p" | "seed" => {
                options.insert(name.clone(), number(name, value)?);
            }
            // LiteLLM's mapping: Ollama's chat has no frequency penalty, its repeat penalty is
            // the nearest knob.
            "frequency_penalty" if route == Route::Chat => {
                options.insert("repeat_penalty".into(), number(name, value)?);
            }
            "frequency_penalty" | "presence_penalty" => {
                options.insert(name.clone(), number(name, value)?);
            }
            "stop" => {
                options.insert("stop".into(), Value::Array(stop_sequences(value)?));
            }
            "response_format" => {
                if let Some(format) = format(value) {
                    out.insert("format".into(), format);
                }
            }
            "reasoning_effort" => {
                out.insert("think".into(), Value::Bool(value.as_str() != Some("none")));
            }
            "keep_alive" | "think" => {
                out.insert(name.clone(), value.clone());
            }
            "tools" if route == Route::Chat => tools = Some(value.clone()),
            "suffix" if route == Route::Generate => {
                out.insert(name.clone(), value.clone());
            }
            "options" if value.is_object() => {
                if let Value::Object(given) = value {
                    options.extend(given.clone());
                }
            }
            _ if OPTIONS.contains(&name.as_str()) => {
                options.insert(name.clone(), value.clone());
            }
            _ => unsupported(name, value, "ollama", opts.drop_params)?,
        }
    }
    match route {
        Route::Chat => {
            out.insert("messages".into(), Value::Array(chat_messages(body)?));
            if let Some(tools) = tools {
                out.insert("tools".into(), tools);
            }
        }
        Route::GenerateFromChat => {
            let (prompt, images) = conversation_prompt(body)?;
            out.insert("prompt".into(), Value::String(prompt));
            if !images.is_empty() {
                out.insert("images".into(), Value::Array(images));
            }
        }
        Route::Generate => {
            out.insert("prompt".into(), Value::String(completion_prompt(body)?));
        }
        Route::Embed => {}
    }
    out.insert("options".into(), Value::Object(options));
    out.insert("stream".into(), Value::Bool(stream));
    Ok(Value::Object(out))
}

/// `response_format` → Ollama's `format` (`"json"` or a JSON schema); `text` needs none.
fn format(value: &Value) -> Option<Value> {
    match value.get("type").and_then(Value::as_str) {
        Some("json_object") => Some(json!("json")),
        Some("json_schema") => value.pointer("/json_schema/schema").cloned(),
        _ => None,
    }
}

fn embed_request(body: &Map<String, Value>, mut out: Map<String, Value>) -> Result<Value> {
    let input = body
        .get("input")
        .filter(|v| v.is_string() || v.is_array())
        .ok_or_else(|| {
            Error::bad_param("input", "`input` must be a string or a list of strings")
        })?;
    out.insert("input".into(), input.clone());
    for name in ["dimensions", "truncate", "keep_alive", "options"] {
        if let Some(value) = body.get(name).filter(|v| !v.is_null()) {
            out.insert(name.into(), value.clone());
        }
    }
    Ok(Value::Object(out))
}

fn messages(body: &Map<String, Value>) -> Result<&[Value]> {
    match body.get("messages") {
        Some(Value::Array(items)) if !items.is_empty() => Ok(items),
        Some(Value::Array(_)) => Err(Error::bad_param("messages", "`messages` is empty")),
        Some(_) => Err(Error::bad_param("messages", "`messages` must be a list")),
        None => Err(Error::bad_param(
            "messages",
            "missing required parameter `messages`",
        )),
    }
}

fn role(message: &Value, i: usize) -> Result<&str> {
    message.get("role").and_then(Value::as_str).ok_or_else(|| {
        Error::bad_param(
            format!("messages[{i}].role"),
            "each message needs a string `role`",
        )
    })
}

/// A message's text, collecting its images (base64 without the data-URL head) into `images`.
fn text_and_images(message: &Value, i: usize, images: &mut Vec<Value>) -> Result<String> {
    let content = message.get("content").unwrap_or(&Value::Null);
    let text = content_text(
        content,
        &format!("messages[{i}].content"),
        |part, param| match part.get("type").and_then(Value::as_str) {
            Some("image_url") => {
                images.push(Value::String(inline_image(part, param)?));
                Ok(())
            }
            other => Err(Error::bad_param(
                param,
                format!(
                    "content part type {} is not supported by ollama",
                    other.map_or("null".into(), |k| format!("{k:?}"))
                ),
            )),
        },
    )?;
    Ok(text.unwrap_or_default())
}

/// The base64 data of an image part. Ollama takes images inline only; fetching a URL on the
/// request path is not something the gateway does.
fn inline_image(part: &Value, param: &str) -> Result<String> {
    let url = part
        .get("image_url")
        .and_then(|i| i.get("url").or(Some(i)))
        .and_then(Value::as_str)
        .unwrap_or_default();
    url.strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
        .map(|(_, data)| data.to_owned())
        .ok_or_else(|| {
            Error::bad_param(
                format!("{param}.image_url.url"),
                "ollama needs images inline as base64 data URLs (data:<type>;base64,…)",
            )
        })
}

/// OpenAI tool calls (arguments as a JSON string) → Ollama's (arguments as an object).
fn tool_calls(message: &Value, i: usize) -> Result<Option<Value>> {
    let Some(calls) = message.get("tool_calls").and_then(Value::as_array) else {
        return Ok(None);
    };
    let calls = calls
        .iter()
        .enumerate()
        .map(|(j, call)| {
            let function = call.get("function").unwrap_or(&Value::Null);
            let param = format!("messages[{i}].tool_calls[{j}]");
            let arguments = crate::params::tool_call_arguments(Some(function), &param)?;
            Ok(json!({"function": {
                "name": function.get("name").cloned().unwrap_or(Value::Null),
                "arguments": arguments,
            }}))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Value::Array(calls)))
}

/// OpenAI messages → `/api/chat` messages (`developer` reads as `system`).
fn chat_messages(body: &Map<String, Value>) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, message) in messages(body)?.iter().enumerate() {
        let role = match role(message, i)? {
            "developer" => "system",
            other => other,
        };
        let mut images = Vec::new();
        let text = text_and_images(message, i, &mut images)?;
        let mut native = Map::new();
        native.insert("role".into(), json!(role));
        native.insert("content".into(), Value::String(text));
        if !images.is_empty() {
            native.insert("images".into(), Value::Array(images));
        }
        if let Some(calls) = tool_calls(message, i)? {
            native.insert("tool_calls".into(), calls);
        }
        if let Some(thinking) = message.get("reasoning_content").filter(|t| t.is_string()) {
            native.insert("thinking".into(), thinking.clone());
        }
        if let Some(name) = message.get("name").filter(|n| n.is_string())
            && role == "tool"
        {
            native.insert("tool_name".into(), name.clone());
        }
        out.push(Value::Object(native));
    }
    Ok(out)
}

/// The conversation as one `/api/generate` prompt, LiteLLM's way: consecutive user (and tool)
/// messages form a `### User:` section, system ones `### System:`, assistant ones
/// `### Assistant:` (their tool calls written as `Tool Calls: <json>`).
fn conversation_prompt(body: &Map<String, Value>) -> Result<(String, Vec<Value>)> {
    let mut prompt = String::new();
    let mut images = Vec::new();
    let mut section: Option<(&'static str, String)> = None;
    let flush = |section: &mut Option<(&'static str, String)>, prompt: &mut String| {
        if let Some((title, text)) = section.take()
            && !text.is_empty()
        {
            prompt.push_str("### ");
            prompt.push_str(title);
            prompt.push_str(":\n");
            prompt.push_str(&text);
            prompt.push_str("\n\n");
        }
    };
    for (i, message) in messages(body)?.iter().enumerate() {
        let title = match role(message, i)? {
            "system" | "developer" => "System",
            "assistant" => "Assistant",
            _ => "User",
        };
        let mut text = text_and_images(message, i, &mut images)?;
        if let Some(calls) = tool_calls(message, i)? {
            text.push_str("Tool Calls: ");
            text.push_str(&serde_json::to_string_pretty(&calls).unwrap_or_default());
        }
        match &mut section {
            Some((current, existing)) if *current == title => existing.push_str(&text),
            _ => {
                flush(&mut section, &mut prompt);
                section = Some((title, text));
            }
        }
    }
    flush(&mut section, &mut prompt);
    Ok((prompt, images))
}

/// The `prompt` of a legacy completions request (a string, or the first of a list).
fn completion_prompt(body: &Map<String, Value>) -> Result<String> {
    match body.get("prompt") {
        Some(Value::String(prompt)) => Ok(prompt.clone()),
        Some(Value::Array(items)) if items.len() <= 1 => Ok(items
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()),
        Some(Value::Array(_)) => Err(Error::bad_param(
            "prompt",
            "ollama takes one prompt per request",
        )),
        _ => Err(Error::bad_param("prompt", "`prompt` must be a string")),
    }
}
