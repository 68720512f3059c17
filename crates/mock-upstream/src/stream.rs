//! Streamed answers: SSE (plain or with named events) and JSON lines, scripted to go slow or
//! stop early, counting the streams the client dropped before their end.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::Value;

use crate::{Shared, respond};

/// A JSON-lines stream (Ollama's), one line per chunk.
pub(crate) fn lines_stream(
    shared: Arc<Shared>,
    lines: Vec<String>,
    delay: Duration,
    cut_after: Option<usize>,
) -> Response {
    let encode: fn(&str) -> Bytes = |line| Bytes::from(format!("{line}\n"));
    stream_frames(
        shared,
        lines,
        delay,
        cut_after,
        ("application/x-ndjson", encode),
    )
}

/// Counts a stream as cancelled if it is dropped before its last frame went out.
struct CancelWatch {
    shared: Arc<Shared>,
    done: bool,
}

impl CancelWatch {
    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for CancelWatch {
    fn drop(&mut self) {
        if !self.done {
            self.shared.streams_cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

pub(crate) fn sse(
    shared: Arc<Shared>,
    frames: Vec<String>,
    delay: Duration,
    cut_after: Option<usize>,
) -> Response {
    // Anthropic's and the Responses API's events are named in an `event:` line.
    let named_events = frames
        .first()
        .is_some_and(|f| f.contains("\"message_start\"") || f.contains("\"response.created\""));
    let encode: fn(&str) -> Bytes = if named_events {
        named_frame
    } else {
        |frame| Bytes::from(format!("data: {frame}\n\n"))
    };
    stream_frames(
        shared,
        frames,
        delay,
        cut_after,
        ("text/event-stream", encode),
    )
}

fn named_frame(frame: &str) -> Bytes {
    let kind = serde_json::from_str::<Value>(frame)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    Bytes::from(format!("event: {kind}\ndata: {frame}\n\n"))
}

/// Streams `frames` (each encoded by `format.1`) as a `format.0` body, `delay` apart, cut
/// after `cut_after` of them.
pub(crate) fn stream_frames(
    shared: Arc<Shared>,
    frames: Vec<String>,
    delay: Duration,
    cut_after: Option<usize>,
    format: (&'static str, fn(&str) -> Bytes),
) -> Response {
    let (content_type, encode) = format;
    let total = cut_after.unwrap_or(frames.len()).min(frames.len());
    let watch = CancelWatch {
        shared,
        done: false,
    };
    let stream = futures_util::stream::unfold(
        (frames.into_iter(), 0usize, watch),
        move |(mut frames, sent, watch)| async move {
            if sent >= total {
                watch.finish();
                return None;
            }
            let frame = frames.next()?;
            if sent > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((
                Ok::<_, std::io::Error>(encode(&frame)),
                (frames, sent + 1, watch),
            ))
        },
    );
    respond(200, content_type, Body::from_stream(stream))
}
