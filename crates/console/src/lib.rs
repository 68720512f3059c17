//! The admin console: a web page served by the gateway at `/ui/`.
//!
//! - [`routes`]: the embedded bundle (built from `web/` into the committed `dist/`, so
//!   `cargo build` needs no Node), with a strict Content-Security-Policy.
//! - [`session`]: console sessions, a signed `HttpOnly` cookie plus a CSRF token. The server
//!   exchanges a key for a session and accepts the session on its admin routes with the same
//!   permission checks as a key: the console has no API of its own beyond sign-in.
//!
//! Nothing here runs on the model request path.

mod assets;
pub mod session;

pub use assets::routes;
