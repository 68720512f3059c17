//! OAuth access tokens of Vertex AI deployments, minted from their service accounts or gcloud
//! user credentials, or taken from the metadata server, and cached by credential (deployments
//! that share a key share its token, wildcard ones included; those without
//! `vertex_credentials` share the application default credentials, found once at start). The
//! tokens of the deployments are first fetched at start, and a background task replaces each
//! a third of its lifetime before it expires, so requests find a valid token in the cache;
//! only a request of a key not seen at start (or one after every refresh failed until
//! expiry) waits for the token endpoint, once for all callers.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use vaultgate_core::{Error, FastMap, Result};
use vaultgate_providers::vertex::adc::{self, AdcSource};
use vaultgate_providers::vertex::auth::{AccessToken, Credential, GoogleKey, parse_token_response};

use vaultgate_providers::{Deployment, Resolved};

mod refresher;

use crate::credentials_health::CredentialStatus;
use crate::http_client::{HttpClient, read_all};
use crate::state::AppState;

/// How long one token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest sleep of the refresher (it wakes sooner when a token is due).
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Shortest sleep, so a failing endpoint is not hammered.
const MIN_SLEEP: Duration = Duration::from_secs(1);
/// Longest wait between tries of a failing source (1 s, doubling).
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A key no request used for this long is forgotten (a rotated key's old entry).
const IDLE_LIMIT: Duration = Duration::from_secs(2 * 3600);

/// The bearer a Vertex request carries.
pub enum Bearer {
    /// `vertex_credentials` is a ready token: sent as it is.
    AsConfigured,
    /// A token minted or fetched (and the credentials' project, the default one).
    Minted {
        token: Arc<AccessToken>,
        project: Option<Arc<str>>,
    },
}

pub struct GoogleTokens {
    inner: Arc<Inner>,
}

struct Inner {
    http: Arc<HttpClient>,
    /// By the credential value as configured (key JSON, base64 of it, or a file path).
    entries: RwLock<FastMap<Box<str>, Arc<Entry>>>,
    /// The application default credentials of deployments without `vertex_credentials`.
    adc: OnceLock<Arc<Entry>>,
    refresher: std::sync::Once,
}

struct Entry {
    /// Where the token comes from: a key parsed once, a file re-read at every refresh, or the
    /// metadata server.
    source: Source,
    /// A project that wins over the credentials' own (`GOOGLE_CLOUD_PROJECT` for ADC).
    project_override: Option<Arc<str>>,
    token: ArcSwapOption<AccessToken>,
    project: Mutex<Option<Arc<str>>>,
    /// One token request at a time per key.
    fetching: tokio::sync::Mutex<()>,
    last_used: AtomicU64,
    /// Why the last refresh failed (readiness and logs; cleared by a success).
    error: Mutex<Option<String>>,
    /// Failed fetches in a row, and when the refresher tries again.
    failures: AtomicU32,
    retry_at: Mutex<Option<SystemTime>>,
}

enum Source {
    Key(GoogleKey),
    /// A credentials file; `setting` names who pointed at it, for errors.
    File {
        path: String,
        setting: &'static str,
    },
    Metadata {
        host: String,
    },
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl GoogleTokens {
    pub fn new(http: Arc<HttpClient>) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                entries: RwLock::default(),
                adc: OnceLock::new(),
                refresher: std::sync::Once::new(),
            }),
        }
    }

    /// The entry of `credentials` (`None`: the application default credentials), if known.
    fn entry(&self, credentials: Option<&str>) -> Option<Arc<Entry>> {
        match credentials {
            None => self.inner.adc.get().cloned(),
            Some(credentials) => self.inner.entries.read().ok()?.get(credentials).cloned(),
        }
    }

    /// The cached token of `credentials`, if one is usable now (the request path's lookup).
    pub fn cached(&self, credentials: Option<&str>) -> Option<Bearer> {
        let entry = self.entry(credentials)?;
        let token = entry
            .token
            .load_full()
            .filter(|t| t.usable_at(SystemTime::now()))?;
        entry.last_used.store(now_secs(), Ordering::Relaxed);
        Some(entry.bearer(token))
    }

    /// The entry of `credentials`, made if new; `None` for a ready token.
    fn entry_or_insert(&self, credentials: Option<&str>) -> Result<Option<Arc<Entry>>> {
        if let Some(entry) = self.entry(credentials) {
            return Ok(Some(entry));
        }
        let Some(credentials) = credentials else {
            return Ok(Some(self.adc()));
        };
        let source = match Credential::classify(credentials)? {
            Credential::Token => return Ok(None),
            Credential::Key(key) => Source::Key(key),
            Credential::File(path) => Source::File {
                path,
                setting: "vertex_credentials",
            },
        };
        let entry = Arc::new(Entry::new(source, None));
        let entry = match self.inner.entries.write() {
            Ok(mut entries) => Arc::clone(
                entries
                    .entry(credentials.into())
                    .or_insert_with(|| Arc::clone(&entry)),
            ),
            Err(_) => entry,
        };
        self.start_refresher();
        Ok(Some(entry))
    }

    /// The application default credentials, found on first use (at start): google-auth's
    /// chain, and `GOOGLE_CLOUD_PROJECT` (or `GCLOUD_PROJECT`) as their project if set.
    fn adc(&self) -> Arc<Entry> {
        let entry = self.inner.adc.get_or_init(|| {
            let env = |name: &str| std::env::var(name).ok();
            let found = adc::application_default(env, std::path::Path::is_file);
            tracing::info!(source = %found,
                "Vertex AI deployments without vertex_credentials use application default credentials");
            let source = match found {
                AdcSource::File { path, from } => Source::File {
                    path: path.display().to_string(),
                    setting: from,
                },
                AdcSource::Metadata { host } => Source::Metadata { host },
            };
            let project = ["GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT"]
                .iter()
                .find_map(|name| env(name).filter(|p| !p.trim().is_empty()));
            Arc::new(Entry::new(source, project.map(Arc::from)))
        });
        self.start_refresher();
        Arc::clone(entry)
    }

    fn start_refresher(&self) {
        let weak = Arc::downgrade(&self.inner);
        self.inner
            .refresher
            .call_once(|| drop(tokio::spawn(refresher::refresh_loop(weak))));
    }

    /// Makes the entry of a deployment's credentials at start, so its first token is fetched
    /// in the background (and a failure is logged and shown in readiness) before any request.
    pub(crate) fn prepare(&self, deployment: &str, credentials: Option<&str>) {
        if let Err(error) = self.entry_or_insert(credentials) {
            tracing::warn!(%deployment, %error, "the Vertex AI credentials cannot be used");
        }
    }

    /// The bearer for `credentials` (`None`: application default credentials): cached, a
    /// ready token, or fetched now (once for all concurrent callers of the same key).
    pub async fn bearer(&self, deployment: &str, credentials: Option<&str>) -> Result<Bearer> {
        if let Some(bearer) = self.cached(credentials) {
            return Ok(bearer);
        }
        let Some(entry) = self
            .entry_or_insert(credentials)
            .map_err(|e| Error::Config(format!("deployment {deployment}: {e}")))?
        else {
            return Ok(Bearer::AsConfigured);
        };
        let unavailable = |e: &dyn std::fmt::Display| {
            Error::Unavailable(format!(
                "deployment {deployment}: no Google access token: {e}"
            ))
        };
        // While the source fails, requests get its error at once; the refresher retries.
        if let Some(error) = entry.failing() {
            return Err(unavailable(&error));
        }
        let _one = entry.fetching.lock().await;
        if let Some(token) = entry
            .token
            .load_full()
            .filter(|t| t.usable_at(SystemTime::now()))
        {
            return Ok(entry.bearer(token));
        }
        if let Some(error) = entry.failing() {
            return Err(unavailable(&error));
        }
        let token = self
            .inner
            .fetch(&entry)
            .await
            .map_err(|e| unavailable(&e))?;
        entry.last_used.store(now_secs(), Ordering::Relaxed);
        Ok(entry.bearer(token))
    }

    /// Drops the cached token of `credentials` (the upstream refused it); true if there was one.
    pub fn forget(&self, credentials: Option<&str>) -> bool {
        self.entry(credentials)
            .is_some_and(|entry| entry.token.swap(None).is_some())
    }

    /// What readiness shows of `credentials` (`None`: application default credentials).
    pub(crate) fn status(&self, credentials: Option<&str>) -> CredentialStatus {
        let mut status = CredentialStatus {
            source: "token",
            detail: None,
            fixed: true,
            obtained: None,
            expires: None,
            usable: true,
            error: None,
        };
        let entry = match credentials {
            None => self.adc(),
            Some(value) => match self.entry(Some(value)) {
                Some(entry) => entry,
                None => {
                    match Credential::classify(value) {
                        Ok(Credential::Token) => {}
                        // Not fetched yet (a value Vault changed since start): the next
                        // request fetches it.
                        Ok(_) => {
                            status.source = "pending";
                            (status.fixed, status.usable) = (false, false);
                        }
                        Err(error) => {
                            status.source = "invalid";
                            (status.fixed, status.usable) = (false, false);
                            status.error = Some(error.to_string());
                        }
                    }
                    return status;
                }
            },
        };
        (status.source, status.detail) = match (&entry.source, credentials) {
            (Source::Key(key), _) => (key.kind(), None),
            (Source::File { path, .. }, Some(_)) => ("key_file", Some(path.clone())),
            (Source::File { path, setting }, None) => {
                ("application_default", Some(format!("{path} ({setting})")))
            }
            (Source::Metadata { host }, _) => (
                "application_default",
                Some(format!("the metadata server at {host}")),
            ),
        };
        let token = entry.token.load_full();
        status.fixed = false;
        status.obtained = token.as_ref().map(|t| t.issued);
        status.expires = token.as_ref().map(|t| t.expires);
        status.usable = token.is_some_and(|t| t.usable_at(SystemTime::now()));
        status.error = entry.error.lock().ok().and_then(|e| e.clone());
        status
    }
}

