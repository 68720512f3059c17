//! Anthropic SSE stream → OpenAI `chat.completion.chunk` SSE stream.

use std::collections::HashMap;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::errors::status_for_type;
use super::{TokenCounts, finish_reason, str_field};
use crate::chunks::ChunkWriter;
use crate::sse::{self, SseReader, Translate};

/// Incremental translator of one Anthropic Messages stream. Feed it the upstream body bytes as
/// they arrive ([`push`](Self::push)) and forward what it returns: whole OpenAI SSE frames only,
/// so a frame is never split however the upstream chunks were cut (mid-line, mid-UTF-8).
#[derive(Debug)]
pub struct StreamTranslator {
    sse: SseReader,
    chunks: ChunkWriter,
    /// Anthropic content block index → OpenAI tool call index (tool calls only, counted from 0).
    tool_calls: HashMap<u64, usize>,
    counts: TokenCounts,
    saw_usage: bool,
}

impl StreamTranslator {
    /// `public_model` is reported in every chunk; `include_usage` mirrors the client's
    /// `stream_options.include_usage` and adds OpenAI's final `choices: []` usage chunk.
    pub fn new(public_model: &str, include_usage: bool) -> Self {
        Self {
            sse: SseReader::default(),
            chunks: ChunkWriter::new("chatcmpl-anthropic", public_model, include_usage),
            tool_calls: HashMap::new(),
            counts: TokenCounts::default(),
            saw_usage: false,
        }
    }

    /// Consumes upstream bytes; returns the OpenAI frames completed by them (often none).
    /// After `[DONE]` has been emitted further input is ignored.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        sse::push(self, chunk)
    }

    /// Ends the stream when the upstream body ended: handles a last event that lacked its blank
    /// line, then closes with `[DONE]`. A stream cut before Anthropic's `message_delta` gets an
    /// error frame first, so the client can tell a truncated answer from a complete one.
    pub fn finish(&mut self) -> Vec<Bytes> {
        sse::finish(self)
    }

    /// `(prompt_tokens, completion_tokens)` seen so far (prompt includes cache reads/writes),
    /// for spend tracking; `None` until the upstream reported any usage.
    pub fn usage(&self) -> Option<(u64, u64)> {
        self.saw_usage
            .then(|| (self.counts.prompt(), self.counts.output))
    }

    /// True once `[DONE]` was emitted; the caller may stop reading the upstream.
    pub fn is_done(&self) -> bool {
        self.sse.is_closed()
    }

    fn handle_event(&mut self, event: &Value, out: &mut Vec<Bytes>) {
        let str_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        match str_field(event, "type") {
            "message_start" => {
                let message = event.get("message").unwrap_or(&Value::Null);
                if let Some(id) = str_at(message, "id") {
                    self.chunks.set_id(id);
                }
                if let Some(usage) = message.get("usage") {
                    self.counts.update(usage);
                    self.saw_usage = true;
                }
                self.chunks.role(out);
            }
            "content_block_start" => {
                let block = event.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let index = self.tool_calls.len();
                        let block_index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
                        self.tool_calls.insert(block_index, index);
                        // The input normally streams as input_json_delta after an empty `{}`.
                        let arguments = match block.get("input") {
                            Some(Value::Object(input)) if !input.is_empty() => {
                                Value::Object(input.clone()).to_string()
                            }
                            _ => String::new(),
                        };
                        let call = json!({
                            "index": index,
                            "id": block.get("id").cloned().unwrap_or(Value::Null),
                            "type": "function",
                            "function": {"name": block.get("name").cloned().unwrap_or(Value::Null), "arguments": arguments},
                        });
                        self.chunks.delta(json!({"tool_calls": [call]}), out);
                    }
                    Some("text") => self.chunks.text(str_field(block, "text"), out),
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = event.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => self.chunks.text(str_field(delta, "text"), out),
                    Some("input_json_delta") => {
                        let block_index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let json = str_field(delta, "partial_json");
                        if let (false, Some(&index)) =
                            (json.is_empty(), self.tool_calls.get(&block_index))
                        {
                            let call = json!({"index": index, "function": {"arguments": json}});
                            self.chunks.delta(json!({"tool_calls": [call]}), out);
                        }
                    }
                    Some("thinking_delta") => {
                        self.chunks.reasoning(str_field(delta, "thinking"), out);
                    }
                    // signature_delta, citations…: nothing an OpenAI client can use.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(usage) = event.get("usage") {
                    self.counts.update(usage);
                    self.saw_usage = true;
                }
                let stop = event
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                if let Some(stop) = stop {
                    self.chunks.finish(finish_reason(Some(stop)), out);
                }
            }
            "message_stop" => self.close(out),
            "error" => {
                let error = event.get("error").unwrap_or(&Value::Null);
                let kind = str_at(error, "type").unwrap_or_else(|| "api_error".to_owned());
                let message =
                    str_at(error, "message").unwrap_or_else(|| "anthropic stream error".to_owned());
                self.fail(&message, &kind, status_for_type(&kind), out);
            }
            // ping, content_block_stop, and event types added later (Anthropic's versioning policy).
            _ => {}
        }
    }

    /// Normal end: finish reason (if the upstream gave none), usage chunk, `[DONE]`.
    fn close(&mut self, out: &mut Vec<Bytes>) {
        self.chunks.close(self.counts.to_openai(), out);
        self.sse.close();
    }

    /// Abnormal end: an OpenAI-shaped error frame, `[DONE]`.
    fn fail(&mut self, message: &str, kind: &str, status: StatusCode, out: &mut Vec<Bytes>) {
        self.chunks.fail(message, kind, status, out);
        self.sse.close();
    }
}

impl Translate for StreamTranslator {
    fn reader(&mut self) -> &mut SseReader {
        &mut self.sse
    }

    fn reader_ref(&self) -> &SseReader {
        &self.sse
    }

    fn handle_data(&mut self, data: &str, out: &mut Vec<Bytes>) {
        match serde_json::from_str::<Value>(data) {
            Ok(event) => self.handle_event(&event, out),
            Err(_) => self.fail(
                "anthropic sent a malformed stream event",
                "api_error",
                StatusCode::BAD_GATEWAY,
                out,
            ),
        }
    }

    fn on_line_too_long(&mut self, out: &mut Vec<Bytes>) {
        self.fail(
            "anthropic sent an oversized stream line",
            "api_error",
            StatusCode::BAD_GATEWAY,
            out,
        );
    }

    fn on_end(&mut self, out: &mut Vec<Bytes>) {
        if self.chunks.finish_sent() {
            self.close(out);
        } else {
            self.fail(
                "anthropic stream ended before the message was complete",
                "api_error",
                StatusCode::BAD_GATEWAY,
                out,
            );
        }
    }
}
