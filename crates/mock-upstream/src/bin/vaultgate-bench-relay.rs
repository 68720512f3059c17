//! `vaultgate-bench-relay --port N --to HOST:PORT [--http]`: a relay for the benchmark's floors.
//! Runs until killed.
//!
//! - By default a TCP relay that does no work at all — each accepted connection gets its own
//!   upstream connection and two threads that copy bytes, one per direction: what any proxy,
//!   however fast, adds on this machine just by being one more process on the path (two more
//!   socket hand-offs and wake-ups per request).
//! - `--http`: the gateway's HTTP stack and nothing else — hyper's server (hyper-util's `auto`
//!   builder, as the gateway's listener) and hyper-util's pooled client on one current-thread
//!   tokio runtime (as `--num_workers 1`); each request's body read whole and sent on, the
//!   answer streamed back. What it costs per request is what the gateway cannot go below
//!   without another HTTP implementation.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut port, mut to, mut http) = (0u16, None::<SocketAddr>, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            "--to" => to = args.next().and_then(|a| a.parse().ok()),
            "--http" => http = true,
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let Some(upstream) = to else {
        usage("--to HOST:PORT is required")
    };
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    println!(
        "relay listening on {} for {upstream}",
        listener.local_addr()?
    );
    io::stdout().flush()?;
    if http {
        return http_relay::run(listener, upstream);
    }
    for client in listener.incoming() {
        match client.and_then(|client| relay(client, upstream)) {
            Ok(()) => {}
            Err(e) => eprintln!("relay: {e}"),
        }
    }
    Ok(())
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}; usage: vaultgate-bench-relay --port N --to HOST:PORT [--http]");
    std::process::exit(2)
}

/// Connects `client` to a new upstream connection and copies both ways until either side closes.
fn relay(client: TcpStream, upstream: SocketAddr) -> io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    for stream in [&client, &server] {
        stream.set_nodelay(true)?;
    }
    let (client_in, server_in) = (client.try_clone()?, server.try_clone()?);
    thread::spawn(move || pipe(client_in, server));
    thread::spawn(move || pipe(server_in, client));
    Ok(())
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    // An error only ends this connection; either way both sides learn that it is over.
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

mod http_relay {
    use std::convert::Infallible;
    use std::io;
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;

    type Upstream = Client<HttpConnector, Full<Bytes>>;
    type Answer = http::Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>>;

    pub fn run(listener: std::net::TcpListener, upstream: SocketAddr) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let upstream = http::uri::Authority::try_from(upstream.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            let client: Upstream = Client::builder(TokioExecutor::new()).build(connector);
            let mut server = auto::Builder::new(TokioExecutor::new());
            server.http1().keep_alive(true);
            let server = std::sync::Arc::new(server);
            loop {
                let (tcp, _) = listener.accept().await?;
                tcp.set_nodelay(true)?;
                let (client, server) = (client.clone(), std::sync::Arc::clone(&server));
                let upstream = upstream.clone();
                let service = hyper::service::service_fn(move |request| {
                    forward(client.clone(), upstream.clone(), request)
                });
                tokio::spawn(async move {
                    if let Err(e) = server.serve_connection(TokioIo::new(tcp), service).await {
                        eprintln!("relay: {e}");
                    }
                });
            }
        })
    }

    /// Reads the body whole (as the gateway does, to parse it), sends it on, streams the answer.
    async fn forward(
        client: Upstream,
        upstream: http::uri::Authority,
        request: http::Request<Incoming>,
    ) -> Result<Answer, Infallible> {
        let (mut parts, body) = request.into_parts();
        let answer = async {
            let mut uri = http::uri::Parts::default();
            uri.scheme = Some(http::uri::Scheme::HTTP);
            uri.authority = Some(upstream);
            uri.path_and_query = parts.uri.path_and_query().cloned();
            parts.uri = http::Uri::from_parts(uri).map_err(|e| e.to_string())?;
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            let response = client
                .request(http::Request::from_parts(parts, Full::new(body)))
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(response.map(BodyExt::boxed))
        };
        Ok(answer.await.unwrap_or_else(|e| {
            let mut response = http::Response::new(
                Full::new(Bytes::from(e))
                    .map_err(|never| match never {})
                    .boxed(),
            );
            *response.status_mut() = http::StatusCode::BAD_GATEWAY;
            response
        }))
    }
}
