//! OpenAI stream frames (`chat.completion.chunk`, or `text_completion` for the legacy
//! completions route), written the same way by every stream translation into OpenAI's protocol
//! (Anthropic, Gemini, Ollama, legacy completions): a first chunk with the role, content
//! deltas, one finish reason, an optional usage chunk, `[DONE]`.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use crate::errors::openai_error_body;

/// Which OpenAI stream the chunks belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    /// `chat.completion.chunk` with `delta`s.
    Chat,
    /// `text_completion` with `text` (legacy `/completions`).
    Text,
}

/// The frames of one OpenAI stream, and what has been said on it so far.
#[derive(Debug)]
pub(crate) struct ChunkWriter {
    object: Object,
    id: String,
    model: String,
    created: u64,
    /// Adds OpenAI's final `choices: []` usage chunk (the client's or the gateway's wish).
    include_usage: bool,
    role_sent: bool,
    finish_sent: bool,
}

impl ChunkWriter {
    /// `model` is reported in every chunk (the name the client asked for).
    pub(crate) fn new(id: &str, model: &str, include_usage: bool) -> Self {
        Self::of(Object::Chat, id, model, include_usage)
    }

    pub(crate) fn of(object: Object, id: &str, model: &str, include_usage: bool) -> Self {
        Self {
            object,
            id: id.to_owned(),
            model: model.to_owned(),
            created: crate::now_secs(),
            include_usage,
            role_sent: false,
            finish_sent: false,
        }
    }

    /// The upstream's own message id, when it tells one before the first chunk.
    pub(crate) fn set_id(&mut self, id: String) {
        self.id = id;
    }

    pub(crate) fn finish_sent(&self) -> bool {
        self.finish_sent
    }

    /// OpenAI chat streams open with a chunk carrying `role`; sent once, before anything else.
    pub(crate) fn role(&mut self, out: &mut Vec<Bytes>) {
        if !self.role_sent && self.object == Object::Chat {
            self.role_sent = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
    }

    /// A delta chunk (after the role chunk).
    pub(crate) fn delta(&mut self, delta: Value, out: &mut Vec<Bytes>) {
        self.role(out);
        out.push(self.chunk(delta, None));
    }

    /// A content delta; empty text sends nothing.
    pub(crate) fn text(&mut self, text: &str, out: &mut Vec<Bytes>) {
        match (text.is_empty(), self.object) {
            (true, _) => {}
            (false, Object::Chat) => self.delta(json!({"content": text}), out),
            (false, Object::Text) => out.push(self.chunk(Value::String(text.to_owned()), None)),
        }
    }

    /// A reasoning delta (`reasoning_content`, LiteLLM's name); empty text sends nothing.
    pub(crate) fn reasoning(&mut self, text: &str, out: &mut Vec<Bytes>) {
        if !text.is_empty() {
            self.delta(json!({"reasoning_content": text}), out);
        }
    }

    /// The finish reason, once per stream.
    pub(crate) fn finish(&mut self, reason: &str, out: &mut Vec<Bytes>) {
        if self.finish_sent {
            return;
        }
        self.role(out);
        self.finish_sent = true;
        let empty = match self.object {
            Object::Chat => json!({}),
            Object::Text => json!(""),
        };
        out.push(self.chunk(empty, Some(reason)));
    }

    /// Normal end: the finish reason (`stop` if none was given), the usage chunk when asked
    /// for and known (`usage` not null), `[DONE]`.
    pub(crate) fn close(&mut self, usage: Value, out: &mut Vec<Bytes>) {
        self.finish("stop", out);
        if self.include_usage && !usage.is_null() {
            out.push(frame(&json!({
                "id": self.id,
                "object": self.object_name(),
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage,
            })));
        }
        out.push(done());
    }

    /// Abnormal end: an OpenAI-shaped error frame (what OpenAI itself sends mid-stream),
    /// `[DONE]`.
    pub(crate) fn fail(
        &mut self,
        message: &str,
        kind: &str,
        status: StatusCode,
        out: &mut Vec<Bytes>,
    ) {
        let body = openai_error_body(message, kind, status);
        let mut framed = Vec::with_capacity(body.len() + 8);
        framed.extend_from_slice(b"data: ");
        framed.extend_from_slice(&body);
        framed.extend_from_slice(b"\n\n");
        out.push(Bytes::from(framed));
        out.push(done());
    }

    fn object_name(&self) -> &'static str {
        match self.object {
            Object::Chat => "chat.completion.chunk",
            Object::Text => "text_completion",
        }
    }

    /// One chunk: `delta` is the chat delta, or the text of a `text_completion` chunk.
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let choice = match self.object {
            Object::Chat => {
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason})
            }
            Object::Text => {
                json!({"index": 0, "text": delta, "logprobs": null, "finish_reason": finish_reason})
            }
        };
        frame(&json!({
            "id": self.id,
            "object": self.object_name(),
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }))
    }
}

fn frame(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// OpenAI `usage` from prompt and completion counts.
pub(crate) fn openai_usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}
