//! Answers of OpenAI and Azure deployments passed on with one change: the response id becomes
//! one that names the deployment ([`super::encode_id`]). The rest of the bytes are the
//! upstream's, spliced rather than re-serialised.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::encode_id;
use crate::body::span_of;
use crate::sse::{TranslateStream, frame_data, frame_end};

/// An upstream line longer than this is a broken stream rather than one to buffer forever.
const MAX_FRAME: usize = 16 * 1024 * 1024;

#[derive(Deserialize)]
struct WithId<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

/// A lifecycle event (`response.created`, `.completed`…) carries the response.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default)]
    response: Option<WithId<'a>>,
}

/// `raw` with the string `value` (borrowed from it) replaced by the encoded id; `None` when
/// the value is not a string.
fn splice(raw: &[u8], value: &RawValue, provider: &str, deployment: &str) -> Option<Vec<u8>> {
    let upstream: String = serde_json::from_str(value.get()).ok()?;
    let span = span_of(raw, value).ok()?;
    let id = serde_json::to_vec(&encode_id(provider, deployment, &upstream)).ok()?;
    let mut out = Vec::with_capacity(raw.len() + id.len());
    out.extend_from_slice(raw.get(..span.start)?);
    out.extend_from_slice(&id);
    out.extend_from_slice(raw.get(span.end..)?);
    Some(out)
}

/// A response object (or a deletion's answer) with its top-level `id` naming the deployment;
/// a body without one is returned as it is.
pub fn rewrite_answer_id(body: &Bytes, provider: &str, deployment: &str) -> Bytes {
    match serde_json::from_slice::<WithId<'_>>(body) {
        Ok(WithId { id: Some(value) }) => splice(body, value, provider, deployment)
            .map(Bytes::from)
            .unwrap_or_else(|| body.clone()),
        _ => body.clone(),
    }
}

/// A pass-through Responses event stream with `response.id` rewritten in the lifecycle events;
/// every other event passes byte for byte. A stream that ends before its last event
/// (`response.completed`, `.incomplete`, `.failed` or an `error`) ends with an `error` event,
/// so the client can tell.
#[derive(Debug)]
pub struct IdRewriter {
    provider: String,
    deployment: String,
    buffer: Vec<u8>,
    /// Events passed, for the sequence number of our own error event.
    events: u64,
    ended: bool,
    done: bool,
}

impl IdRewriter {
    pub fn new(provider: &str, deployment: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            deployment: deployment.to_owned(),
            buffer: Vec::new(),
            events: 0,
            ended: false,
            done: false,
        }
    }

    fn frame(&mut self, frame: &[u8]) -> Bytes {
        self.events += 1;
        const TERMINAL: &[&[u8]] = &[
            b"response.completed\"",
            b"response.incomplete\"",
            b"response.failed\"",
            b"event: error",
            b"\"type\":\"error\"",
        ];
        if TERMINAL.iter().any(|t| contains(frame, t)) {
            self.ended = true;
        }
        if !contains(frame, b"\"response\":") {
            return Bytes::copy_from_slice(frame);
        }
        let rewritten = frame_data(frame).and_then(|data| {
            let event: Event<'_> = serde_json::from_slice(data).ok()?;
            let value = event.response?.id?;
            splice(frame, value, &self.provider, &self.deployment)
        });
        rewritten.map_or_else(|| Bytes::copy_from_slice(frame), Bytes::from)
    }

    fn error(&mut self, message: &str) -> Bytes {
        self.done = true;
        let event = serde_json::json!({"type": "error", "code": "server_error",
            "message": message, "param": null, "sequence_number": self.events});
        Bytes::from(format!("event: error\ndata: {event}\n\n"))
    }
}

impl TranslateStream for IdRewriter {
    fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.buffer.extend_from_slice(chunk);
        while let Some(end) = frame_end(&self.buffer) {
            let frame: Vec<u8> = self.buffer.drain(..end).collect();
            out.push(self.frame(&frame));
        }
        // Nothing follows the last event: stop reading, whatever the upstream does.
        self.done = self.ended;
        if !self.done && self.buffer.len() > MAX_FRAME {
            self.buffer.clear();
            out.push(self.error("upstream sent an oversized stream event"));
        }
        out
    }

    fn finish(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        let rest = std::mem::take(&mut self.buffer);
        if !rest.trim_ascii().is_empty() {
            let mut frame = rest;
            frame.extend_from_slice(b"\n\n");
            out.push(self.frame(&frame));
        }
        if self.ended {
            self.done = true;
        } else {
            out.push(self.error("upstream stream ended before the response was complete"));
        }
        out
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}
