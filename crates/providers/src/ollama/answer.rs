//! Ollama answers → OpenAI answers: whole ones, JSON-lines streams, and errors.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use vaultgate_core::Error;

use super::Route;
use crate::chunks::{ChunkWriter, Object, openai_usage};
use crate::errors::{openai_type_for_status, raw_message, upstream_error};
use crate::sse::{SseReader, Translate};

/// Ollama's error answer `{"error": "…"}` in OpenAI's shape, with Ollama's status.
pub fn map_error(status: StatusCode, body: &[u8]) -> Error {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| raw_message("ollama", status, body));
    upstream_error(status, &message, openai_type_for_status(status))
}

fn count(answer: &Value, name: &str) -> u64 {
    answer.get(name).and_then(Value::as_u64).unwrap_or(0)
}

fn usage(answer: &Value) -> Value {
    openai_usage(
        count(answer, "prompt_eval_count"),
        count(answer, "eval_count"),
    )
}

/// `done_reason` → OpenAI's `finish_reason`.
fn finish_reason(answer: &Value, tool_calls: bool) -> &'static str {
    if tool_calls {
        return "tool_calls";
    }
    match answer.get("done_reason").and_then(Value::as_str) {
        Some("length") => "length",
        _ => "stop",
    }
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Ollama tool calls (arguments as an object) → OpenAI's (arguments as a JSON string, an id).
fn openai_tool_calls(message: &Value, with_index: bool) -> Vec<Value> {
    message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, call)| {
            let function = call.get("function").unwrap_or(&Value::Null);
            let arguments = match function.get("arguments") {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => "{}".to_owned(),
            };
            let mut call = json!({
                "id": new_id("call"),
                "type": "function",
                "function": {
                    "name": function.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": arguments,
                },
            });
            if with_index {
                call["index"] = json!(index);
            }
            call
        })
        .collect()
}

fn chat_completion(
    public_model: &str,
    message: Value,
    finish_reason: &str,
    answer: &Value,
) -> Value {
    json!({
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": crate::now_secs(),
        "model": public_model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
        "usage": usage(answer),
    })
}

/// An `/api/chat` answer → an OpenAI chat completion reported as `public_model`.
pub fn chat_answer(answer: &Value, public_model: &str) -> Value {
    let native = answer.get("message").unwrap_or(&Value::Null);
    let calls = openai_tool_calls(native, false);
    let text = native
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let finish = finish_reason(answer, !calls.is_empty());
    let mut message = crate::openai_assistant_message(text, calls);
    if let Some(thinking) = native
        .get("thinking")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        message.insert("reasoning_content".into(), json!(thinking));
    }
    chat_completion(public_model, Value::Object(message), finish, answer)
}

/// An `/api/generate` answer to a chat request → an OpenAI chat completion.
pub fn generate_chat_answer(answer: &Value, public_model: &str) -> Value {
    let text = answer
        .get("response")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = json!({"role": "assistant", "content": text});
    chat_completion(public_model, message, finish_reason(answer, false), answer)
}

/// An `/api/generate` answer to a legacy completions request → an OpenAI `text_completion`.
pub fn completion_answer(answer: &Value, public_model: &str) -> Value {
    json!({
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": crate::now_secs(),
        "model": public_model,
        "choices": [{
            "index": 0,
            "text": answer.get("response").and_then(Value::as_str).unwrap_or_default(),
            "logprobs": null,
            "finish_reason": finish_reason(answer, false),
        }],
        "usage": usage(answer),
    })
}

/// An `/api/embed` answer → an OpenAI embeddings list.
pub fn embed_answer(answer: &Value, public_model: &str) -> Value {
    let data: Vec<Value> = answer
        .get("embeddings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, embedding)| {
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let prompt = count(answer, "prompt_eval_count");
    json!({
        "object": "list",
        "data": data,
        "model": public_model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    })
}

/// Incremental translator of one Ollama JSON-lines stream (`/api/chat` or `/api/generate`) into
/// OpenAI SSE chunks (chat chunks, or `text_completion` chunks for a completions request).
#[derive(Debug)]
pub struct OllamaStream {
    lines: SseReader,
    chunks: ChunkWriter,
    route: Route,
    tool_calls: usize,
}

impl OllamaStream {
    /// `include_usage` adds OpenAI's final usage chunk (Ollama reports the counts at the end).
    pub fn new(route: Route, public_model: &str, include_usage: bool) -> Self {
        let object = if route == Route::Generate {
            Object::Text
        } else {
            Object::Chat
        };
        Self {
            lines: SseReader::json_lines(),
            chunks: ChunkWriter::of(object, &new_id("chatcmpl"), public_model, include_usage),
            route,
            tool_calls: 0,
        }
    }

    fn fail(&mut self, message: &str, status: StatusCode, out: &mut Vec<Bytes>) {
        self.chunks
            .fail(message, openai_type_for_status(status), status, out);
        self.lines.close();
    }
}

impl Translate for OllamaStream {
    fn reader(&mut self) -> &mut SseReader {
        &mut self.lines
    }

    fn reader_ref(&self) -> &SseReader {
        &self.lines
    }

    fn handle_data(&mut self, data: &str, out: &mut Vec<Bytes>) {
        let Ok(line) = serde_json::from_str::<Value>(data) else {
            return self.fail(
                "ollama sent a malformed stream line",
                StatusCode::BAD_GATEWAY,
                out,
            );
        };
        if let Some(error) = line.get("error") {
            let message = error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_owned);
            return self.fail(&message, StatusCode::BAD_GATEWAY, out);
        }
        if self.route == Route::Chat {
            let message = line.get("message").unwrap_or(&Value::Null);
            if let Some(thinking) = message.get("thinking").and_then(Value::as_str) {
                self.chunks.reasoning(thinking, out);
            }
            if let Some(text) = message.get("content").and_then(Value::as_str) {
                self.chunks.text(text, out);
            }
            for mut call in openai_tool_calls(message, true) {
                call["index"] = json!(self.tool_calls);
                self.tool_calls += 1;
                self.chunks.delta(json!({"tool_calls": [call]}), out);
            }
        } else {
            if let Some(thinking) = line.get("thinking").and_then(Value::as_str) {
                self.chunks.reasoning(thinking, out);
            }
            if let Some(text) = line.get("response").and_then(Value::as_str) {
                self.chunks.text(text, out);
            }
        }
        if line.get("done").and_then(Value::as_bool) == Some(true) {
            self.chunks
                .finish(finish_reason(&line, self.tool_calls > 0), out);
            self.chunks.close(usage(&line), out);
            self.lines.close();
        }
    }

    fn on_line_too_long(&mut self, out: &mut Vec<Bytes>) {
        self.fail(
            "ollama sent an oversized stream line",
            StatusCode::BAD_GATEWAY,
            out,
        );
    }

    fn on_end(&mut self, out: &mut Vec<Bytes>) {
        self.fail(
            "ollama stream ended before the answer was complete",
            StatusCode::BAD_GATEWAY,
            out,
        );
    }
}
