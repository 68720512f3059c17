//! Gemini answers → OpenAI answers: `GenerateContentResponse`s (whole or as an SSE stream of
//! them), embeddings, and errors.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use vaultgate_core::Error;

use super::THOUGHT_MARKER;
use crate::chunks::ChunkWriter;
use crate::errors::{openai_type_for_status, raw_message, upstream_error};
use crate::openai_assistant_message;
use crate::sse::{SseReader, Translate};

/// Google's error answer `{"error":{"code","message","status"}}` in OpenAI's shape.
pub fn map_error(status: StatusCode, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    // Google sometimes answers a list holding one error.
    let error = parsed
        .as_ref()
        .map(|v| v.get(0).unwrap_or(v))
        .and_then(|v| v.get("error"));
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map_or_else(|| raw_message("gemini", status, body), str::to_owned);
    upstream_error(status, &message, openai_type_for_status(status))
}

/// Gemini `finishReason` → OpenAI `finish_reason`.
fn finish_reason(reason: Option<&str>, tool_calls: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => "content_filter",
        _ if tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// OpenAI `usage` from `usageMetadata`: thinking tokens count as completion tokens (they are
/// billed as output), and are reported apart as reasoning tokens.
fn usage(metadata: &Value) -> Value {
    let count = |name: &str| metadata.get(name).and_then(Value::as_u64).unwrap_or(0);
    let prompt = count("promptTokenCount") + count("toolUsePromptTokenCount");
    let thoughts = count("thoughtsTokenCount");
    let completion = count("candidatesTokenCount") + thoughts;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": count("cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    })
}

/// A `functionCall` part as an OpenAI tool call (its thought signature kept in the id).
fn tool_call(part: &Value, index: usize) -> Option<Value> {
    let call = part.get("functionCall")?;
    let mut id = format!("call_{}", uuid::Uuid::new_v4().simple());
    if let Some(signature) = part.get("thoughtSignature").and_then(Value::as_str) {
        id.push_str(THOUGHT_MARKER);
        id.push_str(signature);
    }
    Some(json!({
        "index": index,
        "id": id,
        "type": "function",
        "function": {
            "name": call.get("name").cloned().unwrap_or(Value::Null),
            "arguments": call.get("args").map_or_else(|| "{}".to_owned(), Value::to_string),
        },
    }))
}

fn parts(candidate: &Value) -> impl Iterator<Item = &Value> {
    candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn is_thought(part: &Value) -> bool {
    part.get("thought").and_then(Value::as_bool) == Some(true)
}

/// A `generateContent` answer → an OpenAI chat completion, one choice per candidate.
pub fn generate_answer(answer: &Value, public_model: &str) -> Value {
    let mut choices: Vec<Value> = answer
        .get("candidates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, candidate)| {
            let mut text = String::new();
            let mut reasoning = String::new();
            let mut calls = Vec::new();
            for part in parts(candidate) {
                if let Some(call) = tool_call(part, calls.len()) {
                    calls.push(call);
                } else if let Some(piece) = part.get("text").and_then(Value::as_str) {
                    if is_thought(part) {
                        reasoning.push_str(piece);
                    } else {
                        text.push_str(piece);
                    }
                }
            }
            for call in &mut calls {
                if let Some(call) = call.as_object_mut() {
                    call.remove("index");
                }
            }
            let reason = candidate.get("finishReason").and_then(Value::as_str);
            let finish = finish_reason(reason, !calls.is_empty());
            let mut message = openai_assistant_message(text, calls);
            if !reasoning.is_empty() {
                message.insert("reasoning_content".into(), json!(reasoning));
            }
            json!({
                "index": candidate.get("index").cloned().unwrap_or(json!(i)),
                "message": message,
                "logprobs": null,
                "finish_reason": finish,
            })
        })
        .collect();
    if choices.is_empty() {
        // The prompt itself was blocked (`promptFeedback.blockReason`): no candidate at all.
        choices.push(json!({
            "index": 0,
            "message": {"role": "assistant", "content": ""},
            "logprobs": null,
            "finish_reason": "content_filter",
        }));
    }
    json!({
        "id": answer.get("responseId").and_then(Value::as_str).map_or_else(
            || format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            |id| format!("chatcmpl-{id}"),
        ),
        "object": "chat.completion",
        "created": crate::now_secs(),
        "model": public_model,
        "choices": choices,
        "usage": usage(answer.get("usageMetadata").unwrap_or(&Value::Null)),
    })
}

