//! `vaultgate-bench-relay --port N --to HOST:PORT`: a TCP relay that does no work at all — each
//! accepted connection gets its own upstream connection and two threads that copy bytes, one per
//! direction. The benchmark puts it in front of the mock upstream to measure this machine's floor:
//! what any proxy, however fast, adds here just by being one more process on the path (two more
//! socket hand-offs and wake-ups per request). Runs until killed.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut port, mut to) = (0u16, None::<SocketAddr>);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            "--to" => to = args.next().and_then(|a| a.parse().ok()),
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
    for client in listener.incoming() {
        match client.and_then(|client| relay(client, upstream)) {
            Ok(()) => {}
            Err(e) => eprintln!("relay: {e}"),
        }
    }
    Ok(())
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}; usage: vaultgate-bench-relay --port N --to HOST:PORT");
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
