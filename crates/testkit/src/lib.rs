//! Test support: real OpenBao dev servers, the real gateway binary on port 0 with a temp config,
//! and the recording mock upstream. Used only by tests and the benchmark.

pub mod openbao;
pub mod gateway;

pub use gateway::{Gateway, GatewayBuilder};
