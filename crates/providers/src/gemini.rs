//! Google's Gemini API (`generateContent`, `streamGenerateContent` with `alt=sse`,
//! `batchEmbedContents`), used by `gemini/` (Google AI Studio, a key in `x-goog-api-key`) and
//! by `vertex_ai/` Gemini models (the same bodies under a Vertex URL, an OAuth token).
//!
//! OpenAI chat → `contents` (user/model turns; system and developer messages become
//! `systemInstruction`; images as `inlineData` or `fileData`; tool calls as `functionCall`, tool
//! results as `functionResponse` named after the call they answer), tools as
//! `functionDeclarations` with their JSON schema as it is (`parametersJsonSchema`), sampling
//! params into `generationConfig`. The answer, stream and errors come back in `answer`.

mod answer;

use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

pub use answer::{GeminiStream, embed_answer, generate_answer, map_error};

use crate::TranslateOptions;
use crate::params::{content_text, number, positive_int, stop_sequences, unsupported};

/// A Gemini tool call id carries the call's thought signature (Gemini 2.5+ needs it back with
/// the call in the next turn) after this marker, as LiteLLM does.
pub(crate) const THOUGHT_MARKER: &str = "__thought__";

/// The body of a `generateContent` request for an OpenAI chat `body`.
pub fn chat_request(body: &Map<String, Value>, opts: &TranslateOptions) -> Result<Value> {
    let mut out = Map::new();
    let (system, contents) = contents(body.get("messages"))?;
    out.insert("contents".into(), Value::Array(contents));
    if let Some(system) = system {
        out.insert("systemInstruction".into(), system);
    }
    let mut config = Map::new();
    let mut tools = None;
    let mut tool_choice = None;
    for (name, value) in body {
        if value.is_null() {
            continue;
        }
        match name.as_str() {
            "model"
            | "messages"
            | "stream"
            | "stream_options"
            | "user"
            | "store"
            | "parallel_tool_calls" => {}
            "max_tokens" | "max_completion_tokens" => {
                config.insert("maxOutputTokens".into(), json!(positive_int(name, value)?));
            }
            "temperature" => {
                config.insert("temperature".into(), number(name, value)?);
            }
            "top_p" => {
                config.insert("topP".into(), number(name, value)?);
            }
            "top_k" => {
                config.insert("topK".into(), number(name, value)?);
            }
            "presence_penalty" => {
                config.insert("presencePenalty".into(), number(name, value)?);
            }
            "frequency_penalty" => {
                config.insert("frequencyPenalty".into(), number(name, value)?);
            }
            "seed" => {
                config.insert("seed".into(), number(name, value)?);
            }
            "n" => {
                config.insert("candidateCount".into(), json!(positive_int(name, value)?));
            }
            "stop" => {
                config.insert("stopSequences".into(), Value::Array(stop_sequences(value)?));
            }
            "response_format" => response_format(value, &mut config)?,
            "reasoning_effort" => {
                config.insert("thinkingConfig".into(), thinking(value)?);
            }
            "tools" => tools = Some(function_declarations(value)?),
            "tool_choice" => tool_choice = Some(tool_config(value)?),
            // Gemini's own knobs, for clients that know them.
            "safety_settings" | "safetySettings" => {
                out.insert("safetySettings".into(), value.clone());
            }
            "cached_content" | "cachedContent" => {
                out.insert("cachedContent".into(), value.clone());
            }
            "thinking" | "thinkingConfig" => {
                config.insert("thinkingConfig".into(), thinking_config(value));
            }
            _ => unsupported(name, value, "gemini", opts.drop_params)?,
        }
    }
    if let Some(declarations) = tools.filter(|d| !d.is_empty()) {
        out.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
        if let Some(choice) = tool_choice {
            out.insert("toolConfig".into(), choice);
        }
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(out))
}

/// `response_format` → `responseMimeType` (and the JSON schema as it is).
fn response_format(value: &Value, config: &mut Map<String, Value>) -> Result<()> {
    match value.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), json!("application/json"));
            if let Some(schema) = value.pointer("/json_schema/schema") {
                config.insert("responseJsonSchema".into(), schema.clone());
            }
        }
        _ => {
            return Err(Error::bad_param(
                "response_format",
                "`response_format.type` must be text, json_object or json_schema",
            ));
        }
    }
    Ok(())
}

/// `reasoning_effort` → a thinking budget (LiteLLM's: low 1024, medium 2048, high 4096).
fn thinking(value: &Value) -> Result<Value> {
    let budget = match value.as_str() {
        Some("none" | "disable") => 0,
        Some("minimal") => 128,
        Some("low") => 1024,
        Some("medium") => 2048,
        Some("high") => 4096,
        _ => {
            return Err(Error::bad_param(
                "reasoning_effort",
                "`reasoning_effort` must be none, minimal, low, medium or high",
            ));
        }
    };
    Ok(json!({"thinkingBudget": budget, "includeThoughts": budget > 0}))
}