/// A `batchEmbedContents` answer → an OpenAI embeddings list (Gemini reports no token counts).
pub fn embed_answer(answer: &Value, public_model: &str) -> Value {
    let data: Vec<Value> = answer
        .get("embeddings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, embedding)| {
            json!({"object": "embedding", "index": index,
                "embedding": embedding.get("values").cloned().unwrap_or(json!([]))})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": public_model,
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    })
}

/// Incremental translator of a `streamGenerateContent?alt=sse` stream into OpenAI chunks.
/// Gemini sends no closing event: the stream is complete when a chunk carried a
/// `finishReason` and the body ended.
#[derive(Debug)]
pub struct GeminiStream {
    sse: SseReader,
    chunks: ChunkWriter,
    tool_calls: usize,
    finish: Option<&'static str>,
    usage: Value,
}

impl GeminiStream {
    pub fn new(public_model: &str, include_usage: bool) -> Self {
        Self {
            sse: SseReader::default(),
            chunks: ChunkWriter::new(
                &format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
                public_model,
                include_usage,
            ),
            tool_calls: 0,
            finish: None,
            usage: Value::Null,
        }
    }

    fn fail(&mut self, message: &str, status: StatusCode, out: &mut Vec<Bytes>) {
        self.chunks
            .fail(message, openai_type_for_status(status), status, out);
        self.sse.close();
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some(reason) = self.finish {
            self.chunks.finish(reason, out);
        }
        let usage = std::mem::take(&mut self.usage);
        self.chunks.close(usage, out);
        self.sse.close();
    }
}

impl Translate for GeminiStream {
    fn reader(&mut self) -> &mut SseReader {
        &mut self.sse
    }

    fn reader_ref(&self) -> &SseReader {
        &self.sse
    }

    fn handle_data(&mut self, data: &str, out: &mut Vec<Bytes>) {
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return self.fail(
                "gemini sent a malformed stream event",
                StatusCode::BAD_GATEWAY,
                out,
            );
        };
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("gemini stream error");
            let status = error
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY);
            return self.fail(message, status, out);
        }
        if let Some(metadata) = chunk.get("usageMetadata") {
            self.usage = usage(metadata);
        }
        let Some(candidate) = chunk.pointer("/candidates/0") else {
            if chunk.pointer("/promptFeedback/blockReason").is_some() {
                self.finish = Some("content_filter");
            }
            return;
        };
        self.chunks.role(out);
        for part in parts(candidate) {
            if let Some(call) = tool_call(part, self.tool_calls) {
                self.tool_calls += 1;
                self.chunks.delta(json!({"tool_calls": [call]}), out);
            } else if let Some(text) = part.get("text").and_then(Value::as_str) {
                if is_thought(part) {
                    self.chunks.reasoning(text, out);
                } else {
                    self.chunks.text(text, out);
                }
            }
        }
        if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
            self.finish = Some(finish_reason(Some(reason), self.tool_calls > 0));
        }
    }

    fn on_line_too_long(&mut self, out: &mut Vec<Bytes>) {
        self.fail(
            "gemini sent an oversized stream line",
            StatusCode::BAD_GATEWAY,
            out,
        );
    }

    fn on_end(&mut self, out: &mut Vec<Bytes>) {
        if self.finish.is_some() {
            self.close(out);
        } else {
            self.fail(
                "gemini stream ended before the answer was complete",
                StatusCode::BAD_GATEWAY,
                out,
            );
        }
    }
}
