//! hyper answers a request it cannot parse (a malformed request line or header: 400, too many
//! or too large headers: 431, a URI too long: 414) itself, with an empty body, before any route
//! sees it. Clients of an OpenAI-compatible API expect `{"error": …}`, so the connection's
//! writer recognises those automatic answers and gives them an OpenAI-shaped body.
//!
//! hyper offers no hook for these answers; they are told apart by their head, which no answer of
//! ours has: a 4xx whose only headers are `connection: close`, `content-length: 0` and `date`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How hyper's automatic error answers begin, after the status line.
const AUTOMATIC_HEAD: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\n";

/// A connection whose automatic error answers get an OpenAI-shaped body.
pub(crate) struct WithErrorBodies<T> {
    inner: T,
    /// A rewritten answer not yet written out.
    pending: Bytes,
}

impl<T> WithErrorBodies<T> {
    pub(crate) fn new(inner: T) -> Self {
        Self {
            inner,
            pending: Bytes::new(),
        }
    }
}

/// The answer to write instead of `head` when it is one of hyper's automatic error answers.
fn rewrite(head: &[u8]) -> Option<Bytes> {
    let rest = head.strip_prefix(b"HTTP/1.1 4")?;
    let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
    let after_status = rest.get(line_end..)?;
    if !after_status.starts_with(AUTOMATIC_HEAD) || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let status = std::str::from_utf8(head.get(9..12)?).ok()?;
    let message = match status {
        "431" => "request headers are too large (too many headers, or too many bytes in them)",
        "414" => "the request URI is too long",
        _ => "the request is not valid HTTP (a malformed request line or header)",
    };
    let body = serde_json::json!({"error": {"message": message,
        "type": "invalid_request_error", "param": null, "code": status}})
    .to_string();
    let status_line = head.get(..10 + line_end)?;
    let others = after_status.get(AUTOMATIC_HEAD.len()..)?;
    let mut out = Vec::with_capacity(head.len() + body.len() + 64);
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"\r\nconnection: close\r\ncontent-type: application/json\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(others);
    out.extend_from_slice(body.as_bytes());
    Some(Bytes::from(out))
}

impl<T: AsyncWrite + Unpin> WithErrorBodies<T> {
    /// Writes out what is pending; ready once nothing is.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.advance(written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WithErrorBodies<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WithErrorBodies<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(answer) = rewrite(buf) {
            self.pending = answer;
            // Taken whole; written out here or by the flush that follows.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && first.starts_with(b"HTTP/1.1 4")
            && rewrite(first).is_some()
        {
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_error_answers_get_an_openai_body_and_ours_are_left_alone() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
            content-length: 0\r\ndate: Tue, 01 Dec 2026 15:11:39 GMT\r\n\r\n";
        let answer = rewrite(head).unwrap();
        let text = std::str::from_utf8(&answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
        assert!(
            head.ends_with("date: Tue, 01 Dec 2026 15:11:39 GMT"),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "431");
        assert_eq!(body["error"]["type"], "invalid_request_error");

        let bad = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let answer = rewrite(bad).unwrap();
        let body = std::str::from_utf8(&answer)
            .unwrap()
            .split_once("\r\n\r\n")
            .unwrap()
            .1;
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("malformed")
        );
        for ours in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\nextra",
            b"5\r\nHTTP/",
        ] {
            assert!(rewrite(ours).is_none(), "{}", String::from_utf8_lossy(ours));
        }
    }
}
