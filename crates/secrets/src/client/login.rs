//! Logging in to Vault and keeping the token alive: login with the configured method (with
//! backoff), renewal at ~2/3 of the TTL, re-login when renewal is refused or stops growing, and
//! the background task that does it for as long as a client exists.

use super::*;

impl VaultClient {
    pub(super) async fn lookup_self(&self, token: &SecretString) -> Result<Reply> {
        let url = self.api_url(None, "auth/token/lookup-self")?;
        let ns = self.inner.settings.login_namespace.clone();
        let reply = self
            .send("lookup", Method::GET, url, None, Some(token), ns.as_deref())
            .await?;
        if reply.status != StatusCode::OK {
            return Err(Error::vault(
                format!(
                    "token lookup-self: {} {}",
                    reply.status.as_u16(),
                    reply.errors()
                ),
                Some(reply.status.as_u16()),
            ));
        }
        Ok(reply)
    }

    /// Logs in unless someone already did since `seen_generation` (single-flight).
    pub(super) async fn relogin(&self, seen_generation: Option<u64>) -> Result<()> {
        let _guard = self.inner.login_lock.lock().await;
        let current = self.inner.token.load_full();
        if let (Some(seen), Some(current)) = (seen_generation, &current)
            && current.generation != seen
        {
            return Ok(());
        }
        let generation = current.map_or(1, |c| c.generation + 1);
        match self.login_once(generation).await {
            Ok(state) => {
                m::token_ttl(state.ttl_secs);
                self.inner.logins.fetch_add(1, Ordering::Relaxed);
                self.inner.token.store(Some(Arc::new(state)));
                self.set_auth_error(None);
                self.inner.replan.notify_one();
                Ok(())
            }
            Err(error) => {
                self.set_auth_error(Some(format!("login: {error}")));
                Err(error)
            }
        }
    }

    pub(super) fn set_auth_error(&self, error: Option<String>) {
        if let Ok(mut slot) = self.inner.auth_error.lock() {
            *slot = error;
        }
    }

    /// `POST auth/{mount}/login` with the login namespace header; the new token.
    pub(super) async fn login_at(&self, mount: &str, body: Value) -> Result<SecretString> {
        let s = &self.inner.settings;
        let url = self.api_url(None, &format!("auth/{mount}/login"))?;
        let ns = s.login_namespace.as_deref();
        let reply = self
            .send("login", Method::POST, url, Some(&body), None, ns)
            .await?;
        let token = reply
            .body
            .as_ref()
            .and_then(|b| b.pointer("/auth/client_token"))
            .and_then(Value::as_str);
        match (reply.status.is_success(), token) {
            (true, Some(token)) => Ok(SecretString::from(token.to_owned())),
            _ => Err(Error::vault(
                format!(
                    "{} login at auth/{mount}: {} {}",
                    s.auth.method(),
                    reply.status.as_u16(),
                    reply.errors()
                ),
                Some(reply.status.as_u16()),
            )),
        }
    }

