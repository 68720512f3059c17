//! `vaultgate-mock-upstream --port N [--require-key KEY] [--answer-words N]`: the offline model of
//! the quick start and the fast upstream of the benchmark. Runs until killed. A stream sends one
//! chunk per word of the answer, so `--answer-words 200` gives streams of 200 content chunks.

use std::net::SocketAddr;

use vaultgate_mock_upstream::MockUpstream;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let mut required_key = std::env::var("MOCK_REQUIRED_KEY").ok();
    let mut answer_words = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            "--require-key" => required_key = args.next(),
            "--answer-words" => answer_words = args.next().and_then(|n| n.parse::<usize>().ok()),
            other => {
                eprintln!(
                    "unknown argument {other}; usage: vaultgate-mock-upstream --port N [--require-key KEY] [--answer-words N]"
                );
                std::process::exit(2);
            }
        }
    }
    let mock = MockUpstream::start_on(SocketAddr::from(([127, 0, 0, 1], port)), false).await?;
    mock.require_key(required_key.as_deref());
    if let Some(words) = answer_words {
        mock.set_answer(&"word ".repeat(words));
    }
    println!("mock upstream listening on {}", mock.url());
    std::future::pending::<()>().await;
    Ok(())
}
