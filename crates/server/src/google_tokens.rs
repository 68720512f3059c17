//! OAuth access tokens of Vertex AI deployments, minted from their service accounts and cached
//! by credential (deployments that share a key share its token, wildcard ones included). A
//! background task replaces each token a third of its lifetime before it expires, so requests
//! find a valid token in the cache; only the first request of a key (or one after every
//! refresh failed until expiry) waits for the token endpoint, once for all callers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use vaultgate_core::{Error, FastMap, Result};
use vaultgate_providers::vertex::auth::{
    AccessToken, Credential, ServiceAccount, parse_token_response,
};

use vaultgate_providers::{Deployment, Resolved};

use crate::http_client::{HttpClient, read_all};
use crate::state::AppState;

/// How long one token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest sleep of the refresher (it wakes sooner when a token is due).
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Shortest sleep, so a failing endpoint is not hammered.
const MIN_SLEEP: Duration = Duration::from_secs(1);
/// A key no request used for this long is forgotten (a rotated key's old entry).
const IDLE_LIMIT: Duration = Duration::from_secs(2 * 3600);

/// The bearer a Vertex request carries.
pub enum Bearer {
    /// `vertex_credentials` is a ready token: sent as it is.
    AsConfigured,
    /// A token minted from a service account (and the account's project, the default one).
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
    refresher: std::sync::Once,
}

struct Entry {
    /// Where the account comes from: parsed once, or a file re-read at every refresh.
    source: Source,
    token: ArcSwapOption<AccessToken>,
    project: Mutex<Option<Arc<str>>>,
    /// One token request at a time per key.
    fetching: tokio::sync::Mutex<()>,
    last_used: AtomicU64,
    /// Why the last refresh failed (shown in logs; cleared by a success).
    error: Mutex<Option<String>>,
}

enum Source {
    Account(Box<ServiceAccount>),
    File(String),
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
                refresher: std::sync::Once::new(),
            }),
        }
    }

    /// The cached token of `credentials`, if one is usable now (the request path's lookup).
    pub fn cached(&self, credentials: &str) -> Option<Bearer> {
        let entries = self.inner.entries.read().ok()?;
        let entry = entries.get(credentials)?;
        let token = entry
            .token
            .load_full()
            .filter(|t| t.usable_at(SystemTime::now()))?;
        entry.last_used.store(now_secs(), Ordering::Relaxed);
        Some(Bearer::Minted {
            token,
            project: entry.project.lock().ok().and_then(|p| p.clone()),
        })
    }

    /// The bearer for `credentials`: cached, a ready token, or minted now (once for all
    /// concurrent callers of the same key).
    pub async fn bearer(&self, deployment: &str, credentials: &str) -> Result<Bearer> {
        if let Some(bearer) = self.cached(credentials) {
            return Ok(bearer);
        }
        let entry = {
            let existing = self
                .inner
                .entries
                .read()
                .ok()
                .and_then(|e| e.get(credentials).cloned());
            match existing {
                Some(entry) => entry,
                None => {
                    let source = match Credential::classify(credentials)
                        .map_err(|e| Error::Config(format!("deployment {deployment}: {e}")))?
                    {
                        Credential::Token => return Ok(Bearer::AsConfigured),
                        Credential::ServiceAccount(account) => Source::Account(account),
                        Credential::File(path) => Source::File(path),
                    };
                    self.insert(credentials, source)
                }
            }
        };
        let _one = entry.fetching.lock().await;
        if let Some(token) = entry
            .token
            .load_full()
            .filter(|t| t.usable_at(SystemTime::now()))
        {
            return Ok(Bearer::Minted {
                token,
                project: entry.project.lock().ok().and_then(|p| p.clone()),
            });
        }
        let token = self.inner.fetch(&entry).await.map_err(|e| {
            Error::Unavailable(format!(
                "deployment {deployment}: no Google access token: {e}"
            ))
        })?;
        entry.last_used.store(now_secs(), Ordering::Relaxed);
        Ok(Bearer::Minted {
            token,
            project: entry.project.lock().ok().and_then(|p| p.clone()),
        })
    }

    /// Drops the cached token of `credentials` (the upstream refused it); true if there was one.
    pub fn forget(&self, credentials: &str) -> bool {
        let Ok(entries) = self.inner.entries.read() else {
            return false;
        };
        entries
            .get(credentials)
            .is_some_and(|entry| entry.token.swap(None).is_some())
    }

    fn insert(&self, credentials: &str, source: Source) -> Arc<Entry> {
        let entry = Arc::new(Entry {
            source,
            token: ArcSwapOption::empty(),
            project: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            last_used: AtomicU64::new(now_secs()),
            error: Mutex::new(None),
        });
        let entry = match self.inner.entries.write() {
            Ok(mut entries) => Arc::clone(
                entries
                    .entry(credentials.into())
                    .or_insert_with(|| Arc::clone(&entry)),
            ),
            Err(_) => entry,
        };
        let weak = Arc::downgrade(&self.inner);
        self.inner
            .refresher
            .call_once(|| drop(tokio::spawn(refresh_loop(weak))));
        entry
    }
}

