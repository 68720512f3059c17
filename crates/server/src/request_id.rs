//! `x-request-id` on every response: the client's when it sent a sane one, else a new one. The
//! same id is LiteLLM's call id (`x-litellm-call-id`), and is put in the request's own headers
//! so handlers (spend logs) see it.
//!
//! A plain tower layer rather than `axum::middleware::from_fn`, which boxes a future and clones
//! the router for every request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_LITELLM_CALL_ID: HeaderName = HeaderName::from_static("x-litellm-call-id");

/// Adds `x-request-id` to every response of the service it wraps.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestId { inner }
    }
}

#[derive(Clone, Debug)]
pub struct RequestId<S> {
    inner: S,
}

impl<S> tower::Service<Request> for RequestId<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = WithRequestId<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = match client_request_id(request.headers()) {
            Some(id) => id.clone(),
            None => {
                let id = new_request_id();
                request.headers_mut().insert(X_REQUEST_ID, id.clone());
                id
            }
        };
        WithRequestId {
            inner: self.inner.call(request),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The wrapped service's future; stamps the id on its response.
    pub struct WithRequestId<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, E> Future for WithRequestId<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            let headers = response.headers_mut();
            headers.insert(X_LITELLM_CALL_ID, id.clone());
            headers.insert(X_REQUEST_ID, id);
        }
        Poll::Ready(Ok(response))
    }
}

/// The client's id when it is short printable ASCII (it ends up in logs).
fn client_request_id(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers.get(X_REQUEST_ID).filter(|v| {
        v.len() <= 128
            && v.to_str()
                .is_ok_and(|s| s.bytes().all(|b| b.is_ascii_graphic()))
    })
}

/// A random (version 4) UUID from the thread-local generator: no system call and no string
/// allocation per request, unlike `Uuid::new_v4().to_string()`.
fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buffer = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buffer))
        .unwrap_or(HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_request_ids_are_distinct_version_4_uuids() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(a.to_str().unwrap()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(a.to_str().unwrap(), parsed.hyphenated().to_string());
    }

    #[test]
    fn a_sane_client_id_is_kept_and_any_other_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("trace-42"));
        assert_eq!(client_request_id(&headers).unwrap(), "trace-42");
        for bad in ["two words", &"x".repeat(129)] {
            headers.insert(X_REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            assert!(client_request_id(&headers).is_none(), "{bad:?}");
        }
    }
}
