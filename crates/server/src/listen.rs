//! The accept loop: HTTP/1.1 and HTTP/2 on hyper with the limits a public port needs (a header
//! read timeout that is also the idle keep-alive timeout, a body read timeout, a connection cap below the open-file
//! limit, `Connection: close` on an answer sent before its request body was read) and a bounded
//! drain at shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use vaultgate_core::Error;

/// How long a client may take to send a request head, counted from the connection's start or
/// from the end of its previous answer (so it is the idle keep-alive timeout too).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send a request body.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long in-flight requests and streams may take to finish after SIGTERM.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// At most one "connection limit reached" line per this interval.
const LIMIT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The limits of the listening socket.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body, counted from its head.
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub drain_timeout: Duration,
}

/// Serves `service` on `listener` until `shutdown`, then stops accepting and gives in-flight
/// requests `drain_timeout` to finish.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    shutdown: CancellationToken,
) -> Result<(), Error>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusals = Refusals::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(error) => {
                // Out of file descriptors or a connection reset before accept: not fatal.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without TCP_NODELAY, a stream's second small write waits for the client's delayed
        // ACK (~40 ms on Linux) under Nagle's algorithm.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an accepted connection");
        }
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refusals.note(limits.max_connections);
            tokio::spawn(refuse(tcp));
            continue;
        };
        let service = service.clone();
        let body_read_timeout = limits.body_read_timeout;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let version = request.version();
            let (parts, incoming) = request.into_parts();
            let (body, read) = crate::request_body::watch(incoming, body_read_timeout);
            let answer = service
                .clone()
                .oneshot(Request::from_parts(parts, Body::new(body)));
            async move {
                let mut response = answer.await?;
                read.finish(version, &mut response);
                Ok::<_, Infallible>(response)
            }
        });
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            // hyper's own timer starts with the first request head; a connection that never
            // sends a byte is closed here (HTTP/2 detection waits for bytes without a timeout).
            let mut first = [0u8; 1];
            if tokio::time::timeout(header_read_timeout, tcp.peek(&mut first))
                .await
                .is_err()
            {
                return;
            }
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(crate::framing_errors::WithErrorBodies::new(tcp)),
                service,
            );
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let open = graceful.count();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!(
                connections = open,
                "drain timeout ({:?}) reached: closing the connections still open",
                limits.drain_timeout
            );
        }
    }
    Ok(())
}

/// Counts refused connections and says so in the log, at most every [`LIMIT_LOG_INTERVAL`].
#[derive(Default)]
struct Refusals {
    since_log: AtomicU64,
    last_log: std::sync::Mutex<Option<Instant>>,
}

impl Refusals {
    fn note(&self, limit: usize) {
        metrics::counter!("vaultgate_connections_refused_total").increment(1);
        let count = self.since_log.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut last) = self.last_log.lock() else {
            return;
        };
        if last.is_none_or(|at| at.elapsed() >= LIMIT_LOG_INTERVAL) {
            *last = Some(Instant::now());
            self.since_log.store(0, Ordering::Relaxed);
            tracing::warn!(
                limit,
                refused = count,
                "connection limit reached: new connections get 503 until open ones close \
                 (raise it with --max-connections and the open-file limit)"
            );
        }
    }
}

/// A connection over the limit gets a short 503 in OpenAI's shape, then is closed.
async fn refuse(mut tcp: TcpStream) {
    let body =
        Error::Unavailable("too many open connections to this gateway; retry shortly".into())
            .to_body();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(&body).await?;
        tcp.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}
