//! Server-Sent Events passed through frame by frame, reading the `usage` an upstream appends
//! (for spend) and hiding that extra chunk from clients that did not ask for it.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use vaultgate_providers::{Usage, frame_data, frame_end};

use crate::charge::Delivered;

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// How a stream ended, for its charge: the provider's usage as far as it came, whether that is
/// its final count, and the text the client was sent.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct StreamEnd {
    pub usage: Option<Usage>,
    /// The provider's final count arrived (OpenAI's usage chunk, Anthropic's `message_delta`).
    pub usage_final: bool,
    pub delivered: Delivered,
}

/// Called once when a stream ends, however it ends (the client going away included).
pub type UsageSink = Box<dyn FnOnce(StreamEnd) + Send>;

/// Which usage an event stream carries, and where.
#[derive(Debug, Clone, Copy)]
pub enum UsageFormat {
    /// OpenAI chunks: a last chunk with empty `choices` holds `usage`; hidden from clients that
    /// did not ask for it (`stream_options.include_usage`).
    OpenAi { hide_usage_chunk: bool },
    /// Anthropic events: `message_start` holds the input tokens, `message_delta` the output.
    Anthropic,
    /// Responses API events: the last one (`response.completed`, `.incomplete`, `.failed`)
    /// holds the response with its `usage`.
    Responses,
}

/// The longest event an upstream may send: the providers' stream readers' cap. A longer one is
/// a broken or hostile upstream, and buffering it would grow without bound.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

struct Tap {
    inner: ByteStream,
    buffer: BytesMut,
    /// How much of `buffer` is known to hold no frame end, so each chunk is searched once
    /// rather than the whole partial event again (quadratic on an event sent byte by byte).
    scanned: usize,
    format: UsageFormat,
    end: StreamEnd,
    /// Holds the caller's admission (a parallel-request slot) until the stream ends or the
    /// client goes away.
    sink: Option<UsageSink>,
}

impl Tap {
    /// Splits off complete frames, notes usage, drops the usage-only chunk if hidden.
    fn complete_frames(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        // A frame end (`\r\n\r\n` at the longest) may straddle the scanned part and the new bytes.
        let mut from = self.scanned.saturating_sub(3);
        while let Some(end) = frame_end(&self.buffer[from..]) {
            let frame = self.buffer.split_to(from + end);
            from = 0;
            if self.inspect(&frame) {
                out.extend_from_slice(&frame);
            }
        }
        self.scanned = self.buffer.len();
        out.freeze()
    }

    /// Returns whether the frame goes to the client.
    fn inspect(&mut self, frame: &[u8]) -> bool {
        if !contains(frame, b"\"usage\"") {
            // Responses events repeat the text in their `.done` events: only deltas count.
            let counted =
                !matches!(self.format, UsageFormat::Responses) || contains(frame, b".delta\"");
            if self.sink.is_some() && counted {
                self.end.delivered.add(frame);
            }
            return true;
        }
        let Some(json) =
            frame_data(frame).and_then(|data| serde_json::from_slice::<Value>(data).ok())
        else {
            return true;
        };
        match self.format {
            UsageFormat::OpenAi { hide_usage_chunk } => {
                if let Some(usage) = Usage::from_json(&json) {
                    self.end.usage = Some(usage);
                    self.end.usage_final = true;
                }
                let usage_only = json
                    .get("choices")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty);
                let forwarded = !(usage_only && hide_usage_chunk);
                if forwarded && self.sink.is_some() {
                    self.end.delivered.add(frame);
                }
                forwarded
            }
            UsageFormat::Anthropic => {
                let usage = json.pointer("/message/usage").or_else(|| json.get("usage"));
                if let Some(usage) = usage {
                    let seen = anthropic_usage(usage);
                    let total = self.end.usage.get_or_insert_default();
                    if seen.prompt_tokens > 0 {
                        total.prompt_tokens = seen.prompt_tokens;
                    }
                    if usage.get("output_tokens").is_some() {
                        total.completion_tokens = seen.completion_tokens;
                    }
                    // `message_start` counts one output token up front; `message_delta` has
                    // the final count.
                    if json.get("type").and_then(Value::as_str) == Some("message_delta") {
                        self.end.usage_final = true;
                    }
                }
                if self.sink.is_some() {
                    self.end.delivered.add(frame);
                }
                true
            }
            UsageFormat::Responses => {
                if let Some(usage) = json.pointer("/response/usage").filter(|u| u.is_object()) {
                    self.end.usage = Some(vaultgate_providers::responses::usage(usage));
                    self.end.usage_final = true;
                }
                true
            }
        }
    }
}