impl Entry {
    fn new(source: Source, project_override: Option<Arc<str>>) -> Self {
        Self {
            source,
            project: Mutex::new(project_override.clone()),
            project_override,
            token: ArcSwapOption::empty(),
            fetching: tokio::sync::Mutex::new(()),
            last_used: AtomicU64::new(now_secs()),
            error: Mutex::new(None),
            failures: AtomicU32::new(0),
            retry_at: Mutex::new(None),
        }
    }

    fn bearer(&self, token: Arc<AccessToken>) -> Bearer {
        Bearer::Minted {
            token,
            project: self.project.lock().ok().and_then(|p| p.clone()),
        }
    }

    fn set_project(&self, project: Option<Arc<str>>) {
        if let Ok(mut slot) = self.project.lock() {
            *slot = self.project_override.clone().or(project);
        }
    }

    /// The last fetch's error while the refresher waits to try again.
    fn failing(&self) -> Option<String> {
        let waiting = self
            .retry_at
            .lock()
            .ok()
            .and_then(|r| *r)
            .is_some_and(|at| at > SystemTime::now());
        waiting
            .then(|| self.error.lock().ok().and_then(|e| e.clone()))
            .flatten()
    }

    /// Records a fetch's outcome; after a failure the refresher waits 1 s, 2 s, 4 s … 30 s.
    fn record(&self, error: Option<String>) {
        let failures = match error {
            None => {
                self.failures.store(0, Ordering::Relaxed);
                0
            }
            Some(_) => self
                .failures
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1),
        };
        if let Ok(mut retry_at) = self.retry_at.lock() {
            *retry_at = (failures > 0).then(|| {
                let backoff = Duration::from_secs(1 << failures.min(6).saturating_sub(1));
                SystemTime::now() + backoff.min(MAX_BACKOFF)
            });
        }
        if let Ok(mut slot) = self.error.lock() {
            *slot = error;
        }
    }
}

