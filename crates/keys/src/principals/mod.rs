//! LiteLLM's management plane beside the keys: teams and their members, internal users and their
//! roles, organizations, end users (customers) and shared budgets. The records live in the key
//! store ([`store`]); the request path reads them from memory only ([`directory`], [`chain`]);
//! the management routes ([`routes`]) ask one permission table ([`access`]) who may do what.

pub mod access;
pub(crate) mod budgets;
pub(crate) mod chain;
pub(crate) mod common;
pub(crate) mod directory;
pub(crate) mod end_users;
pub(crate) mod members;
pub mod model;
pub(crate) mod org_members;
pub(crate) mod orgs;
pub(crate) mod resets;
pub(crate) mod routes;
pub(crate) mod store;
pub(crate) mod team_vault;
pub mod teams;
pub mod users;
