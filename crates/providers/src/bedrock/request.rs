//! OpenAI chat completion request → Bedrock Converse request.
//!
//! The OpenAI side is read by the Anthropic translation (roles, alternation, tool calls and
//! results, images, documents, parameter checks: one tested reading of OpenAI chat), whose
//! Messages body maps block for block onto Converse's.

use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

use crate::anthropic::{self, TranslateOptions};

/// Knobs of the OpenAI → Converse translation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConverseOptions {
    /// `maxTokens` when the client sets none (the deployment's `max_tokens`); without either,
    /// Bedrock applies the model's own default.
    pub default_max_tokens: Option<u64>,
    /// `litellm_settings.drop_params`.
    pub drop_params: bool,
}

/// Translates an OpenAI chat completion body into a Converse (or ConverseStream) body; the
/// model id goes in the URL, not the body.
pub fn chat_to_converse_request(
    body: &Map<String, Value>,
    opts: &ConverseOptions,
) -> Result<Value> {
    let client_max = ["max_completion_tokens", "max_tokens"]
        .iter()
        .any(|name| body.get(*name).is_some_and(|v| !v.is_null()));
    let anthropic_opts = TranslateOptions {
        default_max_tokens: opts
            .default_max_tokens
            .unwrap_or(anthropic::DEFAULT_MAX_TOKENS),
        drop_params: opts.drop_params,
    };
    let messages =
        anthropic::chat_to_messages_request(body, "", &anthropic_opts).map_err(as_bedrock_error)?;
    let mut converse = messages_to_converse(&messages)?;
    if !client_max
        && opts.default_max_tokens.is_none()
        && let Some(converse) = converse.as_object_mut()
        && let Some(Value::Object(config)) = converse.get_mut("inferenceConfig")
    {
        config.remove("maxTokens");
        if config.is_empty() {
            converse.remove("inferenceConfig");
        }
    }
    Ok(converse)
}

/// The Anthropic translation words its refusals for Anthropic; the client asked Bedrock.
fn as_bedrock_error(error: Error) -> Error {
    match error {
        Error::BadRequest { message, param } => Error::BadRequest {
            message: message.replace("anthropic", "bedrock"),
            param,
        },
        other => other,
    }
}

