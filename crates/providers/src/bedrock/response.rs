//! Bedrock Converse response → OpenAI chat completion.

use serde_json::{Value, json};

use crate::{now_secs, openai_assistant_message};

/// Translates a successful Converse response into an OpenAI `chat.completion` reported under
/// `public_model`. Never fails: missing fields read as empty.
pub fn converse_response_to_chat(resp: &Value, public_model: &str) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let content = resp
        .pointer("/output/message/content")
        .and_then(Value::as_array);
    for block in content.into_iter().flatten() {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(tool) = block.get("toolUse") {
            let input = tool.get("input").cloned().unwrap_or_else(|| json!({}));
            tool_calls.push(json!({
                "id": tool.get("toolUseId").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": tool.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": input.to_string(),
                },
            }));
        } else if let Some(t) = block
            .pointer("/reasoningContent/reasoningText/text")
            .and_then(Value::as_str)
        {
            reasoning.push_str(t);
        }
    }
    let mut message = openai_assistant_message(text, tool_calls);
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), Value::String(reasoning));
    }
    json!({
        "id": format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        "object": "chat.completion",
        "created": now_secs(),
        "model": public_model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(resp.get("stopReason").and_then(Value::as_str)),
        }],
        "usage": usage(resp.get("usage")),
    })
}

/// Converse `stopReason` → OpenAI `finish_reason`.
pub(super) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened" | "content_filtered") => "content_filter",
        _ => "stop",
    }
}

/// Converse `usage` → OpenAI `usage`. Bedrock counts cache reads and writes apart from
/// `inputTokens`; the prompt is all of them (what spend is charged on), as LiteLLM reports it.
pub(super) fn usage(usage: Option<&Value>) -> Value {
    let count = |name: &str| {
        usage
            .and_then(|u| u.get(name))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cache_read = count("cacheReadInputTokens");
    let cache_write = count("cacheWriteInputTokens");
    let prompt = count("inputTokens") + cache_read + cache_write;
    let completion = count("outputTokens");
    let mut out = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read},
    });
    if cache_read > 0 || cache_write > 0 {
        out["cache_read_input_tokens"] = json!(cache_read);
        out["cache_creation_input_tokens"] = json!(cache_write);
    }
    out
}
