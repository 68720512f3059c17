//! Checks of OpenAI request params shared by the translations into native APIs.

use serde_json::Value;
use vaultgate_core::{Error, Result};

/// OpenAI params whose value asks for nothing beyond the default, so dropping them loses nothing.
pub(crate) fn is_default_value(name: &str, value: &Value) -> bool {
    match name {
        "n" => value.as_u64() == Some(1),
        "presence_penalty" | "frequency_penalty" => value.as_f64() == Some(0.0),
        "logprobs" => value == &Value::Bool(false),
        "response_format" => value.get("type").and_then(Value::as_str) == Some("text"),
        _ => false,
    }
}

/// A param `provider` cannot honour: accepted when its value is the default or
/// `litellm_settings.drop_params` is on (then it is dropped), else a 400 naming it, as LiteLLM
/// answers.
pub(crate) fn unsupported(
    name: &str,
    value: &Value,
    provider: &str,
    drop_params: bool,
) -> Result<()> {
    if is_default_value(name, value) || drop_params {
        return Ok(());
    }
    Err(Error::bad_param(
        name,
        format!(
            "`{name}` is not supported by {provider}; set litellm_settings.drop_params: true to drop it"
        ),
    ))
}

pub(crate) fn positive_int(name: &str, value: &Value) -> Result<u64> {
    value
        .as_u64()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::bad_param(name, format!("`{name}` must be a positive integer")))
}

pub(crate) fn number(name: &str, value: &Value) -> Result<Value> {
    if value.is_number() {
        Ok(value.clone())
    } else {
        Err(Error::bad_param(name, format!("`{name}` must be a number")))
    }
}

/// `stop` as a list of strings (OpenAI accepts one string too).
pub(crate) fn stop_sequences(value: &Value) -> Result<Vec<Value>> {
    let invalid = || Error::bad_param("stop", "`stop` must be a string or a list of strings");
    match value {
        Value::String(s) => Ok(vec![Value::String(s.clone())]),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(|s| Value::String(s.to_owned()))
                    .ok_or_else(invalid)
            })
            .collect(),
        _ => Err(invalid()),
    }
}

/// The text of a message `content`: a string, or the text parts of a list joined; `None` for
/// null. Other part types are the caller's business (`on_part` sees every non-text part).
pub(crate) fn content_text(
    content: &Value,
    param: &str,
    mut on_part: impl FnMut(&Value, &str) -> Result<()>,
) -> Result<Option<String>> {
    match content {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        Value::Array(parts) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                let part_param = format!("{param}[{j}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let piece = part.get("text").and_then(Value::as_str).ok_or_else(|| {
                            Error::bad_param(
                                format!("{part_param}.text"),
                                "a text part needs a string `text`",
                            )
                        })?;
                        text.push_str(piece);
                    }
                    _ => on_part(part, &part_param)?,
                }
            }
            Ok(Some(text))
        }
        _ => Err(Error::bad_param(
            param,
            "`content` must be a string or a list of content parts",
        )),
    }
}

/// The `arguments` of an assistant's tool call (`param` names the call, e.g.
/// `messages[1].tool_calls[0]`) as the JSON object native APIs take: OpenAI sends them as a JSON
/// object encoded in a string, and an empty string means no arguments.
pub(crate) fn tool_call_arguments(function: Option<&Value>, param: &str) -> Result<Value> {
    let arguments = function
        .and_then(|f| f.get("arguments"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if arguments.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => Ok(object),
        _ => Err(Error::bad_param(
            format!("{param}.function.arguments"),
            "tool call arguments must be a JSON object encoded as a string",
        )),
    }
}
