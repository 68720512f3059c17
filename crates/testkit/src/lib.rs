//! Test support: real OpenBao dev servers, the real gateway binary on port 0 with a temp config,
//! and the recording mock upstream. Used only by tests and the benchmark.

pub mod gateway;
pub mod openbao;

pub use gateway::{Gateway, GatewayBuilder};

/// The Python with the `openai` SDK: `$VAULTGATE_PYTHON`, else `<workspace>/.venv/bin/python`.
pub fn python() -> std::process::Command {
    let path = std::env::var("VAULTGATE_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python").to_owned()
    });
    std::process::Command::new(path)
}

pub mod moto;
pub mod postgres;
pub mod redis;
