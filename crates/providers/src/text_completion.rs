//! `text-completion-openai/`: chat requests served by OpenAI's legacy `/completions`. The
//! messages become one prompt (a single message's text as it is, several joined by blank
//! lines), and the `text_completion` answer (or stream) comes back as a chat completion (or
//! chat chunks). Legacy completions requests pass through untouched.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

use crate::TranslateOptions;
use crate::chunks::ChunkWriter;
use crate::params::{content_text, unsupported};
use crate::sse::{SseReader, Translate};

/// Params of a chat request that `/completions` has too, passed as they are.
const SHARED: &[&str] = &[
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "seed",
    "suffix",
    "echo",
    "best_of",
];

/// The `/completions` body for a chat request to `upstream_model`.
pub fn chat_to_completion(
    body: &Map<String, Value>,
    upstream_model: &str,
    opts: &TranslateOptions,
) -> Result<Value> {
    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    out.insert("prompt".into(), Value::String(prompt(body)?));
    for (name, value) in body {
        if value.is_null() {
            continue;
        }
        match name.as_str() {
            "model" | "messages" => {}
            "max_completion_tokens" => {
                out.insert("max_tokens".into(), value.clone());
            }
            // Chat's logprobs is a flag with top_logprobs; completions takes the count.
            "logprobs" if value == &Value::Bool(true) => {
                let top = body
                    .get("top_logprobs")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                out.insert("logprobs".into(), json!(top));
            }
            "top_logprobs" => {}
            _ if SHARED.contains(&name.as_str()) => {
                out.insert(name.clone(), value.clone());
            }
            _ => unsupported(name, value, "text-completion-openai", opts.drop_params)?,
        }
    }
    Ok(Value::Object(out))
}

fn prompt(body: &Map<String, Value>) -> Result<String> {
    let messages = match body.get("messages") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => {
            return Err(Error::bad_param(
                "messages",
                "`messages` must be a non-empty list",
            ));
        }
    };
    let mut texts = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let content = message.get("content").unwrap_or(&Value::Null);
        let text = content_text(content, &format!("messages[{i}].content"), |_, param| {
            Err(Error::bad_param(
                param,
                "text-completion-openai takes text content only",
            ))
        })?;
        texts.extend(text.filter(|t| !t.is_empty()));
    }
    Ok(texts.join("\n\n"))
}

/// A `text_completion` answer → a chat completion reported as `public_model`.
pub fn completion_to_chat(answer: &Value, public_model: &str) -> Value {
    let choices: Vec<Value> = answer
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, choice)| {
            json!({
                "index": choice.get("index").cloned().unwrap_or(json!(index)),
                "message": {
                    "role": "assistant",
                    "content": choice.get("text").and_then(Value::as_str).unwrap_or_default(),
                },
                "logprobs": choice.get("logprobs").cloned().unwrap_or(Value::Null),
                "finish_reason": choice.get("finish_reason").cloned().unwrap_or(json!("stop")),
            })
        })
        .collect();
    json!({
        "id": answer.get("id").cloned().unwrap_or(json!("chatcmpl-text")),
        "object": "chat.completion",
        "created": answer.get("created").cloned().unwrap_or(json!(crate::now_secs())),
        "model": public_model,
        "choices": choices,
        "usage": answer.get("usage").cloned().unwrap_or(Value::Null),
    })
}

/// Incremental translator of a `text_completion` SSE stream into chat chunks.
#[derive(Debug)]
pub struct CompletionChatStream {
    sse: SseReader,
    chunks: ChunkWriter,
    usage: Option<Value>,
}

impl CompletionChatStream {
    pub fn new(public_model: &str, include_usage: bool) -> Self {
        Self {
            sse: SseReader::default(),
            chunks: ChunkWriter::new("chatcmpl-text", public_model, include_usage),
            usage: None,
        }
    }

    fn fail(&mut self, message: &str, out: &mut Vec<Bytes>) {
        self.chunks
            .fail(message, "api_error", StatusCode::BAD_GATEWAY, out);
        self.sse.close();
    }
}

impl Translate for CompletionChatStream {
    fn reader(&mut self) -> &mut SseReader {
        &mut self.sse
    }

    fn reader_ref(&self) -> &SseReader {
        &self.sse
    }

    fn handle_data(&mut self, data: &str, out: &mut Vec<Bytes>) {
        if data.trim() == "[DONE]" {
            let usage = self.usage.take().unwrap_or(Value::Null);
            self.chunks.close(usage, out);
            self.sse.close();
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return self.fail("upstream sent a malformed stream event", out);
        };
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream stream error");
            return self.fail(message, out);
        }
        if let Some(id) = chunk.get("id").and_then(Value::as_str) {
            self.chunks.set_id(id.to_owned());
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return;
        };
        self.chunks.role(out);
        if let Some(text) = choice.get("text").and_then(Value::as_str) {
            self.chunks.text(text, out);
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.chunks.finish(reason, out);
        }
    }

    fn on_line_too_long(&mut self, out: &mut Vec<Bytes>) {
        self.fail("upstream sent an oversized stream line", out);
    }

    fn on_end(&mut self, out: &mut Vec<Bytes>) {
        if self.chunks.finish_sent() {
            let usage = self.usage.take().unwrap_or(Value::Null);
            self.chunks.close(usage, out);
            self.sse.close();
        } else {
            self.fail("upstream stream ended before the answer was complete", out);
        }
    }
}
