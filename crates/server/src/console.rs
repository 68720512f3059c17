//! The admin console's routes: the page (`/ui/`) and sign-in (`/ui/api/session`), and the one
//! place where a console session is accepted on the admin API instead of a key.
//!
//! A session is only another way to present a key: it resolves to the same principal and goes
//! through the same admin routes and permission checks as `curl -H "Authorization: Bearer …"`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, Method, header};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use vaultgate_config::Config;
use vaultgate_console::session::{self, Claims, Role, Signer, Subject};
use vaultgate_core::{Error, Result};
use vaultgate_keys::{KeyRecord, hash_key, key_from_headers};
use vaultgate_secrets::Env;

use crate::state::AppState;

/// Whether the console is served: `general_settings.ui` (default on) and LiteLLM's
/// `DISABLE_ADMIN_UI`; either one turns it off.
pub fn console_enabled(config: &Config, env: &Env) -> Result<bool> {
    let disabled_by_env = match env
        .get("DISABLE_ADMIN_UI")
        .map(|v| v.trim().to_ascii_lowercase())
    {
        None => false,
        Some(value) => match value.as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" | "" => false,
            other => {
                return Err(Error::Config(format!(
                    "DISABLE_ADMIN_UI must be true or false, not '{other}'"
                )));
            }
        },
    };
    Ok(config.general_settings.ui.unwrap_or(true) && !disabled_by_env)
}

/// The page and the session routes (mounted only when the console is on).
pub fn routes(state: Arc<AppState>) -> axum::Router {
    vaultgate_console::routes().merge(
        axum::Router::new()
            .route(
                "/ui/api/session",
                get(current).post(sign_in).delete(sign_out),
            )
            .with_state(state),
    )
}

