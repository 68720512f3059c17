//! The part of RabbitMQ's management API that OpenBao's RabbitMQ secrets engine calls (create a
//! user, set its permissions, delete it): the far end of real Vault leases in tests. Its users
//! are the credentials Vault issued and has not revoked yet; LLM requests can be required to
//! carry the password of one of them, so a revoked or never-issued credential is refused.

use std::collections::BTreeMap;

use axum::response::Response;
use http::Method;
use serde_json::{Value, json};

use crate::respond;

/// Users as the engine created and deleted them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    /// Name → password of the users that exist now.
    pub live: BTreeMap<String, String>,
    /// Names of the users deleted (leases revoked), oldest first.
    pub deleted: Vec<String>,
}

impl Users {
    pub fn is_live_password(&self, password: &str) -> bool {
        self.live.values().any(|p| p == password)
    }
}

/// Whether `path` is one of the management API's (Ollama's `/api/chat`… are not).
pub(crate) fn is_management(path: &str) -> bool {
    path == "/api/overview"
        || [
            "/api/users/",
            "/api/permissions/",
            "/api/topic-permissions/",
        ]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

/// Answers one management API call.
pub(crate) fn handle(users: &mut Users, method: &Method, path: &str, body: &Value) -> Response {
    let empty = || respond(204, "application/json", axum::body::Body::empty());
    if path == "/api/overview" {
        return respond(
            200,
            "application/json",
            json!({"rabbitmq_version": "mock"}).to_string().into(),
        );
    }
    let Some(name) = path.strip_prefix("/api/users/") else {
        // Permissions of a user: accepted as given.
        return empty();
    };
    let name = name.replace("%40", "@");
    match *method {
        Method::PUT => {
            let password = body
                .get("password")
                .and_then(Value::as_str)
                .unwrap_or_default();
            users.live.insert(name, password.to_owned());
            respond(201, "application/json", axum::body::Body::empty())
        }
        Method::DELETE => match users.live.remove(&name) {
            Some(_) => {
                users.deleted.push(name);
                empty()
            }
            None => not_found(),
        },
        Method::GET if users.live.contains_key(&name) => respond(
            200,
            "application/json",
            json!({"name": name, "tags": ""}).to_string().into(),
        ),
        _ => not_found(),
    }
}

fn not_found() -> Response {
    respond(
        404,
        "application/json",
        json!({"error": "Object Not Found", "reason": "Not Found"})
            .to_string()
            .into(),
    )
}
