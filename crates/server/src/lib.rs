//! The HTTP face of vaultgate: OpenAI-compatible routes, authentication, health and metrics.

mod auth;
mod proxy;
mod routes;
mod sse;
mod state;
pub mod telemetry;
mod upstream;

pub use routes::app;
pub use state::{AppState, Options};