/// Anthropic's `thinking` (`{"type":"enabled","budget_tokens":N}`) or a Gemini
/// `thinkingConfig` as it is.
fn thinking_config(value: &Value) -> Value {
    match value.get("type").and_then(Value::as_str) {
        Some("enabled") => json!({
            "thinkingBudget": value.get("budget_tokens").cloned().unwrap_or(json!(-1)),
            "includeThoughts": true,
        }),
        Some("disabled") => json!({"thinkingBudget": 0}),
        _ => value.clone(),
    }
}

fn function_declarations(value: &Value) -> Result<Vec<Value>> {
    let tools = value
        .as_array()
        .ok_or_else(|| Error::bad_param("tools", "`tools` must be a list"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                return Err(Error::bad_param(
                    format!("tools[{i}].type"),
                    "only \"function\" tools can be sent to gemini",
                ));
            }
            let function = tool.get("function").unwrap_or(&Value::Null);
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Error::bad_param(
                        format!("tools[{i}].function.name"),
                        "missing tool function name",
                    )
                })?;
            let mut declaration = Map::new();
            declaration.insert("name".into(), json!(name));
            if let Some(description) = function.get("description").filter(|d| d.is_string()) {
                declaration.insert("description".into(), description.clone());
            }
            if let Some(parameters) = function.get("parameters").filter(|p| p.is_object()) {
                declaration.insert("parametersJsonSchema".into(), parameters.clone());
            }
            Ok(Value::Object(declaration))
        })
        .collect()
}

fn tool_config(value: &Value) -> Result<Value> {
    let config = match value {
        Value::String(mode) => match mode.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            "required" => json!({"mode": "ANY"}),
            _ => return Err(bad_tool_choice()),
        },
        Value::Object(choice) => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(bad_tool_choice)?;
            json!({"mode": "ANY", "allowedFunctionNames": [name]})
        }
        _ => return Err(bad_tool_choice()),
    };
    Ok(json!({"functionCallingConfig": config}))
}

fn bad_tool_choice() -> Error {
    Error::bad_param(
        "tool_choice",
        "`tool_choice` must be \"auto\", \"none\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":…}}",
    )
}

/// OpenAI messages → Gemini `systemInstruction` and `contents` (consecutive turns of one role
/// merged, tool results answering the model's calls in a user turn).
fn contents(messages: Option<&Value>) -> Result<(Option<Value>, Vec<Value>)> {
    let messages = match messages {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(Error::bad_param("messages", "`messages` must be a list")),
        None => {
            return Err(Error::bad_param(
                "messages",
                "missing required parameter `messages`",
            ));
        }
    };
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // Tool call id → function name, for the tool results that answer them.
    let mut calls: Vec<(String, String)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).ok_or_else(|| {
            Error::bad_param(
                format!("messages[{i}].role"),
                "each message needs a string `role`",
            )
        })?;
        let content = message.get("content").unwrap_or(&Value::Null);
        let param = format!("messages[{i}].content");
        let (turn_role, parts) = match role {
            "system" | "developer" => {
                let text = content_text(content, &param, |_, p| {
                    Err(Error::bad_param(p, "system messages take text only"))
                })?;
                system.extend(text.filter(|t| !t.is_empty()).map(|t| json!({"text": t})));
                continue;
            }
            "user" => ("user", user_parts(content, &param)?),
            "assistant" => ("model", model_parts(message, i, &mut calls)?),
            "tool" | "function" => ("user", vec![function_response(message, i, &calls)?]),
            other => {
                return Err(Error::bad_param(
                    format!("messages[{i}].role"),
                    format!("role {other:?} is not supported by gemini"),
                ));
            }
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == turn_role => existing.extend(parts),
            _ => turns.push((turn_role, parts)),
        }
    }
    if turns.is_empty() {
        return Err(Error::bad_param(
            "messages",
            "gemini needs at least one user or assistant message with content",
        ));
    }
    let contents = turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    let system = (!system.is_empty()).then(|| json!({"parts": system}));
    Ok((system, contents))
}