/// An Anthropic Messages body → the Converse body with the same meaning.
fn messages_to_converse(messages: &Value) -> Result<Value> {
    let mut out = Map::new();
    let mut documents = 0usize;
    let turns = messages
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut converse_turns = Vec::with_capacity(turns.len());
    for (i, turn) in turns.iter().enumerate() {
        let role = turn.get("role").cloned().unwrap_or(Value::Null);
        let content = blocks(turn.get("content"), &mut documents, i)?;
        converse_turns.push(json!({"role": role, "content": content}));
    }
    out.insert("messages".into(), Value::Array(converse_turns));

    match messages.get("system") {
        Some(Value::String(text)) => {
            out.insert("system".into(), json!([{"text": text}]));
        }
        Some(Value::Array(system)) => {
            let mut blocks = Vec::with_capacity(system.len());
            for block in system {
                if let Some(text) = block.get("text").and_then(Value::as_str) {
                    blocks.push(json!({"text": text}));
                }
                push_cache_point(block, &mut blocks);
            }
            out.insert("system".into(), Value::Array(blocks));
        }
        _ => {}
    }

    let mut inference = Map::new();
    for (from, to) in [
        ("max_tokens", "maxTokens"),
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("stop_sequences", "stopSequences"),
    ] {
        if let Some(value) = messages.get(from) {
            inference.insert(to.into(), value.clone());
        }
    }
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }

    // Model-specific fields Converse passes to the model as they are (Anthropic's names).
    let mut additional = Map::new();
    for name in ["top_k", "thinking"] {
        if let Some(value) = messages.get(name) {
            additional.insert(name.into(), value.clone());
        }
    }
    if !additional.is_empty() {
        out.insert(
            "additionalModelRequestFields".into(),
            Value::Object(additional),
        );
    }

    if let Some(tools) = messages.get("tools").and_then(Value::as_array) {
        let mut specs = Vec::with_capacity(tools.len());
        for tool in tools {
            specs.push(json!({"toolSpec": tool_spec(tool)}));
            push_cache_point(tool, &mut specs);
        }
        let mut config = Map::new();
        config.insert("tools".into(), Value::Array(specs));
        // Anthropic's `auto` is left out by the translation; `none` has no Converse form, and
        // leaving the choice to the model is the nearest.
        match messages
            .pointer("/tool_choice/type")
            .and_then(Value::as_str)
        {
            Some("any") => {
                config.insert("toolChoice".into(), json!({"any": {}}));
            }
            Some("tool") => {
                let name = messages
                    .pointer("/tool_choice/name")
                    .cloned()
                    .unwrap_or(Value::Null);
                config.insert("toolChoice".into(), json!({"tool": {"name": name}}));
            }
            _ => {}
        }
        out.insert("toolConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(out))
}

fn tool_spec(tool: &Value) -> Value {
    let mut spec = Map::new();
    spec.insert(
        "name".into(),
        tool.get("name").cloned().unwrap_or(Value::Null),
    );
    if let Some(description) = tool.get("description").filter(|d| !d.is_null()) {
        spec.insert("description".into(), description.clone());
    }
    let schema = tool
        .get("input_schema")
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    spec.insert("inputSchema".into(), json!({ "json": schema }));
    Value::Object(spec)
}

/// Anthropic's `cache_control` on a block is a Converse `cachePoint` right after it.
fn push_cache_point(block: &Value, out: &mut Vec<Value>) {
    if block.get("cache_control").is_some() {
        out.push(json!({"cachePoint": {"type": "default"}}));
    }
}

/// The content of one turn, block by block.
fn blocks(content: Option<&Value>, documents: &mut usize, turn: usize) -> Result<Vec<Value>> {
    let list = match content {
        Some(Value::String(text)) => return Ok(vec![json!({ "text": text })]),
        Some(Value::Array(list)) => list,
        _ => return Ok(Vec::new()),
    };
    let mut out = Vec::with_capacity(list.len());
    for block in list {
        let converted = match block.get("type").and_then(Value::as_str) {
            Some("text") => json!({"text": block.get("text").cloned().unwrap_or_default()}),
            Some("image") => json!({"image": media(block, turn, image_format)?}),
            Some("document") => {
                *documents += 1;
                let mut document = media(block, turn, document_format)?;
                // Converse needs a name, unique in the request.
                document.insert("name".into(), json!(format!("Document {documents}")));
                json!({ "document": document })
            }
            Some("tool_use") => json!({"toolUse": {
                "toolUseId": block.get("id").cloned().unwrap_or(Value::Null),
                "name": block.get("name").cloned().unwrap_or(Value::Null),
                "input": block.get("input").cloned().unwrap_or_else(|| json!({})),
            }}),
            Some("tool_result") => json!({"toolResult": {
                "toolUseId": block.get("tool_use_id").cloned().unwrap_or(Value::Null),
                "content": tool_result_content(block.get("content")),
            }}),
            Some("thinking") => json!({"reasoningContent": {"reasoningText": {
                "text": block.get("thinking").cloned().unwrap_or_default(),
                "signature": block.get("signature").cloned().unwrap_or_default(),
            }}}),
            Some("redacted_thinking") => json!({"reasoningContent": {
                "redactedContent": block.get("data").cloned().unwrap_or_default(),
            }}),
            other => {
                return Err(Error::bad_param(
                    format!("messages[{turn}].content"),
                    format!("content of type {other:?} is not supported by bedrock"),
                ));
            }
        };
        out.push(converted);
        push_cache_point(block, &mut out);
    }
    Ok(out)
}

/// A tool's answer: its text, or its blocks' texts, as Converse `toolResult.content`.
fn tool_result_content(content: Option<&Value>) -> Value {
    match content {
        Some(Value::String(text)) => json!([{ "text": text }]),
        Some(Value::Array(blocks)) => Value::Array(
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .map(|text| json!({ "text": text }))
                .collect(),
        ),
        _ => json!([]),
    }
}

/// `{format, source: {bytes}}` of an inline base64 image or document. Converse takes bytes (or
/// S3 locations), not URLs, so an http(s) image is refused rather than fetched by the gateway.
fn media(
    block: &Value,
    turn: usize,
    format: fn(&str) -> Option<&'static str>,
) -> Result<Map<String, Value>> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let param = || format!("messages[{turn}].content");
    if source.get("type").and_then(Value::as_str) != Some("base64") {
        return Err(Error::bad_param(
            param(),
            "bedrock needs images and files inline as base64 data URLs (data:<media type>;base64,…), not http(s) URLs",
        ));
    }
    let media_type = source
        .get("media_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let format = format(media_type).ok_or_else(|| {
        Error::bad_param(
            param(),
            format!("media type {media_type:?} is not supported by bedrock"),
        )
    })?;
    let mut out = Map::new();
    out.insert("format".into(), json!(format));
    out.insert(
        "source".into(),
        json!({"bytes": source.get("data").cloned().unwrap_or_default()}),
    );
    Ok(out)
}

fn image_format(media_type: &str) -> Option<&'static str> {
    Some(match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return None,
    })
}

fn document_format(media_type: &str) -> Option<&'static str> {
    Some(match media_type.to_ascii_lowercase().as_str() {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" => "md",
        _ => return None,
    })
}