impl Inner {
    /// Fetches a token for the entry and stores it.
    async fn fetch(&self, entry: &Entry) -> Result<Arc<AccessToken>> {
        let result = self.try_fetch(entry).await;
        entry.record(result.as_ref().err().map(ToString::to_string));
        result
    }

    async fn try_fetch(&self, entry: &Entry) -> Result<Arc<AccessToken>> {
        let now = SystemTime::now();
        let token = match &entry.source {
            Source::Key(key) => {
                entry.set_project(key.project().map(Arc::from));
                self.exchange("google-oauth", key.token_request(now)?, now)
                    .await?
            }
            Source::File { path, setting } => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| Error::Config(format!("{setting}: cannot read {path}: {e}")))?;
                let key = GoogleKey::from_json(&text)
                    .map_err(|e| Error::Config(format!("{path} ({setting}): {e}")))?;
                entry.set_project(key.project().map(Arc::from));
                self.exchange("google-oauth", key.token_request(now)?, now)
                    .await?
            }
            Source::Metadata { host } => {
                let fetched = self
                    .exchange("google-metadata", adc::metadata_token_request(host)?, now)
                    .await
                    .map_err(|e| {
                        Error::Unavailable(format!(
                            "no application default credentials: GOOGLE_APPLICATION_CREDENTIALS \
                             is not set, gcloud's application_default_credentials.json was not \
                             found, and the metadata server at {host} gave no token: {e}"
                        ))
                    })?;
                let known = entry.project.lock().ok().is_some_and(|p| p.is_some());
                if !known {
                    entry.set_project(self.metadata_project(host).await.map(Arc::from));
                }
                fetched
            }
        };
        let token = Arc::new(token);
        entry.token.store(Some(Arc::clone(&token)));
        Ok(token)
    }

    /// Sends a token request and reads the answer, within [`TOKEN_TIMEOUT`].
    async fn exchange(
        &self,
        label: &str,
        request: vaultgate_providers::UpstreamRequest,
        now: SystemTime,
    ) -> Result<AccessToken> {
        let exchange = async {
            let response = self.http.send(label, request).await?;
            let status = response.status();
            let body = read_all(response.into_body())
                .await
                .map_err(|e| Error::UpstreamUnreachable(format!("token answer broke off: {e}")))?;
            parse_token_response(status, &body, now)
        };
        tokio::time::timeout(TOKEN_TIMEOUT, exchange)
            .await
            .map_err(|_| Error::UpstreamTimeout(format!("no token answer in {TOKEN_TIMEOUT:?}")))?
    }

    /// The metadata server's project id, if it gives one.
    async fn metadata_project(&self, host: &str) -> Option<String> {
        let request = adc::metadata_project_request(host).ok()?;
        let ask = async {
            let response = self.http.send("google-metadata", request).await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let body = read_all(response.into_body()).await.ok()?;
            let project = String::from_utf8(body.to_vec()).ok()?;
            let project = project.trim();
            (!project.is_empty()).then(|| project.to_owned())
        };
        tokio::time::timeout(TOKEN_TIMEOUT, ask)
            .await
            .ok()
            .flatten()
    }
}

