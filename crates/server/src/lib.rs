//! The HTTP face of vaultgate: OpenAI-compatible routes, authentication, health and metrics.

mod access;
mod admin_models;
mod admin_spend;
mod admin_status;
mod admin_vault;
mod answer_headers;
mod auth;
mod aws_credentials;
mod charge;
mod console;
mod error_shape;
mod framing_errors;
mod google_tokens;
mod health;
mod http_client;
pub mod listen;
mod litellm_metrics;
mod messages;
mod proxy;
mod request_body;
mod request_id;
mod request_params;
mod responses;
mod routes;
mod spend_log;
mod sse;
mod starting;
mod state;
pub mod telemetry;
mod upstream;
mod vault_mirror;

pub use console::console_enabled;
pub use routes::app;
pub use starting::{DetailsAccess, Starting};
pub use state::{AppState, Options};
pub use vault_mirror::VaultMirror;
