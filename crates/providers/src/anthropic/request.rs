//! OpenAI chat completion request → Anthropic Messages request.

use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

use super::{TranslateOptions, list_param, quoted_type, str_field};
use crate::params::{positive_int, stop_sequences, unsupported};

/// Translates an OpenAI chat completion body into an Anthropic Messages body for `upstream_model`.
///
/// Params Anthropic cannot honour are dropped when `opts.drop_params`, else answered with a 400
/// naming the param, as LiteLLM does; values that equal OpenAI's defaults (`n: 1`,
/// `presence_penalty: 0`, `response_format: {"type":"text"}`…) and `null`s are always accepted.
pub fn chat_to_messages_request(
    body: &Map<String, Value>,
    upstream_model: &str,
    opts: &TranslateOptions,
) -> Result<Value> {
    let mut out = Map::new();
    out.insert("model".into(), Value::String(upstream_model.to_owned()));

    let (system, messages) = convert_messages(body.get("messages"))?;
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(messages));

    let mut max_tokens = None;
    let mut max_completion_tokens = None;
    let mut tools = None;
    let mut tool_choice = None;
    let mut parallel_tool_calls = None;
    for (name, value) in body {
        if value.is_null() {
            continue;
        }
        match name.as_str() {
            "model" | "messages" => {}
            // The caller decides about usage chunks; `store` and `prompt_cache_key` only concern
            // OpenAI's own storage and cache routing, so ignoring them changes no answer.
            "stream_options" | "store" | "prompt_cache_key" => {}
            "max_tokens" => max_tokens = Some(positive_int(name, value)?),
            "max_completion_tokens" => max_completion_tokens = Some(positive_int(name, value)?),
            "temperature" | "top_p" | "top_k" => {
                if !value.is_number() {
                    return Err(Error::bad_param(name, format!("`{name}` must be a number")));
                }
                out.insert(name.clone(), value.clone());
            }
            "stream" => {
                let stream = value
                    .as_bool()
                    .ok_or_else(|| Error::bad_param(name, "`stream` must be a boolean"))?;
                out.insert("stream".into(), Value::Bool(stream));
            }
            "stop" => {
                let stops = stop_sequences(value)?;
                if !stops.is_empty() {
                    out.insert("stop_sequences".into(), Value::Array(stops));
                }
            }
            // `safety_identifier` is OpenAI's newer name for `user`; both identify the end user.
            "user" | "safety_identifier" => {
                let user = value
                    .as_str()
                    .ok_or_else(|| Error::bad_param(name, format!("`{name}` must be a string")))?;
                out.insert("metadata".into(), json!({ "user_id": user }));
            }
            "tools" => tools = Some(convert_tools(value)?),
            "tool_choice" => tool_choice = Some(convert_tool_choice(value)?),
            "parallel_tool_calls" => {
                parallel_tool_calls = Some(value.as_bool().ok_or_else(|| {
                    Error::bad_param(name, "`parallel_tool_calls` must be a boolean")
                })?);
            }
            // Anthropic-native extended thinking, passed through for clients that know it.
            "thinking" => {
                out.insert(name.clone(), value.clone());
            }
            _ => unsupported(name, value, "anthropic", opts.drop_params)?,
        }
    }

    let max_tokens = max_completion_tokens
        .or(max_tokens)
        .unwrap_or(opts.default_max_tokens);
    out.insert("max_tokens".into(), json!(max_tokens));

    // Anthropic rejects tool_choice without tools, so a lone tool_choice is dropped.
    if let Some(tools) = tools.filter(|tools| !tools.is_empty()) {
        out.insert("tools".into(), Value::Array(tools));
        let mut choice = tool_choice.unwrap_or_else(|| json!({"type": "auto"}));
        let none = choice.get("type").and_then(Value::as_str) == Some("none");
        if parallel_tool_calls == Some(false) && !none {
            choice["disable_parallel_tool_use"] = Value::Bool(true);
        }
        if tool_choice_is_needed(&choice) {
            out.insert("tool_choice".into(), choice);
        }
    }
    Ok(Value::Object(out))
}

/// `{"type":"auto"}` is Anthropic's default; leaving it out keeps the upstream body minimal.
fn tool_choice_is_needed(choice: &Value) -> bool {
    choice != &json!({"type": "auto"})
}

