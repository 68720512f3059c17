//! Integration tests of vaultgate-keys against a real SQLite file and the local PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cluster;
mod common;
mod lifecycle;
mod migrations;
mod mirror;
mod request_path;
mod spend_logs;
mod vault_faults;
