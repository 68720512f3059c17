//! OpenAI chat completion SSE stream → Anthropic Messages SSE stream, for Anthropic-native
//! clients (`POST /v1/messages` with `stream: true`) served by an OpenAI-compatible deployment.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{now_secs, stop_reason};
use crate::sse::{self, SseReader, Translate};

/// The content block currently open in the Anthropic stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text(u64),
    Tool(u64),
}

/// Incremental translator of one OpenAI chat completion stream into Anthropic events
/// (`message_start`, `content_block_*`, `message_delta`, `message_stop`). Like
/// [`StreamTranslator`](super::StreamTranslator) it takes upstream bytes cut anywhere and returns
/// whole frames. Ask the upstream for `stream_options.include_usage` so the final
/// `message_delta` can carry token counts.
#[derive(Debug)]
pub struct MessagesStreamTranslator {
    model: String,
    sse: SseReader,
    started: bool,
    open: Option<Block>,
    next_block: u64,
    /// OpenAI tool call index → Anthropic block index, for argument deltas.
    tools: Vec<(u64, u64)>,
    stop_reason: Option<&'static str>,
    usage: Option<(u64, u64)>,
}

impl MessagesStreamTranslator {
    /// `model` is reported in `message_start` (the name the client asked for).
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            sse: SseReader::default(),
            started: false,
            open: None,
            next_block: 0,
            tools: Vec::new(),
            stop_reason: None,
            usage: None,
        }
    }

    /// Consumes upstream OpenAI SSE bytes; returns the Anthropic frames completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        sse::push(self, chunk)
    }

    /// Ends the stream when the upstream body ended. A stream that ended without `[DONE]` but
    /// after a finish reason is closed normally; one cut earlier ends with an `error` event.
    pub fn finish(&mut self) -> Vec<Bytes> {
        sse::finish(self)
    }

    /// `(prompt_tokens, completion_tokens)` from the upstream's usage chunk, if it sent one.
    pub fn usage(&self) -> Option<(u64, u64)> {
        self.usage
    }

    /// True once `message_stop` (or a final `error`) was emitted.
    pub fn is_done(&self) -> bool {
        self.sse.is_closed()
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<Bytes>) {
        let tool_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let function = call.get("function").unwrap_or(&Value::Null);
        let known = self
            .tools
            .iter()
            .find(|(t, _)| *t == tool_index)
            .map(|(_, b)| *b);
        let block = match known {
            Some(block) => block,
            None => {
                let block = self.open_block(
                    json!({
                        "type": "tool_use",
                        "id": call.get("id").cloned().unwrap_or(Value::Null),
                        "name": function.get("name").cloned().unwrap_or(Value::Null),
                        "input": {},
                    }),
                    out,
                );
                self.open = Some(Block::Tool(block));
                self.tools.push((tool_index, block));
                block
            }
        };
        if let Some(arguments) = function
            .get("arguments")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            out.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": block, "delta": {"type": "input_json_delta", "partial_json": arguments}}),
            ));
        }
    }

    /// `message_start` before the first content, with the upstream's id.
    fn start(&mut self, chunk: &Value, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = chunk
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("msg_vaultgate_{}", now_secs()), str::to_owned);
        out.push(event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                // OpenAI reports usage only at the end; the final message_delta carries it.
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
        ));
    }

    fn open_block(&mut self, block: Value, out: &mut Vec<Bytes>) -> u64 {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        out.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if let Some(Block::Text(index) | Block::Tool(index)) = self.open.take() {
            out.push(event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        self.start(&Value::Null, out);
        self.close_block(out);
        let (input, output) = self.usage.unwrap_or((0, 0));
        out.push(event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null},
                "usage": {"input_tokens": input, "output_tokens": output},
            }),
        ));
        out.push(event("message_stop", &json!({"type": "message_stop"})));
        self.sse.close();
    }

    /// Anthropic's own mid-stream error shape, then nothing more.
    fn fail(&mut self, kind: &str, message: &str, out: &mut Vec<Bytes>) {
        out.push(event(
            "error",
            &json!({"type": "error", "error": {"type": kind, "message": message}}),
        ));
        self.sse.close();
    }
}

impl Translate for MessagesStreamTranslator {
    fn reader(&mut self) -> &mut SseReader {
        &mut self.sse
    }

    fn reader_ref(&self) -> &SseReader {
        &self.sse
    }

    fn handle_data(&mut self, data: &str, out: &mut Vec<Bytes>) {
        if data.trim() == "[DONE]" {
            self.close(out);
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            self.fail("api_error", "upstream sent a malformed stream event", out);
            return;
        };
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream stream error");
            let kind = error
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("api_error");
            self.fail(kind, message, out);
            return;
        }
        self.start(&chunk, out);
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let count = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
            self.usage = Some((count("prompt_tokens"), count("completion_tokens")));
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            let index = match self.open {
                Some(Block::Text(index)) => index,
                _ => {
                    let index = self.open_block(json!({"type": "text", "text": ""}), out);
                    self.open = Some(Block::Text(index));
                    index
                }
            };
            out.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.tool_call(call, out);
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop_reason = Some(stop_reason(Some(reason)));
            self.close_block(out);
        }
    }

    fn on_line_too_long(&mut self, out: &mut Vec<Bytes>) {
        self.fail("api_error", "upstream sent an oversized stream line", out);
    }

    fn on_end(&mut self, out: &mut Vec<Bytes>) {
        if self.stop_reason.is_some() {
            self.close(out);
        } else {
            self.fail(
                "api_error",
                "upstream stream ended before the message was complete",
                out,
            );
        }
    }
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}
