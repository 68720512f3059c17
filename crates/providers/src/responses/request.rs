//! A Responses API request as a chat completion request, for deployments that only speak chat.

use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

use crate::openai_assistant_message;

/// Request members copied to chat as they are.
const SAME_IN_CHAT: &[&str] = &[
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "stream",
    "service_tier",
];

/// Members that need a response or conversation kept by OpenAI. (A `previous_response_id`
/// the gateway stored itself is resolved before translation and never reaches here.)
const NEEDS_STORAGE: &[&str] = &["previous_response_id", "conversation"];

/// Translates a Responses request into a chat completion request (`model` copied as is; the
/// caller sets the upstream name). Built-in tools (web search, file search…) and input items
/// only OpenAI can run are refused with a 400 naming them, or dropped when `drop_params`.
/// Members with no chat counterpart that change nothing about the answer (`store`, `include`,
/// `truncation`, `prompt_cache_key`…) are left out.
pub fn responses_to_chat_request(
    body: &Map<String, Value>,
    drop_params: bool,
) -> Result<Map<String, Value>> {
    for name in NEEDS_STORAGE {
        if body.get(*name).is_some_and(|v| !v.is_null()) {
            return Err(Error::bad_param(
                *name,
                format!(
                    "`{name}` names what an OpenAI or Azure deployment keeps, which this model cannot read (or the gateway stores no responses: it has no key database): send the whole conversation in `input` instead"
                ),
            ));
        }
    }
    if body.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(Error::bad_param(
            "background",
            "background responses need an OpenAI or Azure deployment",
        ));
    }
    let mut out = Map::new();
    if let Some(model) = body.get("model") {
        out.insert("model".into(), model.clone());
    }
    let mut messages = Vec::new();
    match body.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) if text.is_empty() => {}
        Some(Value::String(text)) => messages.push(json!({"role": "system", "content": text})),
        Some(_) => {
            return Err(Error::bad_param(
                "instructions",
                "`instructions` must be a string",
            ));
        }
    }
    match body.get("input") {
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, i, drop_params, &mut messages)?;
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => {
            return Err(Error::bad_param(
                "input",
                "`input` must be a string or a list of input items",
            ));
        }
    }
    if messages.is_empty() {
        return Err(Error::bad_param(
            "input",
            "missing required parameter `input`",
        ));
    }
    out.insert("messages".into(), Value::Array(messages));

    for (name, value) in body {
        if value.is_null() {
            continue;
        }
        match name.as_str() {
            n if SAME_IN_CHAT.contains(&n) => {
                out.insert(name.clone(), value.clone());
            }
            "max_output_tokens" => {
                out.insert("max_tokens".into(), value.clone());
            }
            "top_logprobs" => {
                out.insert("logprobs".into(), json!(true));
                out.insert("top_logprobs".into(), value.clone());
            }
            "reasoning" => {
                if let Some(effort) = value.get("effort").filter(|e| e.is_string()) {
                    out.insert("reasoning_effort".into(), effort.clone());
                }
            }
            "text" => {
                if let Some(format) = value.get("format").and_then(response_format) {
                    out.insert("response_format".into(), format);
                }
            }
            _ => {}
        }
    }
    if let Some(tools) = body.get("tools").filter(|t| !t.is_null()) {
        let tools = chat_tools(tools, drop_params)?;
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
            if let Some(choice) = body.get("tool_choice").filter(|c| !c.is_null())
                && let Some(choice) = tool_choice(choice, drop_params)?
            {
                out.insert("tool_choice".into(), choice);
            }
        }
    }
    Ok(out)
}

/// One input item as chat messages (appended to `out`).
fn input_item(item: &Value, i: usize, drop_params: bool, out: &mut Vec<Value>) -> Result<()> {
    let param = format!("input[{i}]");
    let kind = item.get("type").and_then(Value::as_str);
    match kind {
        // A message may leave out its type (the "easy" input message).
        Some("message") | None if item.get("role").is_some() => message(item, &param, out),
        Some("function_call") => {
            let call = tool_call(item, &param, |item| {
                Ok(item
                    .get("arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("{}")
                    .to_owned())
            })?;
            push_tool_call(out, call);
            Ok(())
        }
        Some("custom_tool_call") => {
            let call = tool_call(item, &param, |item| {
                let input = item
                    .get("input")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Ok(json!({ "input": input }).to_string())
            })?;
            push_tool_call(out, call);
            Ok(())
        }
        Some("function_call_output" | "custom_tool_call_output") => {
            let call_id = required_str(item, "call_id", &param)?;
            let content = match item.get("output") {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Array(parts)) => parts_text(parts, &format!("{param}.output"))?,
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            };
            out.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
            Ok(())
        }
        // Earlier reasoning is the model's own; chat models do not take it back.
        Some("reasoning") => Ok(()),
        Some("item_reference") => Err(Error::bad_param(
            param,
            "item references need stored responses, and only OpenAI and Azure deployments keep them",
        )),
        _ if drop_params => Ok(()),
        other => Err(Error::bad_param(
            param,
            format!(
                "input items of type {} cannot be sent to this model",
                quoted(other)
            ),
        )),
    }
}