impl Drop for Tap {
    /// The stream is charged however it ends, the client going away included.
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink(self.end);
        }
    }
}

/// OpenAI-style counts from an Anthropic `usage` object (the prompt includes cached tokens).
pub fn anthropic_usage(usage: &Value) -> Usage {
    let count = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        prompt_tokens: count("input_tokens")
            + count("cache_creation_input_tokens")
            + count("cache_read_input_tokens"),
        completion_tokens: count("output_tokens"),
    }
}

/// Wraps an upstream SSE body, passing complete frames on as they arrive. `sink` receives the
/// usage when the stream ends.
pub fn tap(inner: ByteStream, format: UsageFormat, sink: Option<UsageSink>) -> ByteStream {
    let state = Tap {
        inner,
        buffer: BytesMut::new(),
        scanned: 0,
        format,
        end: StreamEnd::default(),
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
                        if tap.buffer.len() > MAX_EVENT_BYTES {
                            tracing::warn!(
                                bytes = tap.buffer.len(),
                                "upstream stream event too large; ending the stream"
                            );
                            let oversized = std::io::Error::other(format!(
                                "the upstream sent a stream event over {} MiB",
                                MAX_EVENT_BYTES >> 20
                            ));
                            let mut out = BytesMut::from(out);
                            out.extend_from_slice(&error_frame(tap.format, &oversized));
                            return Some((Ok(out.freeze()), None));
                        }
                        if !out.is_empty() {
                            return Some((Ok(out), Some(tap)));
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "upstream stream broke off");
                        return Some((Ok(error_frame(tap.format, &error)), None));
                    }
                    None => {
                        let rest = tap.buffer.split().freeze();
                        return (!rest.is_empty()).then_some((Ok(rest), None));
                    }
                }
            }
        },
    ))
}

