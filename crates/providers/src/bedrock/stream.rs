//! ConverseStream (AWS event-stream frames) → OpenAI `chat.completion.chunk` SSE stream.

use std::collections::HashMap;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder, read_message_from};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde_json::{Value, json};
use vaultgate_core::Error;

use super::errors::{exception, exception_error};
use super::response::{finish_reason, usage};
use crate::TranslateStream;
use crate::chunks::ChunkWriter;
use crate::errors::openai_type_for_status;

/// Longest stretch of bytes buffered without completing a frame (the decoder checks a frame's
/// declared length; this bounds a stream that never completes one).
const MAX_BUFFERED: usize = 16 * 1024 * 1024;

/// Incremental translator of one ConverseStream body: feed it the upstream bytes as they arrive
/// and forward what it returns, whole OpenAI SSE frames only.
#[derive(Debug)]
pub struct StreamTranslator {
    writer: ChunkWriter,
    buffer: BytesMut,
    decoder: MessageFrameDecoder,
    /// Converse content block index → OpenAI tool call index.
    tool_calls: HashMap<u64, usize>,
    usage: Option<Value>,
    done: bool,
}

impl StreamTranslator {
    /// `public_model` is reported in every chunk; `include_usage` adds OpenAI's final
    /// `choices: []` usage chunk.
    pub fn new(public_model: &str, include_usage: bool) -> Self {
        let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
        Self {
            writer: ChunkWriter::new(&id, public_model, include_usage),
            buffer: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
            tool_calls: HashMap::new(),
            usage: None,
            done: false,
        }
    }

    fn handle(&mut self, message: &Message, out: &mut Vec<Bytes>) {
        match header(message, ":message-type") {
            Some("event") | None => {}
            Some("exception") => {
                let (name, text) = exception_of(message);
                let (status, text) = exception(name, &text, StatusCode::BAD_GATEWAY);
                return self.fail(&text, status, out);
            }
            Some(_) => {
                let code = header(message, ":error-code").unwrap_or("InternalServerException");
                let text = header(message, ":error-message").unwrap_or("stream error");
                let (status, text) = exception(Some(code), text, StatusCode::BAD_GATEWAY);
                return self.fail(&text, status, out);
            }
        }
        let Ok(event) = serde_json::from_slice::<Value>(message.payload()) else {
            return self.fail(
                "bedrock sent a malformed stream event",
                StatusCode::BAD_GATEWAY,
                out,
            );
        };
        let block_index = || {
            event
                .get("contentBlockIndex")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        match header(message, ":event-type") {
            Some("messageStart") => self.writer.role(out),
            Some("contentBlockStart") => {
                if let Some(tool) = event.pointer("/start/toolUse") {
                    let index = self.tool_calls.len();
                    self.tool_calls.insert(block_index(), index);
                    let call = json!({
                        "index": index,
                        "id": tool.get("toolUseId").cloned().unwrap_or(Value::Null),
                        "type": "function",
                        "function": {"name": tool.get("name").cloned().unwrap_or(Value::Null), "arguments": ""},
                    });
                    self.writer.delta(json!({"tool_calls": [call]}), out);
                }
            }
            Some("contentBlockDelta") => {
                let delta = event.get("delta").unwrap_or(&Value::Null);
                let text_at = |pointer: &str| delta.pointer(pointer).and_then(Value::as_str);
                if let Some(text) = text_at("/text") {
                    self.writer.text(text, out);
                } else if let Some(input) = text_at("/toolUse/input").filter(|s| !s.is_empty()) {
                    if let Some(&index) = self.tool_calls.get(&block_index()) {
                        let call = json!({"index": index, "function": {"arguments": input}});
                        self.writer.delta(json!({"tool_calls": [call]}), out);
                    }
                } else if let Some(text) = text_at("/reasoningContent/text") {
                    self.writer.reasoning(text, out);
                }
            }
            Some("messageStop") => {
                let reason = finish_reason(event.get("stopReason").and_then(Value::as_str));
                self.writer.finish(reason, out);
            }
            Some("metadata") => {
                self.usage = event.get("usage").cloned();
                // Usage comes last, after messageStop: the answer is complete.
                if self.writer.finish_sent() {
                    self.close(out);
                }
            }
            // contentBlockStop, and event types added later.
            _ => {}
        }
    }

    /// Normal end: the usage chunk (when asked), `[DONE]`.
    fn close(&mut self, out: &mut Vec<Bytes>) {
        self.writer.close(usage(self.usage.as_ref()), out);
        self.stop();
    }

    /// An OpenAI-shaped error frame (what OpenAI itself sends mid-stream), then `[DONE]`.
    fn fail(&mut self, message: &str, status: StatusCode, out: &mut Vec<Bytes>) {
        self.writer
            .fail(message, openai_type_for_status(status), status, out);
        self.stop();
    }

    fn stop(&mut self) {
        self.done = true;
        self.buffer.clear();
    }
}

impl TranslateStream for StreamTranslator {
    fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.buffer.extend_from_slice(chunk);
        while !self.done {
            match self.decoder.decode_frame(&mut self.buffer) {
                Ok(DecodedFrame::Complete(message)) => self.handle(&message, &mut out),
                Ok(DecodedFrame::Incomplete) => {
                    if self.buffer.len() > MAX_BUFFERED {
                        let status = StatusCode::BAD_GATEWAY;
                        self.fail(
                            "bedrock sent an oversized event-stream frame",
                            status,
                            &mut out,
                        );
                    }
                    break;
                }
                Err(_) => self.fail(
                    "bedrock sent a malformed event-stream frame",
                    StatusCode::BAD_GATEWAY,
                    &mut out,
                ),
            }
        }
        out
    }

    /// `[DONE]` after a complete answer; an error frame first when the stream was cut before
    /// `messageStop`.
    fn finish(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        if self.writer.finish_sent() {
            self.close(&mut out);
        } else {
            self.fail(
                "bedrock sent a stream that ended before the message was complete",
                StatusCode::BAD_GATEWAY,
                &mut out,
            );
        }
        out
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

/// Bedrock may answer 200 and open the stream with an exception (throttling under load): caught
/// in the first chunk, before anything reached the client, it becomes an ordinary error the
/// router may retry. `None` when the first frame is an event (or not complete yet).
pub fn stream_opened_with_error(first: &[u8]) -> Option<Error> {
    let message = read_message_from(first).ok()?;
    if header(&message, ":message-type") != Some("exception") {
        return None;
    }
    let (name, text) = exception_of(&message);
    Some(exception_error(name, &text, StatusCode::BAD_GATEWAY))
}

/// The exception's name and message.
fn exception_of(message: &Message) -> (Option<&str>, String) {
    let text = serde_json::from_slice::<Value>(message.payload())
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "stream exception".to_owned());
    (header(message, ":exception-type"), text)
}

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}