    /// Obtains a token with the configured method and looks it up.
    pub(super) async fn login_once(&self, generation: u64) -> Result<TokenState> {
        let s = &self.inner.settings;
        let token = match &s.auth {
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                self.login_at(
                    mount,
                    json!({"role_id": role_id, "secret_id": secret_id.expose_secret()}),
                )
                .await?
            }
            VaultAuth::Cert { mount, role } => {
                let body = match role {
                    Some(role) => json!({ "name": role }),
                    None => json!({}),
                };
                self.login_at(mount, body).await?
            }
            VaultAuth::Kubernetes {
                mount,
                role,
                jwt_path,
            } => {
                let jwt = tokio::fs::read_to_string(jwt_path).await.map_err(|e| {
                    Error::Config(format!(
                        "cannot read the Kubernetes service account token {}: {e}",
                        jwt_path.display()
                    ))
                })?;
                self.login_at(mount, json!({ "role": role, "jwt": jwt.trim() }))
                    .await?
            }
            VaultAuth::Token { token } => token.clone(),
        };
        let measured = Instant::now();
        let reply = self.lookup_self(&token).await?;
        let data = reply.body.as_ref().and_then(|b| b.get("data"));
        let ttl_secs = secs(data.and_then(|d| d.get("ttl")));
        let creation_ttl = secs(data.and_then(|d| d.get("creation_ttl")));
        Ok(TokenState {
            token,
            generation,
            ttl_secs,
            measured,
            logged_in: measured,
            renewable: data
                .and_then(|d| d.get("renewable"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            policies: strings(data.and_then(|d| d.get("policies"))),
            increment_secs: if creation_ttl > 0 {
                creation_ttl
            } else {
                ttl_secs
            },
            growing: true,
        })
    }

    /// Renews the token; `Ok(false)` when Vault refused (the token must be replaced).
    pub(super) async fn renew(&self, state: &TokenState) -> Result<bool> {
        let url = self.api_url(None, "auth/token/renew-self")?;
        let body = json!({ "increment": format!("{}s", state.increment_secs) });
        let ns = self.inner.settings.login_namespace.clone();
        let measured = Instant::now();
        let reply = self
            .send(
                "renew",
                Method::POST,
                url,
                Some(&body),
                Some(&state.token),
                ns.as_deref(),
            )
            .await?;
        if reply.status == StatusCode::BAD_REQUEST || reply.status == StatusCode::FORBIDDEN {
            tracing::warn!(status = reply.status.as_u16(), errors = %reply.errors(), "Vault refused to renew the token");
            return Ok(false);
        }
        if !reply.status.is_success() {
            return Err(Error::vault(
                format!(
                    "token renew-self: {} {}",
                    reply.status.as_u16(),
                    reply.errors()
                ),
                Some(reply.status.as_u16()),
            ));
        }
        let auth = reply.body.as_ref().and_then(|b| b.get("auth"));
        let ttl_secs = secs(auth.and_then(|a| a.get("lease_duration")));
        // Capped below what we asked for: the max TTL is near, renewing further is useless.
        let growing = ttl_secs >= state.increment_secs;
        if !growing {
            tracing::info!(
                ttl_secs,
                "Vault token reached its max TTL; will log in again before it expires"
            );
        }
        let renewed = TokenState {
            token: state.token.clone(),
            generation: state.generation,
            ttl_secs,
            measured,
            logged_in: state.logged_in,
            renewable: auth
                .and_then(|a| a.get("renewable"))
                .and_then(Value::as_bool)
                .unwrap_or(state.renewable),
            policies: state.policies.clone(),
            increment_secs: state.increment_secs,
            growing,
        };
        m::token_ttl(ttl_secs);
        self.inner.renewals.fetch_add(1, Ordering::Relaxed);
        // Only replace the state if no login happened meanwhile.
        let current = self.inner.token.load_full();
        if current.is_some_and(|c| c.generation == state.generation) {
            self.inner.token.store(Some(Arc::new(renewed)));
        }
        Ok(true)
    }

    /// One step of token upkeep; returns how long to wait before the next one.
    pub(super) async fn maintain(&self, backoff: &mut Duration) -> Duration {
        let Some(state) = self.inner.token.load_full() else {
            return self.login_with_backoff(None, backoff).await;
        };
        let can_relogin = self.can_relogin();
        if state.ttl_secs == 0 {
            // Never expires: just check it is still valid now and then.
            if let Err(error) = self.lookup_self(&state.token).await {
                self.set_auth_error(Some(error.to_string()));
                if can_relogin && error_status(&error) == Some(403) {
                    return self
                        .login_with_backoff(Some(state.generation), backoff)
                        .await;
                }
                return next_backoff(backoff);
            }
            self.set_auth_error(None);
            *backoff = LOGIN_BACKOFF_MIN;
            return NON_EXPIRING_CHECK;
        }
        let expired = state.remaining().is_zero();
        if state.renewable && state.growing && !(expired && can_relogin) {
            match self.renew(&state).await {
                Ok(true) => {
                    self.set_auth_error(None);
                    *backoff = LOGIN_BACKOFF_MIN;
                    return self.plan();
                }
                Ok(false) if can_relogin => {
                    return self
                        .login_with_backoff(Some(state.generation), backoff)
                        .await;
                }
                Ok(false) => {
                    self.set_auth_error(Some("Vault refused to renew the configured token".into()));
                    return self.plan_static_expiry();
                }
                Err(error) => {
                    tracing::warn!(error = %error, "Vault token renewal failed; will retry");
                    self.set_auth_error(Some(format!("renewal: {error}")));
                    // Retry with backoff, but while the token lives, before it expires.
                    let wait = next_backoff(backoff);
                    let remaining = state.remaining();
                    if remaining.is_zero() {
                        return wait;
                    }
                    return wait.min(remaining / 2).max(Duration::from_millis(200));
                }
            }
        }
        if can_relogin {
            return self
                .login_with_backoff(Some(state.generation), backoff)
                .await;
        }
        self.plan_static_expiry()
    }

    pub(super) async fn login_with_backoff(
        &self,
        seen: Option<u64>,
        backoff: &mut Duration,
    ) -> Duration {
        match self.relogin(seen).await {
            Ok(()) => {
                *backoff = LOGIN_BACKOFF_MIN;
                self.plan()
            }
            Err(error) => {
                let wait = next_backoff(backoff);
                tracing::warn!(error = %error, retry_in_secs = wait.as_secs_f64(), "Vault login failed");
                wait
            }
        }
    }

    /// When to act next for the current token: ~2/3 of the remaining lease, with jitter.
    pub(super) fn plan(&self) -> Duration {
        match self.inner.token.load_full() {
            None => LOGIN_BACKOFF_MIN,
            Some(state) if state.ttl_secs == 0 => NON_EXPIRING_CHECK,
            Some(state) => jitter(state.remaining().mul_f64(2.0 / 3.0), 0.9, 1.0)
                .max(Duration::from_millis(200)),
        }
    }

    /// A static token that can no longer be renewed: nothing to do but report its expiry.
    pub(super) fn plan_static_expiry(&self) -> Duration {
        let remaining = self
            .inner
            .token
            .load_full()
            .map(|s| s.remaining())
            .unwrap_or_default();
        if remaining.is_zero() {
            self.set_auth_error(Some("the configured Vault token has expired".into()));
            return NON_EXPIRING_CHECK;
        }
        remaining + Duration::from_millis(100)
    }
}

/// Returns the current backoff (with jitter) and doubles it up to the maximum.
pub(super) fn next_backoff(backoff: &mut Duration) -> Duration {
    let wait = jitter(*backoff, 0.9, 1.1);
    *backoff = (*backoff * 2).min(LOGIN_BACKOFF_MAX);
    wait
}

/// Keeps the token alive for as long as a client exists: renew at ~2/3 of the TTL, re-login
/// when renewal is refused or stops growing, back off 1 s → 5 min on failure, forever.
/// Holds only a `Weak` between steps so dropping the last client ends it.
pub(super) async fn renewal_task(
    weak: Weak<Inner>,
    replan: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut backoff = LOGIN_BACKOFF_MIN;
    let mut wait = match weak.upgrade() {
        Some(inner) => VaultClient {
            inner,
            location: None,
        }
        .plan(),
        None => return,
    };
    loop {
        let woken = tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => false,
            () = replan.notified() => true,
        };
        let Some(inner) = weak.upgrade() else { return };
        let client = VaultClient {
            inner,
            location: None,
        };
        wait = if woken {
            client.plan()
        } else {
            client.maintain(&mut backoff).await
        };
    }
}