impl Bearer {
    /// Puts the bearer in a request's resolved settings: the token as the Bearer key, the
    /// credentials' project where the deployment names none.
    pub fn apply<'a>(&'a self, resolved: &mut Resolved<'a>) {
        match self {
            Self::AsConfigured => resolved.api_key = resolved.vertex.credentials,
            Self::Minted { token, project } => {
                resolved.api_key = Some(token.secret());
                if resolved.vertex.project.is_none() {
                    resolved.vertex.project = project.as_deref();
                }
            }
        }
    }
}

/// The `vertex_credentials` value of a Vertex deployment now: `Ok(None)` when it names none
/// (application default credentials), an error when its reference has no value.
fn credentials_of<'a>(
    secrets: &'a vaultgate_secrets::SecretMap,
    deployment: &Deployment,
    vertex: &'a vaultgate_config::VertexParams,
) -> Result<Option<&'a str>> {
    match &vertex.vertex_credentials {
        None => Ok(None),
        Some(value) => secrets.value(value).map(Some).ok_or_else(|| {
            Error::Unavailable(format!(
                "deployment {}: vertex_credentials has no value",
                deployment.id
            ))
        }),
    }
}

/// The bearer of a Vertex AI deployment's request (`None` for other providers), from the
/// cache without waiting in steady state.
pub(crate) async fn vertex_bearer(
    app: &AppState,
    deployment: &Deployment,
) -> Result<Option<Bearer>> {
    let Some(vertex) = deployment.vertex.as_deref() else {
        return Ok(None);
    };
    let credentials = {
        let secrets = app.secrets.snapshot();
        let credentials = credentials_of(&secrets, deployment, vertex)?;
        if let Some(bearer) = app.google_tokens.cached(credentials) {
            return Ok(Some(bearer));
        }
        credentials.map(str::to_owned)
    };
    app.google_tokens
        .bearer(&deployment.id, credentials.as_deref())
        .await
        .map(Some)
}

