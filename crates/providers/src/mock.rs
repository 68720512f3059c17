//! `mock_response`: LiteLLM's way to answer without calling an upstream (offline demos, tests).

use bytes::Bytes;
use serde_json::{Value, json};

use crate::{Endpoint, Usage, sse_frame};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Rough token count for mock usage: words, at least one.
fn tokens(text: &str) -> u64 {
    text.split_whitespace().count().max(1) as u64
}

/// Prompt size of a request, counted the same rough way.
fn prompt_tokens(request: &serde_json::Map<String, Value>) -> u64 {
    let mut count = 0;
    let mut visit = |value: &Value| {
        if let Value::String(text) = value {
            count += tokens(text);
        }
    };
    for key in ["messages", "prompt", "input"] {
        match request.get(key) {
            Some(Value::Array(items)) => items.iter().for_each(|item| match item {
                Value::Object(message) => message.get("content").into_iter().for_each(&mut visit),
                other => visit(other),
            }),
            Some(other) => visit(other),
            None => {}
        }
    }
    count.max(1)
}

/// A complete non-streaming answer for `endpoint`, and its usage.
pub fn response(
    endpoint: Endpoint,
    model: &str,
    text: &str,
    request: &serde_json::Map<String, Value>,
) -> (Value, Usage) {
    let usage = Usage {
        prompt_tokens: prompt_tokens(request),
        completion_tokens: tokens(text),
    };
    let usage_json = json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total(),
    });
    let body = match endpoint {
        Endpoint::ChatCompletions => json!({
            "id": id("chatcmpl-mock"),
            "object": "chat.completion",
            "created": now(),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }],
            "usage": usage_json,
        }),
        Endpoint::Completions => json!({
            "id": id("cmpl-mock"),
            "object": "text_completion",
            "created": now(),
            "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": null}],
            "usage": usage_json,
        }),
        Endpoint::Embeddings => {
            let usage = Usage {
                completion_tokens: 0,
                ..usage
            };
            let inputs = match request.get("input") {
                Some(Value::Array(items)) => items.len().max(1),
                _ => 1,
            };
            let data: Vec<Value> = (0..inputs)
                .map(|index| {
                    json!({"object": "embedding", "index": index, "embedding": [0.0, 0.1, 0.2, 0.3]})
                })
                .collect();
            return (
                json!({
                    "object": "list",
                    "data": data,
                    "model": model,
                    "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
                }),
                usage,
            );
        }
    };
    (body, usage)
}

/// The same answer as SSE frames, word by word, ending with `[DONE]`. When `include_usage`,
/// a last chunk with empty `choices` carries the usage, as OpenAI does.
pub fn stream(
    endpoint: Endpoint,
    model: &str,
    text: &str,
    request: &serde_json::Map<String, Value>,
    include_usage: bool,
) -> (Vec<Bytes>, Usage) {
    let (_, usage) = response(endpoint, model, text, request);
    let chat = endpoint == Endpoint::ChatCompletions;
    let (id, object) = if chat {
        (id("chatcmpl-mock"), "chat.completion.chunk")
    } else {
        (id("cmpl-mock"), "text_completion")
    };
    let created = now();
    let chunk = |choice: Value| {
        sse_frame(&json!({"id": id, "object": object, "created": created, "model": model, "choices": [choice]}).to_string())
    };
    let mut frames = Vec::new();
    if chat {
        frames.push(chunk(json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null})));
    }
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    for word in words {
        frames.push(if chat {
            chunk(json!({"index": 0, "delta": {"content": word}, "finish_reason": null}))
        } else {
            chunk(json!({"index": 0, "text": word, "finish_reason": null}))
        });
    }
    frames.push(if chat {
        chunk(json!({"index": 0, "delta": {}, "finish_reason": "stop"}))
    } else {
        chunk(json!({"index": 0, "text": "", "finish_reason": "stop"}))
    });
    if include_usage {
        frames.push(sse_frame(
            &json!({"id": id, "object": object, "created": created, "model": model, "choices": [],
                "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                          "total_tokens": usage.total()}})
            .to_string(),
        ));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    (frames, usage)
}
