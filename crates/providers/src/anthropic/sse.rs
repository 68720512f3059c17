//! A minimal incremental SSE reader: splits arbitrary byte chunks into the `data` payloads of
//! whole events. Lines are only decoded once complete, so a chunk boundary inside a UTF-8
//! sequence or a `\r\n` pair is harmless.

/// An upstream line longer than this is treated as a broken stream rather than buffered forever.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// The line-length limit was exceeded; the stream cannot be trusted any more.
#[derive(Debug)]
pub(super) struct LineTooLong;

#[derive(Debug, Default)]
pub(super) struct SseReader {
    /// Bytes of an incomplete line.
    line: Vec<u8>,
    /// `data:` lines of the event being read, joined by `\n` as the SSE spec says.
    data: String,
    has_data: bool,
}

impl SseReader {
    /// Consumes a chunk; returns the data of every event it completed, in order.
    pub(super) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>, LineTooLong> {
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
    pub(super) fn finish(&mut self) -> Option<String> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut events);
        }
        self.dispatch(&mut events);
        events.pop()
    }

    fn line_done(&mut self, line: &[u8], events: &mut Vec<String>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
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