fn convert_tools(value: &Value) -> Result<Vec<Value>> {
    list_param(Some(value), "tools")?
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let kind = tool.get("type").and_then(Value::as_str);
            if kind != Some("function") {
                return Err(Error::bad_param(
                    format!("tools[{i}].type"),
                    format!(
                        "tool type {} is not supported by anthropic; only \"function\" tools are",
                        quoted_type(kind)
                    ),
                ));
            }
            let function = tool.get("function");
            let name = function_name(
                function,
                &format!("tools[{i}]"),
                "missing tool function name",
            )?;
            let mut out = Map::new();
            out.insert("name".into(), Value::String(name.to_owned()));
            if let Some(description) = function
                .and_then(|f| f.get("description"))
                .filter(|d| !d.is_null())
            {
                out.insert("description".into(), description.clone());
            }
            // Anthropic requires a schema; OpenAI allows a function without parameters.
            let schema = function
                .and_then(|f| f.get("parameters"))
                .filter(|p| !p.is_null())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            out.insert("input_schema".into(), schema);
            if let Some(cache) = tool.get("cache_control") {
                out.insert("cache_control".into(), cache.clone());
            }
            Ok(Value::Object(out))
        })
        .collect()
}

/// The `function.name` of a tool definition or a tool call at `param`; `missing` says which.
fn function_name<'a>(function: Option<&'a Value>, param: &str, missing: &str) -> Result<&'a str> {
    function
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_param(format!("{param}.function.name"), missing))
}

fn convert_tool_choice(value: &Value) -> Result<Value> {
    let invalid = || {
        Error::bad_param(
            "tool_choice",
            "`tool_choice` must be \"auto\", \"none\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":…}}",
        )
    };
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "none" => Ok(json!({"type": "none"})),
            "required" => Ok(json!({"type": "any"})),
            _ => Err(invalid()),
        },
        Value::Object(choice) if choice.get("type").and_then(Value::as_str) == Some("function") => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(invalid)?;
            Ok(json!({"type": "tool", "name": name}))
        }
        _ => Err(invalid()),
    }
}

/// Splits OpenAI messages into Anthropic's top-level `system` and alternating user/assistant
/// turns: every system/developer message goes to `system`, tool results become user turns, and
/// consecutive turns of one role are merged because Anthropic requires strict alternation.
fn convert_messages(messages: Option<&Value>) -> Result<(Option<Value>, Vec<Value>)> {
    let messages = list_param(messages, "messages")?;
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).ok_or_else(|| {
            Error::bad_param(
                format!("messages[{i}].role"),
                "each message needs a string `role`",
            )
        })?;
        let content = message.get("content").unwrap_or(&Value::Null);
        let content_param = || format!("messages[{i}].content");
        match role {
            "system" | "developer" => {
                system.extend(with_cache_control(
                    message,
                    content_blocks(content, &content_param(), Parts::TextOnly)?,
                ));
            }
            "user" => {
                let blocks = content_blocks(content, &content_param(), Parts::User)?;
                push_turn(&mut turns, "user", with_cache_control(message, blocks));
            }
            "assistant" => {
                let blocks = assistant_blocks(message, i)?;
                push_turn(&mut turns, "assistant", with_cache_control(message, blocks));
            }
            "tool" => {
                let blocks = vec![tool_result(message, i)?];
                push_turn(&mut turns, "user", with_cache_control(message, blocks));
            }
            other => {
                return Err(Error::bad_param(
                    format!("messages[{i}].role"),
                    format!("role {other:?} is not supported by anthropic"),
                ));
            }
        }
    }
    if turns.is_empty() {
        return Err(Error::bad_param(
            "messages",
            "anthropic needs at least one user or assistant message with content",
        ));
    }
    let turns = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            if role == "user" {
                // A tool result must open the turn that answers the tool call.
                blocks
                    .sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            }
            json!({"role": role, "content": blocks})
        })
        .collect();
    let system = match system.as_slice() {
        [] => None,
        [only] if only.get("cache_control").is_none() => only.get("text").cloned(),
        _ => Some(Value::Array(system)),
    };
    Ok((system, turns))
}

/// LiteLLM accepts `cache_control` on a whole message; Anthropic wants it on a block, and a
/// breakpoint on the message's last block caches exactly the same prefix.
fn with_cache_control(message: &Value, mut blocks: Vec<Value>) -> Vec<Value> {
    if let (Some(cache), Some(last)) = (message.get("cache_control"), blocks.last_mut()) {
        last["cache_control"] = cache.clone();
    }
    blocks
}

fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        // Anthropic rejects empty content; an empty turn carries nothing anyway.
        return;
    }
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

/// A text block, or nothing for empty text (Anthropic rejects empty text blocks).
fn text_block(text: &str, part: Option<&Value>) -> Option<Value> {
    if text.is_empty() {
        return None;
    }
    let mut block = json!({"type": "text", "text": text});
    if let Some(cache) = part.and_then(|p| p.get("cache_control")) {
        block["cache_control"] = cache.clone();
    }
    Some(block)
}

/// Which OpenAI content parts a message may carry besides text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parts {
    /// System, developer and tool messages.
    TextOnly,
    /// Images and files too.
    User,
    /// Refusals too (read as text).
    Assistant,
}

