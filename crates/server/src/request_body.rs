//! The request body as the accept loop hands it to the routes: it notes whether it was read to
//! its end, so an answer sent before that (a 401 or 413 before the body) says `Connection:
//! close` instead of leaving the client to find its keep-alive connection cut under its next
//! request.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Version, header};
use hyper::body::{Body, Frame, Incoming, SizeHint};

pin_project_lite::pin_project! {
    /// A request body that records when it has been read to its end.
    pub(crate) struct Watched {
        #[pin]
        inner: Incoming,
        read: Arc<AtomicBool>,
    }
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

/// Wraps the body of `request`; an empty body needs no watching.
pub(crate) fn watch(incoming: Incoming) -> (Watched, BodyRead) {
    let read = Arc::new(AtomicBool::new(incoming.is_end_stream()));
    let watch = (!read.load(Ordering::Relaxed)).then(|| Arc::clone(&read));
    (
        Watched {
            inner: incoming,
            read,
        },
        BodyRead(watch),
    )
}

impl Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let polled = inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => inner.is_end_stream(),
            _ => false,
        };
        if ended {
            this.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
