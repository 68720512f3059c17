//! Server-Sent Events passed through frame by frame, reading the `usage` an upstream appends
//! (for spend) and hiding that extra chunk from clients that did not ask for it.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use vaultgate_providers::Usage;

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Called once with the usage of a finished stream.
pub type UsageSink = Box<dyn FnOnce(Usage) + Send>;

struct Tap {
    inner: ByteStream,
    buffer: BytesMut,
    hide_usage_chunk: bool,
    usage: Option<Usage>,
    /// Holds the caller's admission (a parallel-request slot) until the stream ends or the
    /// client goes away.
    sink: Option<UsageSink>,
}

impl Tap {
    /// Splits off complete frames, notes usage, drops the usage-only chunk if hidden.
    fn complete_frames(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        while let Some(end) = frame_end(&self.buffer) {
            let frame = self.buffer.split_to(end);
            if self.inspect(&frame) {
                out.extend_from_slice(&frame);
            }
        }
        out.freeze()
    }

    /// Returns whether the frame goes to the client.
    fn inspect(&mut self, frame: &[u8]) -> bool {
        if !contains(frame, b"\"usage\"") {
            return true;
        }
        let Some(json) =
            frame_data(frame).and_then(|data| serde_json::from_slice::<Value>(data).ok())
        else {
            return true;
        };
        if let Some(usage) = Usage::from_json(&json) {
            self.usage = Some(usage);
        }
        let usage_only = json
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        !(usage_only && self.hide_usage_chunk)
    }

    fn finish(&mut self) {
        if let (Some(sink), Some(usage)) = (self.sink.take(), self.usage) {
            sink(usage);
        }
    }
}

/// Wraps an upstream SSE body. `sink` receives the usage when the stream completes.
pub fn tap(inner: ByteStream, hide_usage_chunk: bool, sink: Option<UsageSink>) -> ByteStream {
    let state = Tap {
        inner,
        buffer: BytesMut::new(),
        hide_usage_chunk,
        usage: None,
        sink,
    };
    Box::pin(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            let mut tap = state?;
            loop {
                match tap.inner.next().await {
                    Some(Ok(chunk)) => {
                        tap.buffer.extend_from_slice(&chunk);
                        let out = tap.complete_frames();
                        if !out.is_empty() {
                            return Some((Ok(out), Some(tap)));
                        }
                    }
                    Some(Err(error)) => return Some((Err(error), None)),
                    None => {
                        let rest = tap.buffer.split().freeze();
                        tap.finish();
                        return (!rest.is_empty()).then_some((Ok(rest), None));
                    }
                }
            }
        },
    ))
}

/// End of the first complete frame (after its blank line), `\n\n` or `\r\n\r\n`.
fn frame_end(buffer: &[u8]) -> Option<usize> {
    let lf = find(buffer, b"\n\n").map(|i| i + 2);
    let crlf = find(buffer, b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The payload of a frame's `data:` line.
fn frame_data(frame: &[u8]) -> Option<&[u8]> {
    frame
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"data:"))
        .map(|data| data.trim_ascii())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    async fn run(chunks: Vec<&'static str>, hide: bool) -> (String, Option<Usage>) {
        let seen = Arc::new(Mutex::new(None));
        let sink_seen = Arc::clone(&seen);
        let inner: ByteStream = Box::pin(futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok(Bytes::from_static(c.as_bytes()))),
        ));
        let sink: UsageSink = Box::new(move |usage| *sink_seen.lock().unwrap() = Some(usage));
        let out: Vec<_> = tap(inner, hide, Some(sink)).collect().await;
        let text = out
            .into_iter()
            .map(|c| String::from_utf8(c.unwrap().to_vec()).unwrap())
            .collect();
        let usage = *seen.lock().unwrap();
        (text, usage)
    }

    const USAGE: &str =
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n";

    #[tokio::test]
    async fn usage_chunk_is_read_and_hidden_across_chunk_boundaries() {
        let (text, usage) = run(
            vec![
                "data: {\"choices\":[{\"delta\":{}}]}\n",
                "\n",
                &USAGE[..20],
                &USAGE[20..],
                "data: [DONE]\n\n",
            ],
            true,
        )
        .await;
        assert_eq!(
            text,
            "data: {\"choices\":[{\"delta\":{}}]}\n\ndata: [DONE]\n\n"
        );
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4
            })
        );
    }

    #[tokio::test]
    async fn usage_chunk_is_kept_when_the_client_asked() {
        let (text, usage) = run(vec![USAGE, "data: [DONE]\n\n"], false).await;
        assert_eq!(text, format!("{USAGE}data: [DONE]\n\n"));
        assert!(usage.is_some());
    }
}
