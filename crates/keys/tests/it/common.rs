//! Test harness: a real SQLite file in a temp dir or a fresh schema in the local PostgreSQL,
//! a recording fake `SecretMirror`, and helpers to call the router.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sqlx::Executor;
use tower::ServiceExt;
use vaultgate_core::{Error, Result};
use vaultgate_keys::{
    CopyRead, CopyState, KeyService, KeyServiceOptions, ManualClock, MirrorConfig, SecretMirror,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub fn postgres_base_url() -> String {
    std::env::var("VAULTGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database for one test: removed again by [`TestDb::cleanup`] (SQLite: with the temp dir).
pub struct TestDb {
    pub url: String,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(db: Db) -> Self {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("keys.db").display());
                Self {
                    url,
                    schema: None,
                    _dir: Some(dir),
                }
            }
            Db::Postgres => {
                sqlx::any::install_default_drivers();
                let schema = format!("vg_keys_test_{}", uuid::Uuid::new_v4().simple());
                let base = postgres_base_url();
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
                    .await
                    .expect(
                        "PostgreSQL on 127.0.0.1:5432 (database test) is needed for these tests",
                    );
                conn.execute(format!("CREATE SCHEMA {schema}").as_str())
                    .await
                    .unwrap();
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                Self {
                    url,
                    schema: Some(schema),
                    _dir: None,
                }
            }
        }
    }

    /// The PostgreSQL schema of this database, if it is one.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    pub async fn cleanup(self) {
        if let Some(schema) = &self.schema {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&postgres_base_url())
                .await
                .unwrap();
            conn.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                .await
                .unwrap();
        }
    }
}

/// One version of a fake secret: its value and description, and whether it was soft-deleted
/// (`Some(false)`) or destroyed (`None` value).
#[derive(Clone, Debug)]
pub struct Version {
    pub value: Option<String>,
    pub description: Option<String>,
    pub deleted: bool,
}

/// A fake KV v2 secret: versions (1-based) and custom metadata.
#[derive(Clone, Debug, Default)]
pub struct FakeSecret {
    pub versions: Vec<Version>,
    pub metadata: BTreeMap<String, String>,
}

/// KV v2 as Vault does it (versions, soft deletes, check-and-set, metadata on its own); records
/// every call; can be told to fail writes, metadata writes, deletes or reads, or to apply a
/// write and lose its answer.
#[derive(Default)]
pub struct FakeMirror {
    pub secrets: Mutex<BTreeMap<String, FakeSecret>>,
    pub ops: Mutex<Vec<String>>,
    pub fail_put: AtomicBool,
    /// Metadata writes are refused with a 403 (a policy with data rights only).
    pub deny_metadata: AtomicBool,
    pub fail_delete: AtomicBool,
    pub fail_get: AtomicBool,
    /// Data writes are applied, then answered with a timeout.
    pub lose_write_answers: AtomicBool,
    /// After an applied data write, every call fails (Vault unreachable) until reset.
    pub go_dark_after_write: AtomicBool,
}

impl FakeMirror {
    /// The latest version's value when it is readable.
    pub fn value(&self, name: &str) -> Option<String> {
        let secrets = self.secrets.lock().unwrap();
        let latest = secrets.get(name)?.versions.last()?;
        if latest.deleted {
            return None;
        }
        latest.value.clone()
    }

    pub fn metadata(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.secrets
            .lock()
            .unwrap()
            .get(name)
            .map(|s| s.metadata.clone())
    }

    pub fn ops(&self) -> Vec<String> {
        self.ops.lock().unwrap().clone()
    }

    pub fn set_failing(&self, put: bool, delete: bool) {
        self.fail_put.store(put, Ordering::SeqCst);
        self.fail_delete.store(delete, Ordering::SeqCst);
    }

    /// Writes a version as someone else would (no check-and-set).
    pub fn overwrite(&self, name: &str, value: &str) {
        self.secrets
            .lock()
            .unwrap()
            .entry(name.to_owned())
            .or_default()
            .versions
            .push(Version {
                value: Some(value.to_owned()),
                description: None,
                deleted: false,
            });
    }

    fn op(&self, op: String) {
        self.ops.lock().unwrap().push(op);
    }
}

#[async_trait]
impl SecretMirror for FakeMirror {
    async fn read(&self, name: &str, version: Option<u64>) -> Result<CopyRead> {
        self.op(format!("get {name}"));
        if self.fail_get.load(Ordering::SeqCst) {
            return Err(Error::vault("connection refused", None));
        }
        let secrets = self.secrets.lock().unwrap();
        let Some(secret) = secrets.get(name) else {
            return Ok(CopyRead {
                version: 0,
                state: CopyState::Absent,
            });
        };
        let number = version.unwrap_or(secret.versions.len() as u64);
        let Some(found) = number
            .checked_sub(1)
            .and_then(|i| secret.versions.get(usize::try_from(i).unwrap()))
        else {
            return Ok(CopyRead {
                version: 0,
                state: CopyState::Absent,
            });
        };
        let state = match (&found.value, found.deleted) {
            (None, _) => CopyState::Destroyed,
            (Some(_), true) => CopyState::Deleted,
            (Some(value), false) => CopyState::Live(SecretString::from(value.clone())),
        };
        Ok(CopyRead {
            version: number,
            state,
        })
    }

