//! Anthropic Messages response → OpenAI chat completion.

use serde_json::{Value, json};

use super::{
    TokenCounts, finish_reason, now_secs, openai_assistant_message, openai_tool_call, str_field,
};

/// Translates a successful (2xx) Anthropic Messages response into an OpenAI `chat.completion`
/// reported under `public_model`, the name the client asked for. Never fails: missing fields read
/// as empty so a slightly different upstream still yields a usable answer.
pub fn messages_response_to_chat(resp: &Value, public_model: &str) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in resp
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(str_field(block, "text")),
            Some("thinking") => reasoning.push_str(str_field(block, "thinking")),
            Some("tool_use") => tool_calls.push(openai_tool_call(block)),
            // redacted_thinking, server tool blocks…: nothing an OpenAI client can use.
            _ => {}
        }
    }

    let mut message = openai_assistant_message(text, tool_calls);
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), Value::String(reasoning));
    }

    let mut counts = TokenCounts::default();
    if let Some(usage) = resp.get("usage") {
        counts.update(usage);
    }
    json!({
        "id": resp.get("id").and_then(Value::as_str).unwrap_or("chatcmpl-anthropic"),
        "object": "chat.completion",
        "created": now_secs(),
        "model": public_model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(resp.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": counts.to_openai(),
    })
}