fn message(item: &Value, param: &str, out: &mut Vec<Value>) -> Result<()> {
    let role = item.get("role").and_then(Value::as_str).unwrap_or_default();
    let content = item.get("content").unwrap_or(&Value::Null);
    match role {
        "system" | "developer" => {
            let text = match content {
                Value::String(text) => text.clone(),
                Value::Array(parts) => parts_text(parts, &format!("{param}.content"))?,
                _ => return Err(content_error(param)),
            };
            out.push(json!({"role": "system", "content": text}));
        }
        "user" => {
            let content = match content {
                Value::String(text) => json!(text),
                Value::Array(parts) => user_parts(parts, &format!("{param}.content"))?,
                _ => return Err(content_error(param)),
            };
            out.push(json!({"role": "user", "content": content}));
        }
        "assistant" => {
            let text = match content {
                Value::String(text) => text.clone(),
                Value::Array(parts) => parts_text(parts, &format!("{param}.content"))?,
                _ => return Err(content_error(param)),
            };
            out.push(Value::Object(openai_assistant_message(text, Vec::new())));
        }
        _ => {
            return Err(Error::bad_param(
                format!("{param}.role"),
                "role must be \"user\", \"assistant\", \"system\" or \"developer\"",
            ));
        }
    }
    Ok(())
}

fn content_error(param: &str) -> Error {
    Error::bad_param(
        format!("{param}.content"),
        "`content` must be a string or a list of content parts",
    )
}

/// A user message's parts as chat parts; one text part reads as a plain string.
fn user_parts(parts: &[Value], param: &str) -> Result<Value> {
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let part_param = format!("{param}[{j}]");
        let field = |name: &str| part.get(name).and_then(Value::as_str);
        match part.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                out.push(json!({"type": "text", "text": field("text").unwrap_or_default()}));
            }
            Some("input_image") => {
                let url = field("image_url").ok_or_else(|| {
                    Error::bad_param(
                        format!("{part_param}.image_url"),
                        "images must be sent as `image_url` (a URL or a data: URL) to this model",
                    )
                })?;
                let mut image = json!({ "url": url });
                if let Some(detail) = field("detail") {
                    image["detail"] = json!(detail);
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            Some("input_file") => {
                let mut file = Map::new();
                for name in ["file_data", "file_id", "filename"] {
                    if let Some(value) = field(name) {
                        file.insert(name.into(), json!(value));
                    }
                }
                if !file.contains_key("file_data") && !file.contains_key("file_id") {
                    return Err(Error::bad_param(
                        part_param,
                        "a file needs `file_data` or `file_id`",
                    ));
                }
                out.push(json!({"type": "file", "file": file}));
            }
            other => {
                return Err(Error::bad_param(
                    part_param,
                    format!(
                        "content parts of type {} cannot be sent to this model",
                        quoted(other)
                    ),
                ));
            }
        }
    }
    Ok(match out.as_slice() {
        [only] if only.get("type").and_then(Value::as_str) == Some("text") => {
            only.get("text").cloned().unwrap_or(Value::Null)
        }
        _ => Value::Array(out),
    })
}

/// The text of a list of text parts (instructions, assistant turns, tool output); a refusal
/// counts as text.
fn parts_text(parts: &[Value], param: &str) -> Result<String> {
    let mut text = String::new();
    for (j, part) in parts.iter().enumerate() {
        let field = |name: &str| part.get(name).and_then(Value::as_str).unwrap_or_default();
        match part.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => text.push_str(field("text")),
            Some("refusal") => text.push_str(field("refusal")),
            other => {
                return Err(Error::bad_param(
                    format!("{param}[{j}]"),
                    format!(
                        "only text can be sent to this model here, not {}",
                        quoted(other)
                    ),
                ));
            }
        }
    }
    Ok(text)
}

/// An earlier call of the model as a chat tool call.
fn tool_call(
    item: &Value,
    param: &str,
    arguments: impl Fn(&Value) -> Result<String>,
) -> Result<Value> {
    let call_id = required_str(item, "call_id", param)?;
    let name = required_str(item, "name", param)?;
    Ok(json!({
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments(item)?},
    }))
}