    async fn write(
        &self,
        name: &str,
        raw_key: &SecretString,
        description: Option<&str>,
        cas: u64,
    ) -> Result<Option<u64>> {
        self.op(format!("put {name}"));
        if self.fail_put.load(Ordering::SeqCst) {
            return Err(Error::vault("connection refused", None));
        }
        let mut secrets = self.secrets.lock().unwrap();
        let secret = secrets.entry(name.to_owned()).or_default();
        if secret.versions.len() as u64 != cas {
            return Ok(None);
        }
        secret.versions.push(Version {
            value: Some(raw_key.expose_secret().to_owned()),
            description: description.map(str::to_owned),
            deleted: false,
        });
        if self.go_dark_after_write.load(Ordering::SeqCst) {
            self.fail_get.store(true, Ordering::SeqCst);
            self.fail_put.store(true, Ordering::SeqCst);
            self.fail_delete.store(true, Ordering::SeqCst);
        }
        if self.lose_write_answers.load(Ordering::SeqCst) {
            return Err(Error::vault("write: Vault timed out", None));
        }
        Ok(Some(secret.versions.len() as u64))
    }

    async fn write_metadata(&self, name: &str, metadata: &BTreeMap<String, String>) -> Result<()> {
        self.op(format!("metadata {name}"));
        if self.deny_metadata.load(Ordering::SeqCst) {
            return Err(Error::vault(
                format!(
                    "Vault denied write metadata of secret/metadata/{name} (403 permission denied)"
                ),
                Some(403),
            ));
        }
        if self.fail_put.load(Ordering::SeqCst) {
            return Err(Error::vault("connection refused", None));
        }
        let mut secrets = self.secrets.lock().unwrap();
        secrets.entry(name.to_owned()).or_default().metadata = metadata.clone();
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.op(format!("delete {name}"));
        if self.fail_delete.load(Ordering::SeqCst) {
            return Err(Error::vault("Vault is sealed", Some(503)));
        }
        if let Some(latest) = self
            .secrets
            .lock()
            .unwrap()
            .get_mut(name)
            .and_then(|s| s.versions.last_mut())
        {
            latest.deleted = true;
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>> {
        Ok(self.secrets.lock().unwrap().keys().cloned().collect())
    }
}

pub struct Harness {
    pub service: KeyService,
    pub router: Router,
    pub clock: Arc<ManualClock>,
    pub mirror: Option<Arc<FakeMirror>>,
    pub db: TestDb,
}

/// Options for tests: flushes only when asked (or at shutdown), fast outbox retries.
pub fn test_options(
    url: &str,
    clock: Arc<ManualClock>,
    mirror: Option<Arc<FakeMirror>>,
) -> KeyServiceOptions {
    let mut options = KeyServiceOptions::new(url).with_clock(clock);
    options.cache_ttl = Duration::from_secs(3600);
    options.negative_cache_ttl = Duration::from_secs(3600);
    options.spend_flush_interval = Duration::from_secs(3600);
    options.budget_reset_interval = Duration::from_secs(3600);
    options.outbox_retry_min = Duration::from_millis(10);
    options.outbox_retry_max = Duration::from_millis(100);
    options.outbox_poll_interval = Duration::from_millis(20);
    if let Some(mirror) = mirror {
        options = options.with_mirror(
            MirrorConfig::new(mirror).with_description(Some("vaultgate test key".into())),
        );
    }
    options
}

impl Harness {
    pub async fn new(db: Db, with_mirror: bool) -> Self {
        Self::with_options(db, with_mirror, |_| {}).await
    }

    /// A harness whose [`test_options`] `tweak` changes first.
    pub async fn with_options(
        db: Db,
        with_mirror: bool,
        tweak: impl FnOnce(&mut KeyServiceOptions),
    ) -> Self {
        let db = TestDb::new(db).await;
        let clock = Arc::new(ManualClock::starting_now());
        let mirror = with_mirror.then(|| Arc::new(FakeMirror::default()));
        let mut options = test_options(&db.url, clock.clone(), mirror.clone());
        tweak(&mut options);
        let service = KeyService::open(options).await.unwrap();
        let router = vaultgate_keys::routes(service.clone())
            .layer(axum::Extension(vaultgate_keys::Caller::Master));
        Self {
            service,
            router,
            clock,
            mirror,
            db,
        }
    }

    pub fn mirror(&self) -> &FakeMirror {
        self.mirror.as_deref().unwrap()
    }

    /// A second service on the same database (another instance), sharing the clock and mirror.
    pub async fn another_instance(&self) -> KeyService {
        KeyService::open(test_options(
            &self.db.url,
            self.clock.clone(),
            self.mirror.clone(),
        ))
        .await
        .unwrap()
    }

    pub async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        let (status, body, _) = send(&self.router, "POST", uri, Some(body.to_string())).await;
        (status, body)
    }

    pub async fn post_raw(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        let (status, body, _) = send(&self.router, "POST", uri, Some(body.to_owned())).await;
        (status, body)
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (status, body, _) = send(&self.router, "GET", uri, None).await;
        (status, body)
    }

    /// Generates a key, asserting success; returns the response.
    pub async fn generate(&self, body: Value) -> Value {
        let (status, response) = self.post("/key/generate", body).await;
        assert_eq!(status, StatusCode::OK, "{response}");
        response
    }

    pub async fn total_keys(&self) -> u64 {
        let (status, list) = self.get("/key/list?size=1000").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["total_count"].as_u64().unwrap()
    }

    pub async fn finish(self) {
        self.service.shutdown().await;
        self.db.cleanup().await;
    }
}

pub async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<String>,
) -> (StatusCode, Value, HeaderMap) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value, headers)
}

/// The `error.param` of an OpenAI-shaped error body.
pub fn error_param(body: &Value) -> Option<&str> {
    body["error"]["param"].as_str()
}

pub fn s(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}