/// The upstream refused a Vertex deployment's token: forget it, so the next try mints anew.
pub(crate) fn forget_vertex_token(app: &AppState, deployment: &Deployment) -> bool {
    let Some(vertex) = deployment.vertex.as_deref() else {
        return false;
    };
    let secrets = app.secrets.snapshot();
    credentials_of(&secrets, deployment, vertex)
        .is_ok_and(|credentials| app.google_tokens.forget(credentials))
}

/// Starts fetching the tokens of the router's Vertex deployments (see [`GoogleTokens::prepare`]).
pub(crate) fn prepare_vertex(app: &AppState) {
    let secrets = app.secrets.snapshot();
    for deployment in app.router.deployments() {
        let Some(vertex) = deployment.vertex.as_deref() else {
            continue;
        };
        if deployment.mock_response.is_some() {
            continue;
        }
        if let Ok(credentials) = credentials_of(&secrets, deployment, vertex) {
            app.google_tokens.prepare(&deployment.id, credentials);
        }
    }
}

/// What readiness shows of a Vertex deployment's credentials.
pub(crate) fn vertex_status(app: &AppState, deployment: &Deployment) -> CredentialStatus {
    let secrets = app.secrets.snapshot();
    let credentials = deployment.vertex.as_deref().map_or(Ok(None), |vertex| {
        credentials_of(&secrets, deployment, vertex)
    });
    match credentials {
        Ok(credentials) => app.google_tokens.status(credentials),
        Err(error) => CredentialStatus {
            source: "missing",
            detail: None,
            fixed: false,
            obtained: None,
            expires: None,
            usable: false,
            error: Some(error.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_source_waits_out_a_growing_backoff_and_its_error_answers_meanwhile() {
        let entry = Entry::new(
            Source::Metadata {
                host: "127.0.0.1:9".into(),
            },
            Some(Arc::from("p")),
        );
        assert!(entry.failing().is_none());
        assert_eq!(entry.project.lock().unwrap().as_deref(), Some("p"));
        let wait = |entry: &Entry| {
            let at = entry.retry_at.lock().unwrap().unwrap();
            at.duration_since(SystemTime::now()).unwrap_or_default()
        };
        entry.record(Some("refused".into()));
        assert_eq!(entry.failing().as_deref(), Some("refused"));
        assert!(wait(&entry) <= Duration::from_secs(1));
        entry.record(Some("refused".into()));
        entry.record(Some("refused".into()));
        assert!(wait(&entry) > Duration::from_secs(2), "4 s after the third");
        for _ in 0..40 {
            entry.record(Some("refused".into()));
        }
        assert!(wait(&entry) <= MAX_BACKOFF);
        entry.record(None);
        assert!(entry.failing().is_none() && entry.retry_at.lock().unwrap().is_none());
        assert!(entry.error.lock().unwrap().is_none());
        // The override wins over the credentials' project.
        entry.set_project(Some(Arc::from("from-key")));
        assert_eq!(entry.project.lock().unwrap().as_deref(), Some("p"));
    }
}