impl Inner {
    /// Mints a token for the entry's account and stores it.
    async fn fetch(&self, entry: &Entry) -> Result<Arc<AccessToken>> {
        let result = self.try_fetch(entry).await;
        if let Ok(mut error) = entry.error.lock() {
            *error = result.as_ref().err().map(ToString::to_string);
        }
        result
    }

    async fn try_fetch(&self, entry: &Entry) -> Result<Arc<AccessToken>> {
        let from_file;
        let account = match &entry.source {
            Source::Account(account) => account.as_ref(),
            Source::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    Error::Config(format!("vertex_credentials: cannot read {path}: {e}"))
                })?;
                from_file = ServiceAccount::from_json(&text)?;
                &from_file
            }
        };
        if let Ok(mut project) = entry.project.lock() {
            *project = account.project_id.as_deref().map(Arc::from);
        }
        let now = SystemTime::now();
        let request = account.token_request(now)?;
        let exchange = async {
            let response = self.http.send("google-oauth", request).await?;
            let status = response.status();
            let body = read_all(response.into_body())
                .await
                .map_err(|e| Error::UpstreamUnreachable(format!("token answer broke off: {e}")))?;
            parse_token_response(status, &body, now)
        };
        let token = tokio::time::timeout(TOKEN_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                Error::UpstreamTimeout(format!("no token answer in {TOKEN_TIMEOUT:?}"))
            })??;
        let token = Arc::new(token);
        entry.token.store(Some(Arc::clone(&token)));
        Ok(token)
    }
}

/// Replaces tokens when they are due, forgets idle keys; ends when the cache is dropped.
async fn refresh_loop(inner: Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let entries: Vec<(Box<str>, Arc<Entry>)> = match inner.entries.read() {
            Ok(entries) => entries
                .iter()
                .map(|(k, v)| (k.clone(), Arc::clone(v)))
                .collect(),
            Err(_) => return,
        };
        let mut next = SystemTime::now() + MAX_SLEEP;
        for (key, entry) in entries {
            let idle = now_secs().saturating_sub(entry.last_used.load(Ordering::Relaxed));
            if idle > IDLE_LIMIT.as_secs() {
                if let Ok(mut map) = inner.entries.write() {
                    map.remove(&key);
                }
                continue;
            }
            let due = || {
                let at = entry.token.load().as_ref().map(|t| t.refresh_at());
                at.is_none_or(|at| at <= SystemTime::now())
            };
            if due() {
                let _one = entry.fetching.lock().await;
                // A request may have minted one meanwhile.
                if due()
                    && let Err(error) = inner.fetch(&entry).await
                {
                    tracing::warn!(%error, "refreshing a Vertex AI access token failed; retrying");
                    continue;
                }
            }
            if let Some(at) = entry.token.load().as_ref().map(|t| t.refresh_at()) {
                next = next.min(at);
            }
        }
        drop(inner);
        let sleep = next
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .clamp(MIN_SLEEP, MAX_SLEEP);
        tokio::time::sleep(sleep).await;
    }
}

impl Bearer {
    /// Puts the bearer in a request's resolved settings: the token as the Bearer key, the
    /// account's project where the deployment names none.
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
        let Some(credentials) = vertex
            .vertex_credentials
            .as_ref()
            .and_then(|v| secrets.value(v))
        else {
            return Err(Error::Unavailable(format!(
                "deployment {}: vertex_credentials has no value",
                deployment.id
            )));
        };
        if let Some(bearer) = app.google_tokens.cached(credentials) {
            return Ok(Some(bearer));
        }
        credentials.to_owned()
    };
    app.google_tokens
        .bearer(&deployment.id, &credentials)
        .await
        .map(Some)
}

/// The upstream refused a Vertex deployment's token: forget it, so the next try mints anew.
pub(crate) fn forget_vertex_token(app: &AppState, deployment: &Deployment) -> bool {
    let Some(value) = deployment
        .vertex
        .as_deref()
        .and_then(|v| v.vertex_credentials.as_ref())
    else {
        return false;
    };
    let secrets = app.secrets.snapshot();
    secrets
        .value(value)
        .is_some_and(|credentials| app.google_tokens.forget(credentials))
}
