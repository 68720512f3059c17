//! Anthropic-native clients (`POST /v1/messages`) served by OpenAI-compatible deployments:
//! Anthropic Messages request → OpenAI chat request, OpenAI chat completion → Anthropic message.

use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

use super::{
    list_param, openai_assistant_message, openai_tool_call, quoted_type, stop_reason, str_field,
};

/// Translates an Anthropic Messages request into an OpenAI chat completion request.
/// `model` is copied as is (the caller replaces it with the deployment's upstream name).
/// Anthropic-only knobs without an OpenAI counterpart (`top_k`, `thinking`, cache_control…)
/// are left out, since the request can still be served without them.
pub fn messages_to_chat_request(body: &Map<String, Value>) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    if let Some(model) = body.get("model") {
        out.insert("model".into(), model.clone());
    }

    let mut messages = Vec::new();
    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(system)) => {
            if !system.is_empty() {
                messages.push(json!({"role": "system", "content": system}));
            }
        }
        Some(Value::Array(blocks)) => {
            let text = joined_text(blocks, "system")?;
            if !text.is_empty() {
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        Some(_) => {
            return Err(Error::bad_param(
                "system",
                "`system` must be a string or a list of text blocks",
            ));
        }
    }
    let input = list_param(body.get("messages"), "messages")?;
    for (i, message) in input.iter().enumerate() {
        match message.get("role").and_then(Value::as_str) {
            Some("user") => user_messages(message, i, &mut messages)?,
            Some("assistant") => messages.push(assistant_message(message, i)?),
            _ => {
                return Err(Error::bad_param(
                    format!("messages[{i}].role"),
                    "role must be \"user\" or \"assistant\"",
                ));
            }
        }
    }
    out.insert("messages".into(), Value::Array(messages));

    for (name, value) in body {
        if value.is_null() {
            continue;
        }
        match name.as_str() {
            "max_tokens" | "temperature" | "top_p" | "stream" => {
                out.insert(name.clone(), value.clone());
            }
            "stop_sequences" if value.as_array().is_some_and(|stops| !stops.is_empty()) => {
                out.insert("stop".into(), value.clone());
            }
            "metadata" => {
                if let Some(user) = value.get("user_id").filter(|u| u.is_string()) {
                    out.insert("user".into(), user.clone());
                }
            }
            _ => {}
        }
    }

    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        let tools = convert_tools(tools)?;
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
            if let Some(choice) = body.get("tool_choice").filter(|c| !c.is_null()) {
                if let Some(choice_value) = convert_tool_choice(choice)? {
                    out.insert("tool_choice".into(), choice_value);
                }
                if choice
                    .get("disable_parallel_tool_use")
                    .and_then(Value::as_bool)
                    == Some(true)
                {
                    out.insert("parallel_tool_calls".into(), Value::Bool(false));
                }
            }
        }
    }
    Ok(out)
}

/// Concatenated text of a list of text blocks (Anthropic system prompts, tool results).
fn joined_text(blocks: &[Value], param: &str) -> Result<String> {
    let mut texts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => texts.push(str_field(block, "text")),
            other => return Err(unsupported_block(&format!("{param}[{j}]"), other)),
        }
    }
    Ok(texts.join("\n"))
}

fn unsupported_block(param: &str, kind: Option<&str>) -> Error {
    Error::bad_param(
        param,
        format!(
            "content block type {} cannot be sent to this model",
            quoted_type(kind)
        ),
    )
}

/// The `content` of an Anthropic message: a plain string or a list of content blocks.
enum Content<'a> {
    Text(&'a str),
    Blocks(&'a [Value]),
}

fn message_content(message: &Value, i: usize) -> Result<Content<'_>> {
    match message.get("content") {
        Some(Value::String(text)) => Ok(Content::Text(text)),
        Some(Value::Array(blocks)) => Ok(Content::Blocks(blocks)),
        _ => Err(Error::bad_param(
            format!("messages[{i}].content"),
            "`content` must be a string or a list of content blocks",
        )),
    }
}

/// One Anthropic user turn → OpenAI `tool` messages for its tool results (which must directly
/// follow the assistant's tool calls) then one user message with the remaining content.
fn user_messages(message: &Value, i: usize, out: &mut Vec<Value>) -> Result<()> {
    let blocks = match message_content(message, i)? {
        Content::Text(text) => {
            out.push(json!({"role": "user", "content": text}));
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("messages[{i}].content[{j}]");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                parts.push(json!({"type": "text", "text": str_field(block, "text")}));
            }
            Some("image") => {
                let url = source_url(block, &param)?;
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Some("document") => {
                let url = source_url(block, &param)?;
                if !url.starts_with("data:") {
                    return Err(Error::bad_param(
                        format!("{param}.source"),
                        "documents must be sent inline (base64) to this model",
                    ));
                }
                parts.push(json!({"type": "file", "file": {"file_data": url}}));
            }
            Some("tool_result") => {
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Error::bad_param(
                            format!("{param}.tool_use_id"),
                            "a tool_result needs `tool_use_id`",
                        )
                    })?;
                let content = match block.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Array(blocks)) => joined_text(blocks, &format!("{param}.content"))?,
                    Some(_) => {
                        return Err(Error::bad_param(
                            format!("{param}.content"),
                            "tool_result content must be a string or a list of text blocks",
                        ));
                    }
                };
                out.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            other => return Err(unsupported_block(&param, other)),
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    // A single text part reads most naturally (and most compatibly) as a plain string.
    let content = match parts.as_slice() {
        [only] if only.get("type").and_then(Value::as_str) == Some("text") => {
            only.get("text").cloned().unwrap_or(Value::Null)
        }
        _ => Value::Array(parts),
    };
    out.push(json!({"role": "user", "content": content}));
    Ok(())
}