fn user_parts(content: &Value, param: &str) -> Result<Vec<Value>> {
    let mut parts = Vec::new();
    match content {
        Value::String(text) => parts.push(json!({"text": text})),
        Value::Array(items) => {
            for (j, part) in items.iter().enumerate() {
                let part_param = format!("{param}[{j}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = part.get("text").and_then(Value::as_str).ok_or_else(|| {
                            Error::bad_param(
                                format!("{part_param}.text"),
                                "a text part needs a string `text`",
                            )
                        })?;
                        parts.push(json!({"text": text}));
                    }
                    Some("image_url") => {
                        let url = part
                            .get("image_url")
                            .and_then(|i| i.get("url").or(Some(i)))
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        parts.push(media_part(url, &format!("{part_param}.image_url.url"))?);
                    }
                    Some("file") => {
                        let file = part.get("file").unwrap_or(&Value::Null);
                        let url = file
                            .get("file_data")
                            .or_else(|| file.get("file_id"))
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        parts.push(media_part(url, &format!("{part_param}.file"))?);
                    }
                    other => {
                        return Err(Error::bad_param(
                            part_param,
                            format!(
                                "content part type {} is not supported by gemini",
                                other.map_or("null".into(), |k| format!("{k:?}"))
                            ),
                        ));
                    }
                }
            }
        }
        Value::Null => {}
        _ => {
            return Err(Error::bad_param(
                param,
                "`content` must be a string or a list of content parts",
            ));
        }
    }
    Ok(parts)
}

/// A data URL → `inlineData`; any other URL (a Files API URI, `gs://`, https) → `fileData`
/// with the media type its extension names.
fn media_part(url: &str, param: &str) -> Result<Value> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (mime, data) = rest.split_once(";base64,").ok_or_else(|| {
            Error::bad_param(param, "data URLs must be base64 (data:<type>;base64,…)")
        })?;
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    if url.is_empty() {
        return Err(Error::bad_param(param, "an image or file part needs a URL"));
    }
    Ok(json!({"fileData": {"mimeType": mime_of(url), "fileUri": url}}))
}

fn mime_of(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let extension = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "txt" => "text/plain",
        _ => "image/jpeg",
    }
}

/// An assistant message → `model` parts: its text, then its tool calls as `functionCall`s
/// (with the thought signature its id carries).
fn model_parts(message: &Value, i: usize, calls: &mut Vec<(String, String)>) -> Result<Vec<Value>> {
    let content = message.get("content").unwrap_or(&Value::Null);
    let text = content_text(
        content,
        &format!("messages[{i}].content"),
        |part, p| match part.get("type").and_then(Value::as_str) {
            Some("refusal") => Ok(()),
            _ => Err(Error::bad_param(p, "assistant messages take text only")),
        },
    )?;
    let mut parts: Vec<Value> = text
        .filter(|t| !t.is_empty())
        .map(|t| json!({"text": t}))
        .into_iter()
        .collect();
    for (j, call) in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let param = format!("messages[{i}].tool_calls[{j}]");
        let function = call.get("function").unwrap_or(&Value::Null);
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::bad_param(
                    format!("{param}.function.name"),
                    "a tool call needs `function.name`",
                )
            })?;
        let args = crate::params::tool_call_arguments(Some(function), &param)?;
        let id = call.get("id").and_then(Value::as_str).unwrap_or_default();
        calls.push((id.to_owned(), name.to_owned()));
        let mut part = json!({"functionCall": {"name": name, "args": args}});
        if let Some((_, signature)) = id.split_once(THOUGHT_MARKER) {
            part["thoughtSignature"] = json!(signature);
        }
        parts.push(part);
    }
    Ok(parts)
}

/// A `tool` message → a `functionResponse` named after the call it answers.
fn function_response(message: &Value, i: usize, calls: &[(String, String)]) -> Result<Value> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = calls
        .iter()
        .find(|(call, _)| call == id)
        .map(|(_, name)| name.as_str())
        .or_else(|| message.get("name").and_then(Value::as_str))
        .ok_or_else(|| {
            Error::bad_param(
                format!("messages[{i}].tool_call_id"),
                "a tool result must answer a tool call of an earlier assistant message",
            )
        })?;
    let content = message.get("content").unwrap_or(&Value::Null);
    let text = content_text(content, &format!("messages[{i}].content"), |_, p| {
        Err(Error::bad_param(p, "tool results take text only"))
    })?
    .unwrap_or_default();
    // A JSON object result is passed as it is; anything else is wrapped (LiteLLM's shape).
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({"content": text}),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

/// The body of a `batchEmbedContents` request for an OpenAI embeddings `body`.
pub fn embed_request(body: &Map<String, Value>, model_path: &str) -> Result<Value> {
    let inputs: Vec<&str> = match body.get("input") {
        Some(Value::String(text)) => vec![text],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().ok_or_else(|| {
                    Error::bad_param("input", "gemini embeds text: `input` must be strings")
                })
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(Error::bad_param(
                "input",
                "`input` must be a string or a list of strings",
            ));
        }
    };
    let dimensions = body.get("dimensions").and_then(Value::as_u64);
    let requests: Vec<Value> = inputs
        .into_iter()
        .map(|text| {
            let mut request = json!({"model": model_path, "content": {"parts": [{"text": text}]}});
            if let Some(dimensions) = dimensions {
                request["outputDimensionality"] = json!(dimensions);
            }
            request
        })
        .collect();
    Ok(json!({"requests": requests}))
}
