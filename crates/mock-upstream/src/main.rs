//! `vaultgate-mock-upstream --port N [--require-key KEY]`: the offline model of the quick start
//! and the fast upstream of the benchmark. Runs until killed.

use std::net::SocketAddr;

use vaultgate_mock_upstream::MockUpstream;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let mut required_key = std::env::var("MOCK_REQUIRED_KEY").ok();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            "--require-key" => required_key = args.next(),
            other => {
                eprintln!(
                    "unknown argument {other}; usage: vaultgate-mock-upstream --port N [--require-key KEY]"
                );
                std::process::exit(2);
            }
        }
    }
    let mock = MockUpstream::start_on(SocketAddr::from(([127, 0, 0, 1], port)), false).await?;
    mock.require_key(required_key.as_deref());
    println!("mock upstream listening on {}", mock.url());
    std::future::pending::<()>().await;
    Ok(())
}