/// An image/document `source` (base64 or url) → a URL an OpenAI model accepts.
fn source_url(block: &Value, param: &str) -> Result<String> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let field = |name: &str| source.get(name).and_then(Value::as_str);
    match field("type") {
        Some("base64") => match (field("media_type"), field("data")) {
            (Some(media_type), Some(data)) => Ok(format!("data:{media_type};base64,{data}")),
            _ => Err(Error::bad_param(
                format!("{param}.source"),
                "a base64 source needs `media_type` and `data`",
            )),
        },
        Some("url") => field("url").map(str::to_owned).ok_or_else(|| {
            Error::bad_param(format!("{param}.source.url"), "a url source needs `url`")
        }),
        _ => Err(Error::bad_param(
            format!("{param}.source.type"),
            "only base64 and url sources can be sent to this model",
        )),
    }
}

fn assistant_message(message: &Value, i: usize) -> Result<Value> {
    let blocks = match message_content(message, i)? {
        Content::Text(text) => return Ok(json!({"role": "assistant", "content": text})),
        Content::Blocks(blocks) => blocks,
    };
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(str_field(block, "text")),
            Some("tool_use") => tool_calls.push(openai_tool_call(block)),
            // Earlier thinking is Anthropic-specific and not needed to continue the conversation.
            Some("thinking" | "redacted_thinking") => {}
            other => {
                return Err(unsupported_block(
                    &format!("messages[{i}].content[{j}]"),
                    other,
                ));
            }
        }
    }
    Ok(Value::Object(openai_assistant_message(text, tool_calls)))
}

fn convert_tools(tools: &Value) -> Result<Vec<Value>> {
    list_param(Some(tools), "tools")?
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let name = tool.get("name").and_then(Value::as_str).ok_or_else(|| {
                Error::bad_param(format!("tools[{i}].name"), "a tool needs a string `name`")
            })?;
            // Server tools (web search, code execution…) have a `type` and no schema.
            let schema = tool
                .get("input_schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| {
                    Error::bad_param(
                        format!("tools[{i}]"),
                        "only custom tools with an `input_schema` can be sent to this model",
                    )
                })?;
            let mut function = Map::new();
            function.insert("name".into(), json!(name));
            if let Some(description) = tool.get("description").filter(|d| d.is_string()) {
                function.insert("description".into(), description.clone());
            }
            function.insert("parameters".into(), schema.clone());
            Ok(json!({"type": "function", "function": function}))
        })
        .collect()
}

/// Anthropic `tool_choice` → OpenAI; `None` when it only carried `disable_parallel_tool_use`…
/// of an `auto` choice, which is OpenAI's default anyway.
fn convert_tool_choice(choice: &Value) -> Result<Option<Value>> {
    match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(None),
        Some("any") => Ok(Some(json!("required"))),
        Some("none") => Ok(Some(json!("none"))),
        Some("tool") => {
            let name = choice.get("name").and_then(Value::as_str).ok_or_else(|| {
                Error::bad_param(
                    "tool_choice.name",
                    "tool_choice of type \"tool\" needs `name`",
                )
            })?;
            Ok(Some(
                json!({"type": "function", "function": {"name": name}}),
            ))
        }
        _ => Err(Error::bad_param(
            "tool_choice.type",
            "tool_choice.type must be \"auto\", \"any\", \"tool\" or \"none\"",
        )),
    }
}

/// Translates an OpenAI chat completion into an Anthropic `message` reported as `model`.
/// Never fails: missing fields read as empty.
pub fn chat_response_to_messages(resp: &Value, model: &str) -> Value {
    let choice = resp
        .get("choices")
        .and_then(|c| c.get(0))
        .unwrap_or(&Value::Null);
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    if let Some(text) = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let function = call.get("function").unwrap_or(&Value::Null);
        let arguments = str_field(function, "arguments");
        let input = match serde_json::from_str::<Value>(arguments) {
            Ok(input @ Value::Object(_)) => input,
            _ if arguments.trim().is_empty() => json!({}),
            // Anthropic needs an object; keep the model's invalid output visible rather than lose it.
            _ => json!({ "_raw_arguments": arguments }),
        };
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").cloned().unwrap_or(Value::Null),
            "name": function.get("name").cloned().unwrap_or(Value::Null),
            "input": input,
        }));
    }
    let usage = resp.get("usage").unwrap_or(&Value::Null);
    let count = |v: &Value, name: &str| v.get(name).and_then(Value::as_u64).unwrap_or(0);
    let cached = usage
        .get("prompt_tokens_details")
        .map(|d| count(d, "cached_tokens"))
        .unwrap_or(0);
    // Anthropic's input_tokens excludes cache reads, OpenAI's prompt_tokens includes them.
    let input_tokens = count(usage, "prompt_tokens").saturating_sub(cached);
    json!({
        "id": resp.get("id").and_then(Value::as_str).unwrap_or("msg_vaultgate"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason").and_then(Value::as_str)),
        "stop_sequence": null,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": count(usage, "completion_tokens"),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
        },
    })
}