/// The last frame of a stream whose upstream broke off or stalled, so the client sees an error
/// rather than a cut connection: LiteLLM's `data: {"error": …}` for OpenAI clients, an `error`
/// event for Anthropic ones. A partial frame still buffered is dropped.
fn error_frame(format: UsageFormat, broken: &std::io::Error) -> Bytes {
    let error = if broken.kind() == std::io::ErrorKind::TimedOut {
        vaultgate_core::Error::UpstreamTimeout(broken.to_string())
    } else {
        vaultgate_core::Error::UpstreamUnreachable(format!("the stream broke off: {broken}"))
    };
    let frame = match format {
        UsageFormat::OpenAi { .. } => {
            let body = String::from_utf8_lossy(&error.to_body()).into_owned();
            format!("data: {body}\n\n")
        }
        UsageFormat::Anthropic => {
            let kind = if broken.kind() == std::io::ErrorKind::TimedOut {
                "timeout_error"
            } else {
                "api_error"
            };
            let event = serde_json::json!({"type": "error",
                "error": {"type": kind, "message": error.to_string()}});
            format!("event: error\ndata: {event}\n\n")
        }
        UsageFormat::Responses => {
            let event = serde_json::json!({"type": "error", "code": error.status().as_u16().to_string(),
                "message": error.to_string(), "param": null});
            format!("event: error\ndata: {event}\n\n")
        }
    };
    Bytes::from(frame)
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
        let sink: UsageSink =
            Box::new(move |end: StreamEnd| *sink_seen.lock().unwrap() = end.usage);
        let format = UsageFormat::OpenAi {
            hide_usage_chunk: hide,
        };
        let out: Vec<_> = tap(inner, format, Some(sink)).collect().await;
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
    async fn anthropic_usage_is_read_from_start_and_delta_events_and_kept() {
        let seen = Arc::new(Mutex::new(None));
        let sink_seen = Arc::clone(&seen);
        let events = [
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n",
        ];
        let inner: ByteStream = Box::pin(futures_util::stream::iter(
            events.map(|e| Ok(Bytes::from_static(e.as_bytes()))),
        ));
        let sink: UsageSink =
            Box::new(move |end: StreamEnd| *sink_seen.lock().unwrap() = end.usage);
        let out: Vec<_> = tap(inner, UsageFormat::Anthropic, Some(sink))
            .collect()
            .await;
        let text: String = out
            .into_iter()
            .map(|c| String::from_utf8(c.unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(text, events.concat());
        let usage = *seen.lock().unwrap();
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 11,
                completion_tokens: 9
            })
        );
    }

    #[tokio::test]
    async fn a_stream_without_usage_reports_the_text_it_delivered() {
        let seen = Arc::new(Mutex::new(None));
        let sink_seen = Arc::clone(&seen);
        let frames = [
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\" world, hi\"}}]}\n\n",
        ];
        let inner: ByteStream = Box::pin(futures_util::stream::iter(
            frames.map(|f| Ok(Bytes::from_static(f.as_bytes()))),
        ));
        let sink: UsageSink =
            Box::new(move |end: StreamEnd| *sink_seen.lock().unwrap() = Some(end));
        let format = UsageFormat::OpenAi {
            hide_usage_chunk: true,
        };
        let mut stream = tap(inner, format, Some(sink));
        // The client reads two frames and goes away.
        stream.next().await;
        stream.next().await;
        drop(stream);
        let end = seen.lock().unwrap().expect("the sink was not called");
        assert_eq!(end.usage, None);
        assert!(!end.usage_final);
        assert_eq!(end.delivered.text_bytes, 5);
        assert_eq!(end.delivered.tokens(), 2);
    }

    #[tokio::test]
    async fn a_broken_stream_ends_with_an_error_frame_in_the_clients_shape() {
        for (format, expected) in [
            (
                UsageFormat::OpenAi {
                    hide_usage_chunk: true,
                },
                "data: {\"error\":{",
            ),
            (UsageFormat::Anthropic, "event: error\ndata: {"),
        ] {
            let called = Arc::new(Mutex::new(false));
            let sink_called = Arc::clone(&called);
            let inner: ByteStream = Box::pin(futures_util::stream::iter([
                Ok(Bytes::from_static(
                    b"data: {\"choices\":[]}\n\ndata: {\"par",
                )),
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "stalled")),
                Ok(Bytes::from_static(b"data: never\n\n")),
            ]));
            let sink: UsageSink = Box::new(move |_| *sink_called.lock().unwrap() = true);
            let out: Vec<_> = tap(inner, format, Some(sink)).collect().await;
            let text: String = out
                .into_iter()
                .map(|c| String::from_utf8(c.unwrap().to_vec()).unwrap())
                .collect();
            let (first, error) = text.split_at(text.find("\n\n").unwrap() + 2);
            assert_eq!(first, "data: {\"choices\":[]}\n\n");
            assert!(error.starts_with(expected), "{error}");
            assert!(
                error.contains("timed out: stalled") && error.ends_with("}\n\n"),
                "{error}"
            );
            assert!(
                !error.contains("never") && !error.contains("par\""),
                "{error}"
            );
            assert!(*called.lock().unwrap(), "the stream's charge was not made");
        }
    }

    #[tokio::test]
    async fn frames_split_anywhere_are_found_once_and_an_endless_event_is_cut_off() {
        // Byte by byte, the frame ends straddle chunks in every position.
        let text = "data: {\"a\":1}\r\n\r\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        let chunks: Vec<Result<Bytes, std::io::Error>> = text
            .bytes()
            .map(|b| Ok(Bytes::copy_from_slice(&[b])))
            .collect();
        let stream = tap(
            Box::pin(futures_util::stream::iter(chunks)),
            UsageFormat::OpenAi {
                hide_usage_chunk: false,
            },
            None,
        );
        let frames: Vec<Bytes> = stream.map(Result::unwrap).collect().await;
        assert_eq!(frames.len(), 3, "{frames:?}");
        assert_eq!(frames.concat(), text.as_bytes());

        // An upstream that never ends its event: the stream ends with an error frame once the
        // event passes the cap, instead of buffering for ever.
        let piece = Bytes::from(vec![b'x'; 1024 * 1024]);
        let endless = futures_util::stream::repeat_with(move || Ok(piece.clone())).take(64);
        let stream = tap(
            Box::pin(
                futures_util::stream::iter(vec![Ok(Bytes::from_static(b"data: {}\n\n"))])
                    .chain(endless),
            ),
            UsageFormat::OpenAi {
                hide_usage_chunk: false,
            },
            None,
        );
        let frames: Vec<Bytes> = stream.map(Result::unwrap).collect().await;
        let last = String::from_utf8_lossy(frames.last().unwrap()).into_owned();
        assert!(last.starts_with("data: {\"error\""), "{last}");
        assert!(last.contains("over 16 MiB"), "{last}");
        assert!(
            frames.iter().map(Bytes::len).sum::<usize>() < 1024,
            "the partial event is not sent"
        );
    }

    #[tokio::test]
    async fn usage_chunk_is_kept_when_the_client_asked() {
        let (text, usage) = run(vec![USAGE, "data: [DONE]\n\n"], false).await;
        assert_eq!(text, format!("{USAGE}data: [DONE]\n\n"));
        assert!(usage.is_some());
    }
}
