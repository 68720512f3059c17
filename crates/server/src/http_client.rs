//! The pooled HTTP client of every upstream call: hyper's client over rustls (HTTP/1.1, and
//! HTTP/2 where the upstream offers it), keeping connections warm. A destination the environment
//! sends through a proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, minus `NO_PROXY`) goes through
//! reqwest, which speaks to proxies; every other call skips its per-request layers (redirects,
//! URL re-parsing), which cost more than the rest of the client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioExecutor;
use vaultgate_core::{Error, Result};
use vaultgate_providers::UpstreamRequest;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upstream answer's body, whichever client fetched it.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const PROXY_VARIABLES: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

pub struct HttpClient {
    direct: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Set when the environment names a proxy.
    proxied: Option<(Matcher, reqwest::Client)>,
}

impl HttpClient {
    pub fn new() -> Result<Self> {
        let build_error = |e: &dyn std::fmt::Display| {
            Error::Internal(format!("cannot build the upstream HTTP client: {e}"))
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // Probes idle pooled connections, so one a middlebox dropped is noticed before use.
        http.set_keepalive(Some(TCP_KEEPALIVE));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(provider)
            .map_err(|e| build_error(&e))?
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let direct = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(https);
        let proxied = if PROXY_VARIABLES
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
        {
            let client = reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .pool_idle_timeout(IDLE_TIMEOUT)
                .tcp_keepalive(TCP_KEEPALIVE)
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| build_error(&e))?;
            Some((Matcher::from_env(), client))
        } else {
            None
        };
        Ok(Self { direct, proxied })
    }

    /// Sends one request; `deployment` names the upstream in errors (never its URL, which may
    /// carry credentials of an OpenAI-compatible server).
    pub async fn send(
        &self,
        deployment: &str,
        request: UpstreamRequest,
    ) -> Result<http::Response<UpstreamBody>> {
        if let Some((matcher, client)) = &self.proxied
            && matcher.intercept(request.uri()).is_some()
        {
            let request = reqwest::Request::try_from(request)
                .map_err(|e| unreachable(deployment, &e.without_url()))?;
            let response = client.execute(request).await.map_err(|e| {
                let e = e.without_url();
                if e.is_timeout() {
                    Error::UpstreamTimeout(format!("deployment {deployment}: {e}"))
                } else {
                    unreachable(deployment, &e)
                }
            })?;
            let response: http::Response<reqwest::Body> = response.into();
            return Ok(response.map(|body| body.map_err(BoxError::from).boxed()));
        }
        let response = self
            .direct
            .request(request.map(Full::new))
            .await
            .map_err(|e| unreachable(deployment, &e))?;
        Ok(response.map(|body| body.map_err(BoxError::from).boxed()))
    }
}

/// The error and its causes in one line ("client error (Connect): tcp connect error: …").
fn unreachable(deployment: &str, error: &dyn std::error::Error) -> Error {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Error::UpstreamUnreachable(format!("deployment {deployment}: {message}"))
}

/// Reads a whole body.
pub async fn read_all(body: UpstreamBody) -> std::result::Result<Bytes, BoxError> {
    Ok(body.collect().await?.to_bytes())
}