/// Calls follow the assistant's text of the same turn: they join its message, or start one.
fn push_tool_call(out: &mut Vec<Value>, call: Value) {
    if let Some(last) = out.last_mut()
        && last.get("role").and_then(Value::as_str) == Some("assistant")
        && let Some(message) = last.as_object_mut()
    {
        let calls = message
            .entry("tool_calls")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(calls) = calls.as_array_mut() {
            calls.push(call);
        }
        if message
            .get("content")
            .and_then(Value::as_str)
            .is_some_and(str::is_empty)
        {
            message.insert("content".into(), Value::Null);
        }
        return;
    }
    let message = openai_assistant_message(String::new(), vec![call]);
    out.push(Value::Object(message));
}

fn required_str<'a>(item: &'a Value, name: &str, param: &str) -> Result<&'a str> {
    item.get(name)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::bad_param(
                format!("{param}.{name}"),
                format!("missing required parameter `{name}`"),
            )
        })
}

/// Responses tools as chat tools: `function` tools as they are, `custom` (free-form) tools as
/// functions taking one `input` string.
fn chat_tools(tools: &Value, drop_params: bool) -> Result<Vec<Value>> {
    let Value::Array(tools) = tools else {
        return Err(Error::bad_param("tools", "`tools` must be a list"));
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let name = tool.get("name").and_then(Value::as_str);
        let description = tool.get("description").filter(|d| d.is_string());
        let mut function = Map::new();
        match (tool.get("type").and_then(Value::as_str), name) {
            (Some("function"), Some(name)) => {
                function.insert("name".into(), json!(name));
                if let Some(description) = description {
                    function.insert("description".into(), description.clone());
                }
                let parameters = tool
                    .get("parameters")
                    .filter(|p| p.is_object())
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                function.insert("parameters".into(), parameters);
                if let Some(strict) = tool.get("strict").filter(|s| s.is_boolean()) {
                    function.insert("strict".into(), strict.clone());
                }
            }
            (Some("custom"), Some(name)) => {
                function.insert("name".into(), json!(name));
                if let Some(description) = description {
                    function.insert("description".into(), description.clone());
                }
                function.insert(
                    "parameters".into(),
                    json!({"type": "object", "properties": {"input": {"type": "string",
                        "description": "The tool's input, as free-form text."}},
                        "required": ["input"]}),
                );
            }
            (Some("function" | "custom"), None) => {
                return Err(Error::bad_param(
                    format!("tools[{i}].name"),
                    "a tool needs a string `name`",
                ));
            }
            _ if drop_params => continue,
            (other, _) => {
                return Err(Error::bad_param(
                    format!("tools[{i}]"),
                    format!(
                        "tools of type {} run only on OpenAI and Azure deployments; set litellm_settings.drop_params: true to drop them",
                        quoted(other)
                    ),
                ));
            }
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(out)
}

/// Responses `tool_choice` → chat; `None` when it asks for nothing chat can say.
fn tool_choice(choice: &Value, drop_params: bool) -> Result<Option<Value>> {
    if let Some(mode) = choice.as_str() {
        return Ok(Some(json!(mode)));
    }
    match choice.get("type").and_then(Value::as_str) {
        Some("function" | "custom") => {
            let name = choice.get("name").and_then(Value::as_str).ok_or_else(|| {
                Error::bad_param("tool_choice.name", "a named tool_choice needs `name`")
            })?;
            Ok(Some(
                json!({"type": "function", "function": {"name": name}}),
            ))
        }
        // Restricting the tools is not a chat notion; the mode is.
        Some("allowed_tools") => Ok(choice.get("mode").filter(|m| m.is_string()).cloned()),
        _ if drop_params => Ok(None),
        other => Err(Error::bad_param(
            "tool_choice",
            format!(
                "tool_choice of type {} runs only on OpenAI and Azure deployments",
                quoted(other)
            ),
        )),
    }
}

/// `text.format` as chat's `response_format`; `None` for plain text.
fn response_format(format: &Value) -> Option<Value> {
    match format.get("type").and_then(Value::as_str)? {
        "json_schema" => {
            let mut schema = Map::new();
            for name in ["name", "description", "schema", "strict"] {
                if let Some(value) = format.get(name).filter(|v| !v.is_null()) {
                    schema.insert(name.into(), value.clone());
                }
            }
            Some(json!({"type": "json_schema", "json_schema": schema}))
        }
        "json_object" => Some(json!({"type": "json_object"})),
        _ => None,
    }
}

fn quoted(kind: Option<&str>) -> String {
    kind.map_or_else(|| "null".to_owned(), |k| format!("{k:?}"))
}
