//! The gateway while its secrets are not in yet (Vault down at start): liveness answers,
//! readiness says "not ready", every other route is a 503 in OpenAI's shape. Each connection
//! switches to the real app on its next request once [`Starting::ready`] has been called.
//!
//! Only used when the first start-up attempt failed; a gateway that starts normally serves its
//! router directly, without this layer.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready, ready};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use subtle::ConstantTimeEq;
use vaultgate_core::Error;
use vaultgate_keys::key_from_headers;

use crate::routes::Gateway;

/// Seconds a client is told to wait before trying again.
const RETRY_AFTER_SECS: u64 = 5;

/// Who may see why the gateway is not ready (the error names Vault's address).
pub struct DetailsAccess {
    /// `general_settings.public_readiness_details`.
    pub public: bool,
    /// Keys known without Vault (a master key or metrics key written in the file or taken from
    /// the environment) that open the details.
    pub keys: Vec<String>,
}

/// A cloneable service for `axum::serve`: one clone per connection.
#[derive(Clone)]
pub struct Starting {
    shared: Arc<Shared>,
    /// The real app once this connection has seen it.
    app: Option<Gateway>,
}

struct Shared {
    app: OnceLock<Gateway>,
    started: Instant,
    last_error: Mutex<(u32, String)>,
    details: DetailsAccess,
}

impl Starting {
    pub fn new(first_error: String, details: DetailsAccess) -> Self {
        Self {
            shared: Arc::new(Shared {
                app: OnceLock::new(),
                started: Instant::now(),
                last_error: Mutex::new((1, first_error)),
                details,
            }),
            app: None,
        }
    }

    /// Records a failed attempt (shown in readiness details).
    pub fn failed(&self, attempts: u32, error: String) {
        if let Ok(mut last) = self.shared.last_error.lock() {
            *last = (attempts, error);
        }
    }

    /// Hands every connection the real app from its next request on.
    pub fn ready(&self, app: Gateway) {
        let _ = self.shared.app.set(app);
    }

    fn answer(&self, request: &Request) -> Response {
        match request.uri().path() {
            "/health/liveliness" | "/health/liveness" => axum::Json("I'm alive!").into_response(),
            "/health/readiness" => self.readiness(request),
            _ => {
                let error = Error::Unavailable(
                    "vaultgate is starting: its secrets are not loaded from Vault yet; it keeps \
                     retrying"
                        .into(),
                );
                let mut response = error.into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                response
            }
        }
    }

    fn readiness(&self, request: &Request) -> Response {
        let details = &self.shared.details;
        let presented = key_from_headers(request.headers());
        let allowed = details.public
            || presented.is_some_and(|key| {
                details
                    .keys
                    .iter()
                    .any(|known| bool::from(known.as_bytes().ct_eq(key.as_bytes())))
            });
        let body = if allowed {
            let (attempts, error) = self
                .shared
                .last_error
                .lock()
                .map(|last| last.clone())
                .unwrap_or_default();
            json!({
                "status": "not ready",
                "reason": "secrets not loaded yet",
                "attempts": attempts,
                "last_error": error,
                "waiting_secs": self.shared.started.elapsed().as_secs(),
            })
        } else {
            json!({"status": "not ready"})
        };
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

impl tower::Service<Request> for Starting {
    type Response = Response;
    type Error = Infallible;
    type Future =
        Either<<Gateway as tower::Service<Request>>::Future, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if self.app.is_none() {
            self.app = self.shared.app.get().cloned();
        }
        match &mut self.app {
            Some(app) => Either::Left(tower::Service::call(app, request)),
            None => Either::Right(ready(Ok(self.answer(&request)))),
        }
    }
}