/// The role a virtual key signs in with: its user's (a key without a user cannot sign in).
fn role_of_key(keys: &vaultgate_keys::KeyService, record: &KeyRecord) -> Option<Role> {
    match keys.role_of(record)? {
        vaultgate_keys::Role::ProxyAdmin => Some(Role::Admin),
        vaultgate_keys::Role::ProxyAdminViewer => Some(Role::Viewer),
        vaultgate_keys::Role::InternalUser | vaultgate_keys::Role::InternalUserViewer => {
            Some(Role::InternalUser)
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl AppState {
    /// The signer for the current master key; `None` without one (no console sign-in then).
    fn signer(&self) -> Option<Signer> {
        let master = self.master_key.as_ref()?;
        let secrets = self.secrets.snapshot();
        let value = secrets.value(master).filter(|v| !v.is_empty())?;
        Some(Signer::new(value))
    }

    /// The valid session of this request, if it carries one. A virtual key's session is checked
    /// against the key store, so a blocked, expired or deleted key has no session.
    async fn session(&self, headers: &HeaderMap) -> Result<Option<(Signer, Claims)>> {
        let Some(cookie) = session::cookie_value(headers) else {
            return Ok(None);
        };
        let Some(signer) = self.signer() else {
            return Ok(None);
        };
        let Some(mut claims) = signer.verify(cookie, now_secs()) else {
            return Ok(None);
        };
        if let Subject::Key(token) = &claims.sub {
            let Some(keys) = &self.keys else {
                return Ok(None);
            };
            let record = match keys.get_key(token).await? {
                Some(record) if !record.blocked && !record.is_expired(now_secs() * 1000) => record,
                _ => return Ok(None),
            };
            match role_of_key(keys, &record) {
                Some(role) => claims.role = role,
                None => return Ok(None),
            }
        }
        Ok(Some((signer, claims)))
    }

    /// The caller of a management route when it comes with a console session instead of a key
    /// (`None`: no session, or a key in the header): the session's CSRF token is checked on
    /// anything but a read; what the caller may do is then the key service's permission table.
    pub async fn session_caller(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<vaultgate_keys::Caller>> {
        if !self.console || key_from_headers(headers).is_some() {
            return Ok(None);
        }
        let Some((signer, claims)) = self.session(headers).await? else {
            return Ok(None);
        };
        if !session::is_read(method) && !signer.csrf_ok(&claims, headers) {
            return Err(Error::Forbidden(
                "the console session's CSRF token is missing or wrong: reload the page".into(),
            ));
        }
        match &claims.sub {
            Subject::Master => Ok(Some(vaultgate_keys::Caller::Master)),
            Subject::Key(token) => match &self.keys {
                Some(keys) => Ok(keys
                    .get_key(token)
                    .await?
                    .map(|record| vaultgate_keys::Caller::Key(Arc::new(record)))),
                None => Ok(None),
            },
        }
    }

    /// Admin routes: the master key in a header (as curl sends it), or a console session whose
    /// role allows `method`, with the session's CSRF token on anything but a read.
    pub async fn require_admin(&self, method: &Method, headers: &HeaderMap) -> Result<()> {
        if !self.console || key_from_headers(headers).is_some() {
            return self.require_master(headers).await;
        }
        match self.session(headers).await? {
            Some((signer, claims)) => {
                if !session::is_read(method) && !signer.csrf_ok(&claims, headers) {
                    return Err(Error::Forbidden(
                        "the console session's CSRF token is missing or wrong: reload the page"
                            .into(),
                    ));
                }
                if !claims.role.may(method) {
                    return Err(Error::Forbidden(match claims.role {
                        Role::InternalUser => {
                            "internal users see their own keys and spend, not the whole gateway"
                                .into()
                        }
                        _ => "your role may read but not change anything here".into(),
                    }));
                }
                Ok(())
            }
            None => self.require_master(headers).await,
        }
    }
}

fn features(app: &AppState) -> Value {
    json!({
        "keys": app.keys.is_some(),
        "vault_mirror": app.mirror_prefix.is_some(),
    })
}

fn session_json(
    app: &AppState,
    signer: &Signer,
    claims: &Claims,
    (subject, user_id): (String, Option<String>),
) -> Value {
    json!({
        "signed_in": true,
        "role": claims.role,
        "subject": subject,
        "user_id": user_id,
        "expires_at": claims.exp,
        "csrf_token": signer.csrf_token(claims),
        "features": features(app),
    })
}

/// What the page shows for who signed in (never the key, only its name) and their user.
async fn subject_label(app: &AppState, claims: &Claims) -> (String, Option<String>) {
    let record = match (&claims.sub, &app.keys) {
        (Subject::Master, _) => return ("master key".into(), None),
        (Subject::Key(token), Some(keys)) => keys.get_key(token).await.ok().flatten(),
        (Subject::Key(_), None) => None,
    };
    match record {
        Some(record) => (record.key_name, record.user_id),
        None => ("a virtual key".into(), None),
    }
}

/// `GET /ui/api/session`: who is signed in, and the CSRF token (readable only by this origin);
/// `{"signed_in": false}` without a valid session (an answer, not an error, for the page).
async fn current(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Result<Json<Value>> {
    let Some((signer, claims)) = app.session(&headers).await? else {
        return Ok(Json(json!({
            "signed_in": false,
            "master_key_set": app.master_key.is_some(),
            "features": features(&app),
        })));
    };
    let subject = subject_label(&app, &claims).await;
    Ok(Json(session_json(&app, &signer, &claims, subject)))
}

/// `POST /ui/api/session` `{"key": "sk-…"}`: exchanges a key for a session cookie.
async fn sign_in(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let key = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("key").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| Error::bad_param("key", "send {\"key\": \"sk-…\"}"))?;
    let key = key.trim();
    let Some(signer) = app.signer() else {
        return Err(Error::bad_request(
            "the console needs general_settings.master_key: set it to sign in",
        ));
    };
    let is_master = {
        let secrets = app.secrets.snapshot();
        let master = app
            .master_key
            .as_ref()
            .and_then(|m| secrets.value(m))
            .unwrap_or_default();
        !master.is_empty() && bool::from(key.as_bytes().ct_eq(master.as_bytes()))
    };
    let now = now_secs();
    let (claims, subject) = if is_master {
        (
            Claims::new(Subject::Master, Role::Admin, now),
            ("master key".to_owned(), None),
        )
    } else {
        let Some(keys) = &app.keys else {
            return Err(Error::Unauthorized("wrong key".into()));
        };
        let record = keys
            .authenticate(key)
            .await
            .map_err(|_| Error::Unauthorized("wrong key".into()))?;
        let Some(role) = role_of_key(keys, &record) else {
            return Err(Error::Forbidden(
                "this key may not sign in to the console: it belongs to no user (sign in with \
                 the master key or a user's key)"
                    .into(),
            ));
        };
        (
            Claims::new(Subject::Key(hash_key(key)), role, now),
            (record.key_name.clone(), record.user_id.clone()),
        )
    };
    tracing::info!(role = ?claims.role, subject = %subject.0, "console sign-in");
    let cookie = session::set_cookie(&signer.issue(&claims), session::is_https(&headers))
        .ok_or_else(|| Error::Internal("session cookie".into()))?;
    let body = session_json(&app, &signer, &claims, subject);
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// `DELETE /ui/api/session`: ends the session in this browser.
async fn sign_out() -> Response {
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Json(json!({"signed_out": true})),
    )
        .into_response()
}
