//! Anthropic SSE stream → OpenAI `chat.completion.chunk` SSE stream.

use std::collections::HashMap;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::errors::{openai_error_body, status_for_type};
use super::sse::{self, SseReader, Translate};
use super::{TokenCounts, finish_reason, now_secs, str_field};

/// Incremental translator of one Anthropic Messages stream. Feed it the upstream body bytes as
/// they arrive ([`push`](Self::push)) and forward what it returns: whole OpenAI SSE frames only,
/// so a frame is never split however the upstream chunks were cut (mid-line, mid-UTF-8).
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    include_usage: bool,
    created: u64,
    id: String,
    sse: SseReader,
    /// Anthropic content block index → OpenAI tool call index (tool calls only, counted from 0).
    tool_calls: HashMap<u64, usize>,
    role_sent: bool,
    finish_sent: bool,
    counts: TokenCounts,
    saw_usage: bool,
}

impl StreamTranslator {
    /// `public_model` is reported in every chunk; `include_usage` mirrors the client's
    /// `stream_options.include_usage` and adds OpenAI's final `choices: []` usage chunk.
    pub fn new(public_model: &str, include_usage: bool) -> Self {
        Self {
            model: public_model.to_owned(),
            include_usage,
            created: now_secs(),
            id: "chatcmpl-anthropic".to_owned(),
            sse: SseReader::default(),
            tool_calls: HashMap::new(),
            role_sent: false,
            finish_sent: false,
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
                    self.id = id;
                }
                if let Some(usage) = message.get("usage") {
                    self.counts.update(usage);
                    self.saw_usage = true;
                }
                self.ensure_role(out);
            }
            "content_block_start" => {
                let block = event.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        self.ensure_role(out);
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
                        self.emit(json!({"tool_calls": [call]}), out);
                    }
                    Some("text") => {
                        let text = str_field(block, "text");
                        if !text.is_empty() {
                            self.ensure_role(out);
                            self.emit(json!({"content": text}), out);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = event.get("delta").unwrap_or(&Value::Null);
                let text = |key: &str| {
                    delta
                        .get(key)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                };
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        if let Some(text) = text("text") {
                            self.ensure_role(out);
                            self.emit(json!({"content": text}), out);
                        }
                    }
                    Some("input_json_delta") => {
                        let block_index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
                        if let (Some(json), Some(&index)) =
                            (text("partial_json"), self.tool_calls.get(&block_index))
                        {
                            let call = json!({"index": index, "function": {"arguments": json}});
                            self.emit(json!({"tool_calls": [call]}), out);
                        }
                    }
                    Some("thinking_delta") => {
                        if let Some(thinking) = text("thinking") {
                            self.ensure_role(out);
                            self.emit(json!({"reasoning_content": thinking}), out);
                        }
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
                    self.emit_finish(finish_reason(Some(stop)), out);
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

    /// OpenAI streams open with a chunk carrying `role`; sent once, even if the upstream skipped
    /// `message_start`.
    fn ensure_role(&mut self, out: &mut Vec<Bytes>) {
        if !self.role_sent {
            self.role_sent = true;
            self.emit(json!({"role": "assistant", "content": ""}), out);
        }
    }

    fn emit_finish(&mut self, reason: &str, out: &mut Vec<Bytes>) {
        if self.finish_sent {
            return;
        }
        self.ensure_role(out);
        self.finish_sent = true;
        out.push(self.chunk(json!({}), Some(reason)));
    }

    fn emit(&self, delta: Value, out: &mut Vec<Bytes>) {
        out.push(self.chunk(delta, None));
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        frame(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        }))
    }

    /// Normal end: finish reason (if the upstream gave none), usage chunk, `[DONE]`.
    fn close(&mut self, out: &mut Vec<Bytes>) {
        self.emit_finish("stop", out);
        if self.include_usage {
            out.push(frame(&json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.counts.to_openai(),
            })));
        }
        self.done(out);
    }

    /// Abnormal end: an OpenAI-shaped error frame (what OpenAI itself sends mid-stream), `[DONE]`.
    fn fail(&mut self, message: &str, kind: &str, status: StatusCode, out: &mut Vec<Bytes>) {
        let body = openai_error_body(message, kind, status);
        let mut framed = Vec::with_capacity(body.len() + 8);
        framed.extend_from_slice(b"data: ");
        framed.extend_from_slice(&body);
        framed.extend_from_slice(b"\n\n");
        out.push(Bytes::from(framed));
        self.done(out);
    }

    /// Emits `[DONE]` and stops reading: anything after it is ignored.
    fn done(&mut self, out: &mut Vec<Bytes>) {
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        self.sse.close();
    }
}

impl Translate for StreamTranslator {
    fn reader(&mut self) -> &mut SseReader {
        &mut self.sse
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
        if self.finish_sent {
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

fn frame(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}
