//! A minimal incremental reader of upstream streams: splits arbitrary byte chunks into the
//! `data` payloads of whole SSE events, or into whole lines of a JSON-lines stream (Ollama).
//! Lines are only decoded once complete, so a chunk boundary inside a UTF-8 sequence or a `\r\n`
//! pair is harmless. [`push`] and [`finish`] drive a [`Translate`]r over it, the same way for
//! every stream translation, and [`TranslateStream`] is what callers see of any of them.

use bytes::Bytes;

/// An upstream line longer than this is treated as a broken stream rather than buffered forever.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// The line-length limit was exceeded; the stream cannot be trusted any more.
#[derive(Debug)]
struct LineTooLong;

/// How events are delimited in the upstream body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Server-sent events: `data:` lines, an event ends at a blank line.
    #[default]
    Sse,
    /// One JSON document per line (newline-delimited JSON).
    JsonLines,
}

#[derive(Debug, Default)]
pub(crate) struct SseReader {
    framing: Framing,
    /// Bytes of an incomplete line.
    line: Vec<u8>,
    /// `data:` lines of the event being read, joined by `\n` as the SSE spec says.
    data: String,
    has_data: bool,
    /// The translator emitted its closing frame: later input is ignored.
    closed: bool,
}

impl SseReader {
    /// A reader of one JSON document per line instead of SSE events.
    pub(crate) fn json_lines() -> Self {
        Self {
            framing: Framing::JsonLines,
            ..Self::default()
        }
    }

    /// Consumes a chunk; returns the data of every event it completed, in order.
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>, LineTooLong> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (head, tail) = rest.split_at(pos);
            rest = tail.get(1..).unwrap_or_default();
            if self.line.is_empty() {
                self.line_done(head, &mut events);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                self.line_done(&line, &mut events);
            }
        }
        if self.line.len() + rest.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        self.line.extend_from_slice(rest);
        Ok(events)
    }

    /// End of input: the last event may lack its terminating blank line (or even its newline).
    fn finish(&mut self) -> Option<String> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut events);
        }
        self.dispatch(&mut events);
        events.pop()
    }

    /// Stops reading for good, dropping whatever was buffered.
    pub(crate) fn close(&mut self) {
        *self = Self {
            closed: true,
            framing: self.framing,
            ..Self::default()
        };
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    fn line_done(&mut self, line: &[u8], events: &mut Vec<String>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.framing == Framing::JsonLines {
            if !line.trim_ascii().is_empty() {
                events.push(String::from_utf8_lossy(line).into_owned());
            }
            return;
        }
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line.starts_with(b":") {
            return; // comment / keep-alive
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        // `event:` only repeats the JSON `type` in both protocols, so `data:` is all we need.
        if field == "data" {
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
    }

    fn dispatch(&mut self, events: &mut Vec<String>) {
        if self.has_data {
            self.has_data = false;
            events.push(std::mem::take(&mut self.data));
        }
    }
}

/// The protocol half of a stream translator: what one event means and how the stream ends.
/// [`push`] and [`finish`] do the rest, so both directions treat chunks and endings alike.
pub(crate) trait Translate {
    /// The reader; the translator [closes](SseReader::close) it with its closing frame.
    fn reader(&mut self) -> &mut SseReader;
    fn reader_ref(&self) -> &SseReader;
    /// One event's `data`.
    fn handle_data(&mut self, data: &str, out: &mut Vec<Bytes>);
    /// The upstream broke the line-length limit: end with an error frame.
    fn on_line_too_long(&mut self, out: &mut Vec<Bytes>);
    /// The upstream body ended before the closing event: close if the message was complete,
    /// else end with an error frame so the client can tell a truncated answer.
    fn on_end(&mut self, out: &mut Vec<Bytes>);
}

/// Consumes upstream bytes; returns the frames completed by them (often none).
pub(crate) fn push(translator: &mut impl Translate, chunk: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    if translator.reader().is_closed() {
        return out;
    }
    match translator.reader().feed(chunk) {
        Ok(events) => {
            for data in events {
                if translator.reader().is_closed() {
                    break;
                }
                translator.handle_data(&data, &mut out);
            }
        }
        Err(LineTooLong) => translator.on_line_too_long(&mut out),
    }
    out
}

/// Ends the stream when the upstream body ended: handles a last event that lacked its blank
/// line, then lets the translator close.
pub(crate) fn finish(translator: &mut impl Translate) -> Vec<Bytes> {
    let mut out = Vec::new();
    if translator.reader().is_closed() {
        return out;
    }
    if let Some(data) = translator.reader().finish() {
        translator.handle_data(&data, &mut out);
    }
    if !translator.reader().is_closed() {
        translator.on_end(&mut out);
    }
    out
}

/// An incremental translator of one upstream stream into the client's protocol: feed it the
/// upstream bytes as they arrive and forward what it returns (whole frames only).
pub trait TranslateStream: Send + 'static {
    /// Consumes upstream bytes; returns the frames completed by them (often none).
    fn push(&mut self, chunk: &[u8]) -> Vec<Bytes>;
    /// The upstream body ended: the last frames, closing the stream (with an error frame when
    /// the upstream stopped before its answer was complete).
    fn finish(&mut self) -> Vec<Bytes>;
    /// True once the closing frame was emitted; the caller may stop reading the upstream.
    fn is_done(&self) -> bool;
}

impl<T: Translate + Send + 'static> TranslateStream for T {
    fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        push(self, chunk)
    }

    fn finish(&mut self) -> Vec<Bytes> {
        finish(self)
    }

    fn is_done(&self) -> bool {
        self.reader_ref().is_closed()
    }
}

/// End of the first complete SSE frame in `buffer` (after its blank line, `\n\n` or
/// `\r\n\r\n`), for code that passes frames on whole.
pub fn frame_end(buffer: &[u8]) -> Option<usize> {
    let lf = memchr::memmem::find(buffer, b"\n\n").map(|i| i + 2);
    let crlf = memchr::memmem::find(buffer, b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The payload of a frame's (first) `data:` line.
pub fn frame_data(frame: &[u8]) -> Option<&[u8]> {
    frame
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"data:"))
        .map(<[u8]>::trim_ascii)
}