/// Message content (a string, a list of content parts, or null) → Anthropic blocks.
fn content_blocks(content: &Value, param: &str, allowed: Parts) -> Result<Vec<Value>> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(text_block(text, None).into_iter().collect()),
        Value::Array(parts) => {
            let mut blocks = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let part_param = format!("{param}[{j}]");
                match (part.get("type").and_then(Value::as_str), allowed) {
                    (Some("text"), _) => {
                        let text = part_text(part, &format!("{part_param}.text"))?;
                        blocks.extend(text_block(text, Some(part)));
                    }
                    (Some("image_url"), Parts::User) => {
                        blocks.push(image_block(part, &part_param)?)
                    }
                    (Some("file"), Parts::User) => blocks.push(file_block(part, &part_param)?),
                    (Some("refusal"), Parts::Assistant) => {
                        blocks.extend(text_block(str_field(part, "refusal"), None));
                    }
                    (other, _) => return Err(unsupported_part(&part_param, other)),
                }
            }
            Ok(blocks)
        }
        _ => Err(Error::bad_param(
            param,
            "`content` must be a string or a list of content parts",
        )),
    }
}

fn part_text<'a>(part: &'a Value, param: &str) -> Result<&'a str> {
    part.get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_param(param, "a text part needs a string `text`"))
}

fn unsupported_part(param: &str, kind: Option<&str>) -> Error {
    Error::bad_param(
        param,
        format!(
            "content part type {} is not supported by anthropic here",
            quoted_type(kind)
        ),
    )
}

/// OpenAI `image_url` (a data URL or an http(s) URL) → Anthropic image block.
fn image_block(part: &Value, param: &str) -> Result<Value> {
    let image = part.get("image_url");
    // Both `{"url": …}` and a bare string are seen in the wild.
    let url = image
        .and_then(|i| i.get("url").or(Some(i)))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::bad_param(
                format!("{param}.image_url"),
                "an image part needs `image_url.url`",
            )
        })?;
    let source = url_source(url, &format!("{param}.image_url.url"))?;
    let mut block = json!({"type": "image", "source": source});
    if let Some(cache) = part.get("cache_control") {
        block["cache_control"] = cache.clone();
    }
    Ok(block)
}

/// OpenAI `file` part with inline `file_data` (a data URL, e.g. a PDF) → Anthropic document block.
fn file_block(part: &Value, param: &str) -> Result<Value> {
    let data = part
        .get("file")
        .and_then(|f| f.get("file_data"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::bad_param(
                format!("{param}.file.file_data"),
                "anthropic needs file parts inline as a base64 data URL in `file.file_data`",
            )
        })?;
    let source = url_source(data, &format!("{param}.file.file_data"))?;
    Ok(json!({"type": "document", "source": source}))
}

/// A `data:<media type>;base64,<data>` URL or an http(s) URL → Anthropic `source`.
fn url_source(url: &str, param: &str) -> Result<Value> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| Error::bad_param(param, "malformed data URL: no ','"))?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
            Error::bad_param(
                param,
                "anthropic needs base64 data URLs (data:<media type>;base64,…)",
            )
        })?;
        if media_type.is_empty() {
            return Err(Error::bad_param(param, "the data URL has no media type"));
        }
        return Ok(json!({"type": "base64", "media_type": media_type, "data": data}));
    }
    let has_scheme = |scheme: &str| {
        url.as_bytes()
            .get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme.as_bytes()))
    };
    if has_scheme("https://") || has_scheme("http://") {
        return Ok(json!({"type": "url", "url": url}));
    }
    Err(Error::bad_param(
        param,
        "expected a data URL or an http(s) URL",
    ))
}

/// Assistant text (string or text/refusal parts) followed by its tool calls as `tool_use` blocks.
fn assistant_blocks(message: &Value, i: usize) -> Result<Vec<Value>> {
    let content = message.get("content").unwrap_or(&Value::Null);
    let mut blocks = content_blocks(content, &format!("messages[{i}].content"), Parts::Assistant)?;
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(Error::bad_param(
                format!("messages[{i}].tool_calls"),
                "`tool_calls` must be a list",
            ));
        }
    };
    for (j, call) in calls.iter().enumerate() {
        let param = format!("messages[{i}].tool_calls[{j}]");
        let id = call.get("id").and_then(Value::as_str).ok_or_else(|| {
            Error::bad_param(format!("{param}.id"), "a tool call needs a string `id`")
        })?;
        let function = call.get("function");
        let name = function_name(function, &param, "a tool call needs `function.name`")?;
        let input = crate::params::tool_call_arguments(function, &param)?;
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

/// A `role: tool` message → a `tool_result` block for the next user turn.
fn tool_result(message: &Value, i: usize) -> Result<Value> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::bad_param(
                format!("messages[{i}].tool_call_id"),
                "a tool message needs a string `tool_call_id`",
            )
        })?;
    let content = match message.get("content").unwrap_or(&Value::Null) {
        Value::String(text) => Value::String(text.clone()),
        other => Value::Array(content_blocks(
            other,
            &format!("messages[{i}].content"),
            Parts::TextOnly,
        )?),
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}
