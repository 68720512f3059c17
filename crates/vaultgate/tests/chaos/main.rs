//! The chaos suite: real OpenBao, PostgreSQL, gateway and upstream processes faulted while a
//! bounded concurrent load runs, each scenario asserting what the README's Security section
//! promises under that fault. Waits are bounded polls, never sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
mod load;

mod kill;
mod postgres;
mod timeouts;
mod vault;
