//! The request body as the accept loop hands it to the routes. It notes whether it was read to
//! its end, so an answer sent before that (a 401 or 413 before the body) says `Connection:
//! close` instead of leaving the client to find its keep-alive connection cut under its next
//! request; and it fails once the client has taken longer than the body read timeout to send
//! it, so a body trickled a byte at a time cannot hold a connection (and a task) for ever.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Version, header};
use hyper::body::{Body, Frame, Incoming, SizeHint};

pin_project_lite::pin_project! {
    /// A request body that records when it has been read to its end.
    pub(crate) struct Watched {
        #[pin]
        inner: Incoming,
        read: Arc<AtomicBool>,
        // Boxed: only a request with a body pays for a timer.
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        timeout: Duration,
    }
}

/// The client did not send its whole body within the body read timeout.
#[derive(Debug)]
pub(crate) struct BodyReadTimeout(pub Duration);

impl std::fmt::Display for BodyReadTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {}s (--body-read-timeout)",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyReadTimeout {}

/// Whether `error` is (or wraps) a [`BodyReadTimeout`].
pub(crate) fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<BodyReadTimeout>() {
            return true;
        }
        next = error.source();
    }
    false
}

/// Whether a request's body was read to its end by the time its answer is ready.
pub(crate) struct BodyRead(Option<Arc<AtomicBool>>);

impl BodyRead {
    /// Marks `response` as the connection's last when its request body was left unread on an
    /// HTTP/1 connection (hyper closes the connection then; HTTP/2 resets just the stream).
    pub(crate) fn finish<B>(&self, version: Version, response: &mut http::Response<B>) {
        let unread = self.0.as_ref().is_some_and(|r| !r.load(Ordering::Acquire));
        if unread && version <= Version::HTTP_11 {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// Wraps the body of a request that arrived just now, to be read within `timeout`; an empty
/// body needs no watching.
pub(crate) fn watch(incoming: Incoming, timeout: Duration) -> (Watched, BodyRead) {
    let empty = incoming.is_end_stream();
    let read = Arc::new(AtomicBool::new(empty));
    let watch = (!empty).then(|| Arc::clone(&read));
    let deadline = (!empty).then(|| Box::pin(tokio::time::sleep(timeout)));
    (
        Watched {
            inner: incoming,
            read,
            deadline,
            timeout,
        },
        BodyRead(watch),
    )
}

impl Body for Watched {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let polled = inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => inner.is_end_stream(),
            Poll::Ready(Some(Err(_))) => false,
            Poll::Pending => {
                if let Some(deadline) = this.deadline
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Some(Err(Box::new(BodyReadTimeout(*this.timeout)))));
                }
                false
            }
        };
        if ended {
            this.read.store(true, Ordering::Release);
            *this.deadline = None;
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
