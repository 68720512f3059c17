//! `KeyService`: the LiteLLM key-management operations, the Vault mirror with its persistent
//! outbox, authentication with an in-memory cache, and the background tasks.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vaultgate_core::{Error, FastHashState, Result};

use crate::clock::{Clock, SystemClock};
use crate::limits::LiveMap;
use crate::mirror::{DriftKey, DriftReport, MirrorConfig};
use crate::model::{
    KeyRecord, describe_key, format_ms, generate_raw_key, hash_key, is_raw_key, key_name,
    parse_duration, secret_name, token_of,
};
use crate::request::{Body, KeyFields, Patch};
use crate::spend::{SpendMsg, SpendWriter};
use crate::store::{self, Backend, ListFilter, Store, db_err, is_unique_violation};

/// Settings of the key service. `new(url)` gives the defaults.
#[derive(Clone)]
pub struct KeyServiceOptions {
    /// `sqlite://path?mode=rwc` (default store) or `postgres://…`.
    pub database_url: String,
    /// The Vault mirror, when `store_virtual_keys` is on.
    pub mirror: Option<MirrorConfig>,
    /// How long a looked-up key is trusted without re-reading the store. After this the cached
    /// record is still served while one background read refreshes it, so a hot key never waits
    /// on the store; other instances' changes become visible after about this long (this
    /// instance's own changes at once).
    pub cache_ttl: Duration,
    /// How much longer than `cache_ttl` an unrefreshed record may be served (an idle key is then
    /// dropped and read again on its next use).
    pub cache_max_stale: Duration,
    /// How long an unknown key is remembered as unknown (keeps floods of bad keys off the store).
    pub negative_cache_ttl: Duration,
    pub cache_capacity: u64,
    /// Cost (USD) assumed for a request of a budgeted key before any of its requests finished
    /// on this instance. Bounds the budget overrun while costs are unknown; `f64::INFINITY`
    /// admits only one request at a time until the first cost is known.
    pub unknown_request_cost_estimate: f64,
    /// Size of the database connection pool (an in-memory SQLite database always uses 1).
    pub max_connections: u32,
    /// How often recorded spend is written to the store (requests only queue it meanwhile).
    pub spend_flush_interval: Duration,
    /// Most usage events in one write: a tick that finds more queued writes several batches.
    pub spend_batch_max: usize,
    /// How often the store is scanned for budgets to reset.
    pub budget_reset_interval: Duration,
    /// First retry delay of a failed Vault deletion; doubles per attempt up to `outbox_retry_max`.
    pub outbox_retry_min: Duration,
    pub outbox_retry_max: Duration,
    /// Longest sleep of the outbox worker (it also wakes when work is queued on this instance).
    pub outbox_poll_interval: Duration,
    pub clock: Arc<dyn Clock>,
}

impl KeyServiceOptions {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            mirror: None,
            cache_ttl: Duration::from_secs(60),
            cache_max_stale: Duration::from_secs(600),
            negative_cache_ttl: Duration::from_secs(5),
            cache_capacity: 100_000,
            max_connections: 8,
            unknown_request_cost_estimate: 1.0,
            spend_flush_interval: Duration::from_secs(1),
            spend_batch_max: 1_000,
            budget_reset_interval: Duration::from_secs(60),
            outbox_retry_min: Duration::from_secs(1),
            outbox_retry_max: Duration::from_secs(300),
            outbox_poll_interval: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
        }
    }

    pub fn with_mirror(mut self, mirror: MirrorConfig) -> Self {
        self.mirror = Some(mirror);
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl std::fmt::Debug for KeyServiceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyServiceOptions")
            .field("mirror", &self.mirror.is_some())
            .field("cache_ttl", &self.cache_ttl)
            .field("spend_flush_interval", &self.spend_flush_interval)
            .finish_non_exhaustive()
    }
}

/// `GET /key/list` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub page: u64,
    pub size: u64,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub return_full_object: bool,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            page: 1,
            size: 10,
            key_alias: None,
            user_id: None,
            team_id: None,
            return_full_object: false,
        }
    }
}

/// Spend of one key on one UTC day, from the batch writer's log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DailySpend {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub spend: f64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub requests: i64,
}

/// Virtual keys: management API, authentication, limits and spend. Cheap to clone.
#[derive(Clone)]
pub struct KeyService {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Store,
    pub mirror: Option<MirrorConfig>,
    pub cache: Cache<String, Arc<Cached>, FastHashState>,
    pub misses: Cache<String, (), FastHashState>,
    /// Bumped on every invalidation, so a lookup that raced with one does not re-cache stale data.
    pub epoch: AtomicU64,
    pub live: Arc<LiveMap>,
    spend_tx: mpsc::UnboundedSender<SpendMsg>,
    spend_flush_asked: Arc<Notify>,
    /// Serialises key-management writes and outbox processing on this instance.
    admin: tokio::sync::Mutex<()>,
    outbox_wake: Arc<Notify>,
    pub clock: Arc<dyn Clock>,
    pub options: KeyServiceOptions,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stop: CancellationToken,
}

impl Inner {
    pub fn send_spend(&self, msg: SpendMsg) {
        if self.spend_tx.send(msg).is_err() {
            metrics::counter!("vaultgate_spend_dropped_total").increment(1);
            tracing::warn!("spend writer stopped; usage kept in memory only");
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Forgets a token on this instance at once (delete, block, update, regenerate).
    fn invalidate(&self, token: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate(token);
        self.misses.invalidate(token);
    }
}

/// A cached key record and when it was read from the store.
pub(crate) struct Cached {
    record: Arc<KeyRecord>,
    loaded_at: Instant,
    refreshing: AtomicBool,
}

impl Cached {
    fn new(record: Arc<KeyRecord>) -> Arc<Self> {
        Arc::new(Self {
            record,
            loaded_at: Instant::now(),
            refreshing: AtomicBool::new(false),
        })
    }
}

/// Re-reads a stale cached key in the background (the request that noticed does not wait).
async fn refresh_cached(inner: Arc<Inner>, token: String, cached: Arc<Cached>) {
    let epoch = inner.epoch.load(Ordering::SeqCst);
    match inner.store.get_by_token(&token).await {
        Ok(Some(record)) => {
            let record = Arc::new(record);
            inner.live.observe(&record);
            if inner.epoch.load(Ordering::SeqCst) == epoch {
                inner.cache.insert(token.clone(), Cached::new(record));
                if inner.epoch.load(Ordering::SeqCst) != epoch {
                    inner.cache.invalidate(&token);
                }
            } else {
                // Something changed meanwhile: let the next request start a fresh read.
                cached.refreshing.store(false, Ordering::SeqCst);
            }
        }
        Ok(None) => {
            // Deleted (or regenerated) by another instance.
            inner.cache.invalidate(&token);
        }
        Err(e) => {
            tracing::warn!(error = %e, "key refresh failed; serving the cached record");
            cached.refreshing.store(false, Ordering::SeqCst);
        }
    }
}

fn auth_error(message: impl Into<String>) -> Error {
    Error::Unauthorized(message.into())
}

fn not_found(input: &str) -> Error {
    Error::NotFound(format!("key not found: {}", describe_key(input)))
}

fn unavailable(what: &str, e: &Error) -> Error {
    metrics::counter!("vaultgate_key_vault_mirror_errors_total", "op" => what.to_owned())
        .increment(1);
    Error::Unavailable(format!(
        "Vault is unavailable ({what} of the virtual key copy failed: {e})"
    ))
}

fn duplicate_alias(alias: &str) -> Error {
    Error::bad_param(
        "key_alias",
        format!("key_alias '{alias}' is already used by another key"),
    )
}

fn map_write_error(e: sqlx::Error, record: &KeyRecord, key_field: &str) -> Error {
    if is_unique_violation(&e) {
        if e.to_string().contains("key_alias") {
            return duplicate_alias(record.key_alias.as_deref().unwrap_or_default());
        }
        return duplicate_key(key_field);
    }
    db_err(e)
}

/// A custom key (`key`, `new_key`) that another key already has.
fn duplicate_key(field: &str) -> Error {
    Error::bad_param(
        field,
        format!("{field}: a key with this value already exists"),
    )
}

/// Writes a key's Vault copy with the description and metadata LiteLLM stores beside it.
async fn put_copy(
    mirror: &MirrorConfig,
    name: &str,
    raw: &SecretString,
    record: &KeyRecord,
) -> Result<()> {
    mirror
        .mirror
        .put(
            name,
            raw,
            mirror.description.as_deref(),
            &secret_metadata(record),
        )
        .await
}

/// The answer of generate and regenerate: the record with the raw `key`, shown this once, and
/// the `duration` asked for.
fn with_raw_key(mut response: Value, raw: &SecretString, fields: &KeyFields) -> Value {
    if let Some(obj) = response.as_object_mut() {
        obj.insert("key".into(), Value::String(raw.expose_secret().to_owned()));
        if let Patch::Set((text, _)) = &fields.duration {
            obj.insert("duration".into(), Value::String(text.clone()));
        }
    }
    response
}

/// Custom metadata stored with the Vault copy.
fn secret_metadata(record: &KeyRecord) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(alias) = &record.key_alias {
        m.insert("key_alias".into(), alias.clone());
    }
    m.insert("token".into(), record.token.clone());
    m.insert("key_name".into(), record.key_name.clone());
    m.insert("created_at".into(), format_ms(record.created_at));
    m.insert(
        "expires".into(),
        record.expires.map_or_else(|| "never".into(), format_ms),
    );
    m.insert("managed_by".into(), "vaultgate".into());
    m
}

/// The metrics every request touches, registered once: the `metrics` macros hash their name and
/// labels and look them up in the registry on every call.
pub(crate) struct HotMetrics {
    pub cache_hits: metrics::Counter,
    pub auth_ok: metrics::Counter,
    pub spend_usd: metrics::Gauge,
    pub prompt_tokens: metrics::Counter,
    pub completion_tokens: metrics::Counter,
}

/// Registered on first use, which is after the recorder is installed (the first request).
pub(crate) fn hot_metrics() -> &'static HotMetrics {
    static HOT: std::sync::LazyLock<HotMetrics> = std::sync::LazyLock::new(|| HotMetrics {
        cache_hits: metrics::counter!("vaultgate_key_cache_total", "result" => "hit"),
        auth_ok: metrics::counter!("vaultgate_key_auth_total", "result" => "ok"),
        spend_usd: metrics::gauge!("vaultgate_spend_usd_total"),
        prompt_tokens: metrics::counter!("vaultgate_tokens_total", "type" => "prompt"),
        completion_tokens: metrics::counter!("vaultgate_tokens_total", "type" => "completion"),
    });
    &HOT
}

impl KeyService {
    /// Opens the store (running migrations) and starts the spend writer and the budget-reset task.
    /// Call [`KeyService::spawn_outbox_worker`] too when a mirror is configured, and
    /// [`KeyService::shutdown`] at exit so recorded spend is written.
    pub async fn open(options: KeyServiceOptions) -> Result<Self> {
        let store = Store::open(&options.database_url, options.max_connections).await?;
        let cache = Cache::builder()
            .max_capacity(options.cache_capacity)
            .time_to_live(options.cache_ttl.saturating_add(options.cache_max_stale))
            .build_with_hasher(FastHashState::default());
        let misses = Cache::builder()
            .max_capacity(options.cache_capacity)
            .time_to_live(options.negative_cache_ttl)
            .build_with_hasher(FastHashState::default());
        let live = Arc::new(LiveMap::default());
        let (spend_tx, spend_rx) = mpsc::unbounded_channel();
        let spend_flush_asked = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let writer = SpendWriter::new(
            store.clone(),
            live.clone(),
            spend_rx,
            spend_flush_asked.clone(),
            stop.clone(),
            options.spend_flush_interval,
            options.spend_batch_max.max(1),
        );
        let inner = Arc::new(Inner {
            store,
            mirror: options.mirror.clone(),
            cache,
            misses,
            epoch: AtomicU64::new(0),
            live,
            spend_tx,
            spend_flush_asked,
            admin: tokio::sync::Mutex::new(()),
            outbox_wake: Arc::new(Notify::new()),
            clock: options.clock.clone(),
            options,
            tasks: Mutex::new(Vec::new()),
            stop,
        });
        let service = Self { inner };
        let writer_task = tokio::spawn(writer.run());
        let reset_task = tokio::spawn(budget_reset_loop(Arc::downgrade(&service.inner)));
        if let Ok(mut tasks) = service.inner.tasks.lock() {
            tasks.push(writer_task);
            tasks.push(reset_task);
        }
        tracing::info!(
            backend = ?service.inner.store.backend(),
            mirror = service.inner.mirror.is_some(),
            "key store ready"
        );
        Ok(service)
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Which database backs the store.
    pub fn backend(&self) -> Backend {
        self.inner.store.backend()
    }

    /// Whether the database answers (readiness). The request path never needs this: hot keys
    /// are served from memory while the database is away.
    pub async fn ping(&self) -> Result<()> {
        self.inner.store.ping().await
    }

    /// Stops the background tasks after writing all recorded spend. Call once at shutdown.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        let tasks: Vec<JoinHandle<()>> = match self.inner.tasks.lock() {
            Ok(mut tasks) => tasks.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for task in tasks {
            let _ = task.await;
        }
        self.inner.store.close().await;
    }

    /// Writes all spend recorded so far to the store (used before admin writes and by tests).
    pub async fn flush_spend(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.inner.spend_tx.send(SpendMsg::Flush(tx)).is_err() {
            return Err(Error::Unavailable("the spend writer has stopped".into()));
        }
        self.inner.spend_flush_asked.notify_one();
        rx.await
            .map_err(|_| Error::Unavailable("the spend writer has stopped".into()))?
    }

    // ---- request path ----------------------------------------------------------------------

    /// The key record for a raw `sk-…` key: from the in-memory cache (the store is read only on
    /// a miss). Unknown, expired or blocked keys give 401 in LiteLLM's wording.
    pub async fn authenticate(&self, raw_key: &str) -> Result<Arc<KeyRecord>> {
        let inner = &self.inner;
        let raw_key = raw_key.trim();
        if !is_raw_key(raw_key) {
            metrics::counter!("vaultgate_key_auth_total", "result" => "invalid").increment(1);
            return Err(auth_error(
                "Authentication Error, LiteLLM Virtual Key expected. Expected to start with 'sk-'.",
            ));
        }
        let token = hash_key(raw_key);
        let invalid = || {
            metrics::counter!("vaultgate_key_auth_total", "result" => "invalid").increment(1);
            auth_error(format!(
                "Authentication Error, Invalid proxy server token passed. Received API Key = {}, \
                 Key Hash (Token) = {token}. Unable to find token in cache or the key table.",
                key_name(raw_key)
            ))
        };
        let record = if let Some(cached) = inner.cache.get(&token) {
            hot_metrics().cache_hits.increment(1);
            if cached.loaded_at.elapsed() >= inner.options.cache_ttl
                && !cached.refreshing.swap(true, Ordering::SeqCst)
            {
                tokio::spawn(refresh_cached(
                    self.inner.clone(),
                    token.clone(),
                    cached.clone(),
                ));
            }
            cached.record.clone()
        } else if inner.misses.contains_key(&token) {
            metrics::counter!("vaultgate_key_cache_total", "result" => "negative_hit").increment(1);
            return Err(invalid());
        } else {
            metrics::counter!("vaultgate_key_cache_total", "result" => "miss").increment(1);
            let epoch = inner.epoch.load(Ordering::SeqCst);
            let loaded = inner.store.get_by_token(&token).await?;
            match loaded {
                Some(record) => {
                    let record = Arc::new(record);
                    inner.live.observe(&record);
                    inner
                        .cache
                        .insert(token.clone(), Cached::new(record.clone()));
                    if inner.epoch.load(Ordering::SeqCst) != epoch {
                        // An invalidation raced with the read: do not keep what was read.
                        inner.cache.invalidate(&token);
                    }
                    record
                }
                None => {
                    inner.misses.insert(token.clone(), ());
                    if inner.epoch.load(Ordering::SeqCst) != epoch {
                        inner.misses.invalidate(&token);
                    }
                    return Err(invalid());
                }
            }
        };
        if record.blocked {
            metrics::counter!("vaultgate_key_auth_total", "result" => "blocked").increment(1);
            return Err(auth_error(
                "Authentication Error - Key is blocked. Update via `/key/unblock` if you're an admin.",
            ));
        }
        let now = inner.now();
        if let Some(expires) = record.expires
            && expires <= now
        {
            metrics::counter!("vaultgate_key_auth_total", "result" => "expired").increment(1);
            return Err(auth_error(format!(
                "Authentication Error - Expired Key. Key Expiry time {} and current time {}",
                format_ms(expires),
                format_ms(now)
            )));
        }
        hot_metrics().auth_ok.increment(1);
        Ok(record)
    }

    // ---- management API --------------------------------------------------------------------

    /// `POST /key/generate`. The response holds the raw `key`, shown this once.
    pub async fn generate(&self, request: Value) -> Result<Value> {
        let body = Body::from_value(request)?;
        let fields = KeyFields::parse(&body)?;
        let custom = body.custom_key("key")?;
        let inner = &self.inner;
        let _admin = inner.admin.lock().await;
        let now = inner.now();
        self.ensure_alias_free(&fields, None).await?;
        let raw = SecretString::from(custom.clone().unwrap_or_else(generate_raw_key));
        let token = hash_key(raw.expose_secret());
        self.ensure_token_free(&token, "key").await?;
        let mut record = KeyRecord {
            token: token.clone(),
            key_id: uuid::Uuid::new_v4().to_string(),
            key_name: key_name(raw.expose_secret()),
            key_alias: None,
            models: Vec::new(),
            max_budget: None,
            budget_duration: None,
            budget_reset_at: None,
            spend: 0.0,
            metadata: serde_json::Map::new(),
            tpm_limit: None,
            rpm_limit: None,
            max_parallel_requests: None,
            user_id: None,
            team_id: None,
            tags: Vec::new(),
            blocked: false,
            expires: None,
            created_at: now,
            updated_at: now,
            vault_secret_name: None,
        };
        fields.apply(&mut record, now);
        record.vault_secret_name = inner
            .mirror
            .as_ref()
            .map(|_| secret_name(record.key_alias.as_deref(), &token));

        let mut tx = inner.store.begin().await?;
        store::insert_key(&mut tx, &record)
            .await
            .map_err(|e| map_write_error(e, &record, "key"))?;
        if let (Some(mirror), Some(name)) = (&inner.mirror, &record.vault_secret_name) {
            store::outbox_cancel(&mut tx, name).await.map_err(db_err)?;
            // The copy is written before the key exists: no key without its Vault copy.
            if let Err(e) = put_copy(mirror, name, &raw, &record).await {
                let _ = tx.rollback().await;
                tracing::warn!(key = %record.key_name, error = %e, "key not created: Vault write failed");
                return Err(unavailable("write", &e));
            }
        }
        if let Err(e) = tx.commit().await {
            if let Some(name) = &record.vault_secret_name {
                self.remove_secret_after_failure(name).await;
            }
            return Err(db_err(e));
        }
        inner.invalidate(&token);
        metrics::counter!("vaultgate_key_admin_total", "op" => "generate").increment(1);
        tracing::info!(key = %record.key_name, alias = ?record.key_alias, "virtual key generated");

        Ok(with_raw_key(record.to_json(), &raw, &fields))
    }

    /// `GET /key/info?key=` (raw key or hash): `{"key": token, "info": {...}}`.
    pub async fn info(&self, key: &str) -> Result<Value> {
        if key.trim().is_empty() {
            return Err(Error::bad_param("key", "key is required"));
        }
        let record = self.find(key).await?;
        let record = self.with_live(record);
        Ok(json!({"key": record.token, "info": record.to_json()}))
    }

    /// The stored record of a key given raw or hashed, with live spend; `None` when unknown.
    pub async fn get_key(&self, key: &str) -> Result<Option<KeyRecord>> {
        Ok(self
            .inner
            .store
            .get_by_token(&token_of(key.trim()))
            .await?
            .map(|r| self.with_live(r)))
    }

    /// Per-day spend of a key (raw or hash) as written so far by the batch writer.
    pub async fn spend_logs(&self, key: &str) -> Result<Vec<DailySpend>> {
        let record = self.find(key).await?;
        let rows = self.inner.store.spend_logs(&record.key_id).await?;
        Ok(rows
            .into_iter()
            .map(
                |(day, spend, prompt_tokens, completion_tokens, requests)| DailySpend {
                    day,
                    spend,
                    prompt_tokens,
                    completion_tokens,
                    requests,
                },
            )
            .collect())
    }

    /// `GET /key/list`: `{keys, total_count, current_page, total_pages}`; `keys` are tokens, or
    /// full objects with `return_full_object`.
    pub async fn list(&self, query: &ListQuery) -> Result<Value> {
        if query.page == 0 {
            return Err(Error::bad_param("page", "page must be >= 1"));
        }
        if query.size == 0 || query.size > 1000 {
            return Err(Error::bad_param("size", "size must be between 1 and 1000"));
        }
        let filter = ListFilter {
            key_alias: query.key_alias.clone(),
            user_id: query.user_id.clone(),
            team_id: query.team_id.clone(),
        };
        let (records, total) = self
            .inner
            .store
            .list(&filter, query.page, query.size)
            .await?;
        let keys: Vec<Value> = records
            .into_iter()
            .map(|r| {
                if query.return_full_object {
                    self.with_live(r).to_json()
                } else {
                    Value::String(r.token)
                }
            })
            .collect();
        Ok(json!({
            "keys": keys,
            "total_count": total,
            "current_page": query.page,
            "total_pages": total.div_ceil(query.size),
        }))
    }

    /// `POST /key/update` (`key` + fields). Renaming the alias moves the Vault copy.
    pub async fn update(&self, request: Value) -> Result<Value> {
        let body = Body::from_value(request)?;
        let key_input = body.required_string("key")?;
        let fields = KeyFields::parse(&body)?;
        let inner = &self.inner;
        let _admin = inner.admin.lock().await;
        let current = self.find(&key_input).await?;
        let now = inner.now();
        self.prepare_change(&current, &fields).await?;
        let mut record = current.clone();
        fields.apply(&mut record, now);
        record.updated_at = now;

        let raw = is_raw_key(&key_input).then(|| SecretString::from(key_input.clone()));
        let record = self
            .write_changed(&current, record, raw, &fields, now, "key")
            .await?;
        metrics::counter!("vaultgate_key_admin_total", "op" => "update").increment(1);
        tracing::info!(key = %record.key_name, "virtual key updated");
        let mut response = self.with_live(record).to_json();
        if let Some(obj) = response.as_object_mut() {
            let token = obj.get("token").cloned().unwrap_or(Value::Null);
            obj.insert("key".into(), token);
        }
        Ok(response)
    }

    /// `POST /key/regenerate` and `POST /key/{key}/regenerate`: a new raw key with the same
    /// settings (optionally changed by the body's fields; `new_key` picks the value). The old key
    /// stops working at once; the Vault copy is rewritten with the new value.
    pub async fn regenerate(&self, path_key: Option<&str>, request: Value) -> Result<Value> {
        let body = Body::from_value(request)?;
        let key_input = match path_key {
            Some(key) if !key.trim().is_empty() => key.trim().to_owned(),
            _ => body.required_string("key")?,
        };
        let fields = KeyFields::parse(&body)?;
        let new_key = body.custom_key("new_key")?;
        let inner = &self.inner;
        let _admin = inner.admin.lock().await;
        let current = self.find(&key_input).await?;
        let now = inner.now();
        self.prepare_change(&current, &fields).await?;
        let raw = SecretString::from(new_key.unwrap_or_else(generate_raw_key));
        let new_token = hash_key(raw.expose_secret());
        self.ensure_token_free(&new_token, "new_key").await?;
        let mut record = current.clone();
        fields.apply(&mut record, now);
        record.token = new_token;
        record.key_name = key_name(raw.expose_secret());
        record.updated_at = now;

        let record = self
            .write_changed(&current, record, Some(raw.clone()), &fields, now, "new_key")
            .await?;
        metrics::counter!("vaultgate_key_admin_total", "op" => "regenerate").increment(1);
        tracing::info!(old = %current.key_name, new = %record.key_name, "virtual key regenerated");
        Ok(with_raw_key(
            self.with_live(record).to_json(),
            &raw,
            &fields,
        ))
    }

    /// A new alias must not be another key's (`current`, the key being changed, keeps its own).
    async fn ensure_alias_free(
        &self,
        fields: &KeyFields,
        current: Option<&KeyRecord>,
    ) -> Result<()> {
        if let Some(alias) = fields.key_alias.value()
            && current.is_none_or(|key| key.key_alias.as_deref() != Some(alias.as_str()))
            && self.inner.store.get_by_alias(alias).await?.is_some()
        {
            return Err(duplicate_alias(alias));
        }
        Ok(())
    }

    /// A new key value must not be another key's.
    async fn ensure_token_free(&self, token: &str, field: &str) -> Result<()> {
        if self.inner.store.get_by_token(token).await?.is_some() {
            return Err(duplicate_key(field));
        }
        Ok(())
    }

    /// Checks of update and regenerate before the record changes. Called with the admin lock held.
    async fn prepare_change(&self, current: &KeyRecord, fields: &KeyFields) -> Result<()> {
        self.ensure_alias_free(fields, Some(current)).await?;
        if !fields.spend.is_absent() {
            // Pending increments would otherwise land on top of the value being set.
            self.flush_spend().await?;
        }
        Ok(())
    }

    /// Writes a changed record (update or regenerate) with its Vault side effects. Must be called
    /// with the admin lock held.
    async fn write_changed(
        &self,
        current: &KeyRecord,
        mut record: KeyRecord,
        raw: Option<SecretString>,
        fields: &KeyFields,
        now: i64,
        key_field: &str,
    ) -> Result<KeyRecord> {
        let inner = &self.inner;
        // What to write to Vault, and which old name to delete afterwards.
        let mut put: Option<(String, SecretString)> = None;
        let mut old_to_delete: Option<String> = None;
        if let Some(mirror) = &inner.mirror {
            let new_name = secret_name(record.key_alias.as_deref(), &record.token);
            let regenerated = record.token != current.token;
            let renamed = current.vault_secret_name.as_deref() != Some(new_name.as_str());
            if regenerated || renamed {
                let value = match raw {
                    Some(raw) => Some(raw),
                    None => match &current.vault_secret_name {
                        Some(old) => {
                            let value = mirror
                                .mirror
                                .get(old)
                                .await
                                .map_err(|e| unavailable("read", &e))?;
                            match value {
                                Some(v) if hash_key(v.expose_secret()) == current.token => Some(v),
                                _ => {
                                    return Err(Error::Unavailable(format!(
                                        "cannot move the Vault copy of {}: the secret '{old}' is \
                                         missing or holds another key; pass the raw key as `key` \
                                         to rename it",
                                        current.key_name
                                    )));
                                }
                            }
                        }
                        None => None,
                    },
                };
                match value {
                    Some(value) => {
                        if let Some(old) = &current.vault_secret_name
                            && *old != new_name
                        {
                            old_to_delete = Some(old.clone());
                        }
                        record.vault_secret_name = Some(new_name.clone());
                        put = Some((new_name, value));
                    }
                    None => tracing::warn!(
                        key = %current.key_name,
                        "key has no Vault copy (created before mirroring); pass the raw key to add one"
                    ),
                }
            }
        }

        let mut tx = inner.store.begin().await?;
        let matched = store::update_key(&mut tx, &current.token, &record)
            .await
            .map_err(|e| map_write_error(e, &record, key_field))?;
        if !matched {
            let _ = tx.rollback().await;
            return Err(not_found(&current.token));
        }
        if !fields.spend.is_absent() {
            store::set_spend(&mut tx, &record.key_id, record.spend)
                .await
                .map_err(db_err)?;
        }
        if !fields.budget_duration.is_absent() {
            store::set_budget_reset(&mut tx, &record.key_id, record.budget_reset_at)
                .await
                .map_err(db_err)?;
        }
        if let (Some(mirror), Some((name, value))) = (&inner.mirror, &put) {
            store::outbox_cancel(&mut tx, name).await.map_err(db_err)?;
            if let Some(old) = &old_to_delete {
                store::outbox_add(&mut tx, old, now).await.map_err(db_err)?;
            }
            if let Err(e) = put_copy(mirror, name, value, &record).await {
                let _ = tx.rollback().await;
                tracing::warn!(key = %current.key_name, error = %e, "key not changed: Vault write failed");
                return Err(unavailable("write", &e));
            }
        }
        if let Err(e) = tx.commit().await {
            // The new value may be in Vault under a new name no key owns: remove it.
            if let Some((name, _)) = &put
                && Some(name) != current.vault_secret_name.as_ref()
            {
                self.remove_secret_after_failure(name).await;
            }
            return Err(db_err(e));
        }
        inner.invalidate(&current.token);
        inner.invalidate(&record.token);
        if let Some(live) = inner.live.get(&record.key_id) {
            let mut s = live.lock();
            if !fields.spend.is_absent() {
                s.spend = record.spend;
                s.unflushed = 0.0;
            }
            if !fields.budget_duration.is_absent() {
                s.budget_reset_at = record.budget_reset_at;
            }
        }
        if let Some(old) = old_to_delete {
            self.delete_secret_now(&old).await;
        }
        Ok(record)
    }

    /// `POST /key/delete` with `keys` (raw or hash) or `key_aliases`: `{"deleted_keys": [tokens]}`.
    /// The keys stop working at once; their Vault copies are deleted now or by the outbox.
    pub async fn delete(&self, request: Value) -> Result<Value> {
        let body = Body::from_value(request)?;
        let keys = body
            .string_list("keys")?
            .value()
            .cloned()
            .unwrap_or_default();
        let aliases = body
            .string_list("key_aliases")?
            .value()
            .cloned()
            .unwrap_or_default();
        if keys.is_empty() && aliases.is_empty() {
            return Err(Error::bad_param(
                "keys",
                "keys (or key_aliases) must list at least one key",
            ));
        }
        let inner = &self.inner;
        let _admin = inner.admin.lock().await;
        let mut records: Vec<KeyRecord> = Vec::new();
        for key in &keys {
            records.push(self.find(key).await?);
        }
        for alias in &aliases {
            match inner.store.get_by_alias(alias).await? {
                Some(record) => records.push(record),
                None => return Err(Error::NotFound(format!("no key with key_alias '{alias}'"))),
            }
        }
        let mut seen = HashSet::new();
        records.retain(|r| seen.insert(r.token.clone()));

        let now = inner.now();
        let mut tx = inner.store.begin().await?;
        for record in &records {
            store::delete_key(&mut tx, &record.token)
                .await
                .map_err(db_err)?;
            // Queued even without a mirror configured now: the copy goes once one is again.
            if let Some(name) = &record.vault_secret_name {
                store::outbox_add(&mut tx, name, now)
                    .await
                    .map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        for record in &records {
            inner.invalidate(&record.token);
            inner.live.remove(&record.key_id);
            tracing::info!(key = %record.key_name, "virtual key deleted");
        }
        metrics::counter!("vaultgate_key_admin_total", "op" => "delete")
            .increment(records.len() as u64);
        if inner.mirror.is_some() {
            for record in &records {
                if let Some(name) = &record.vault_secret_name {
                    self.delete_secret_now(name).await;
                }
            }
        }
        let deleted: Vec<&str> = records.iter().map(|r| r.token.as_str()).collect();
        Ok(json!({"deleted_keys": deleted}))
    }

    /// `POST /key/block` (`blocked = true`) and `/key/unblock`: takes effect at once here.
    pub async fn set_blocked(&self, request: Value, blocked: bool) -> Result<Value> {
        let body = Body::from_value(request)?;
        let key_input = body.required_string("key")?;
        let inner = &self.inner;
        let _admin = inner.admin.lock().await;
        let mut record = self.find(&key_input).await?;
        let now = inner.now();
        let mut tx = inner.store.begin().await?;
        if !store::set_blocked(&mut tx, &record.token, blocked, now)
            .await
            .map_err(db_err)?
        {
            let _ = tx.rollback().await;
            return Err(not_found(&key_input));
        }
        tx.commit().await.map_err(db_err)?;
        inner.invalidate(&record.token);
        record.blocked = blocked;
        record.updated_at = now;
        let op = if blocked { "block" } else { "unblock" };
        metrics::counter!("vaultgate_key_admin_total", "op" => op).increment(1);
        tracing::info!(key = %record.key_name, blocked, "virtual key {op}ed");
        Ok(self.with_live(record).to_json())
    }

    async fn find(&self, input: &str) -> Result<KeyRecord> {
        let input = input.trim();
        self.inner
            .store
            .get_by_token(&token_of(input))
            .await?
            .ok_or_else(|| not_found(input))
    }

    /// The record with this instance's live spend and budget period.
    fn with_live(&self, mut record: KeyRecord) -> KeyRecord {
        if let Some(live) = self.inner.live.get(&record.key_id) {
            let s = live.lock();
            record.spend = record.spend.max(s.spend);
            if s.budget_reset_at.is_some() && record.budget_reset_at.is_some() {
                if s.budget_reset_at > record.budget_reset_at {
                    record.spend = s.spend;
                }
                record.budget_reset_at = s.budget_reset_at.max(record.budget_reset_at);
            }
        }
        record
    }

    // ---- Vault mirror: outbox and drift ----------------------------------------------------

    /// Tries a Vault deletion whose outbox row is committed; on failure the row stays for the
    /// worker. Called with the admin lock held.
    async fn delete_secret_now(&self, name: &str) {
        let inner = &self.inner;
        let Some(mirror) = &inner.mirror else { return };
        match mirror.mirror.delete(name).await {
            Ok(()) => {
                if let Err(e) = inner.store.outbox_remove(name).await {
                    tracing::warn!(secret = name, error = %e, "Vault copy deleted but outbox row kept");
                }
            }
            Err(e) => {
                metrics::counter!("vaultgate_key_vault_mirror_errors_total", "op" => "delete")
                    .increment(1);
                tracing::warn!(secret = name, error = %e, "Vault deletion failed; queued for retry");
                let next = inner
                    .now()
                    .saturating_add(duration_ms(inner.options.outbox_retry_min));
                if let Err(e) = inner
                    .store
                    .outbox_failed(name, 1, next, &e.to_string())
                    .await
                {
                    tracing::warn!(secret = name, error = %e, "could not note the failed deletion");
                }
                inner.outbox_wake.notify_one();
            }
        }
    }

    /// A secret was written but its key was not committed: delete it, or queue the deletion.
    async fn remove_secret_after_failure(&self, name: &str) {
        let inner = &self.inner;
        let Some(mirror) = &inner.mirror else { return };
        if mirror.mirror.delete(name).await.is_ok() {
            return;
        }
        let queued = async {
            let mut tx = inner.store.begin().await?;
            store::outbox_add(&mut tx, name, inner.now())
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        };
        if let Err(e) = queued.await {
            tracing::error!(secret = name, error = %e, "orphan Vault copy left; see `vaultgate check`");
        }
        inner.outbox_wake.notify_one();
    }

    /// Retries the due Vault deletions once. Returns how many are done. The outbox worker calls
    /// this; it is public for one-off runs (e.g. `vaultgate check --fix`) and tests.
    pub async fn process_outbox(&self) -> Result<usize> {
        let inner = &self.inner;
        let Some(mirror) = &inner.mirror else {
            return Ok(0);
        };
        let due = inner.store.outbox_due(inner.now()).await?;
        let mut done = 0;
        for entry in due {
            let _admin = inner.admin.lock().await;
            if inner.store.secret_in_use(&entry.secret_name).await? {
                // A key owns this name again (written after the deletion was queued): keep it.
                inner.store.outbox_remove(&entry.secret_name).await?;
                continue;
            }
            match mirror.mirror.delete(&entry.secret_name).await {
                Ok(()) => {
                    inner.store.outbox_remove(&entry.secret_name).await?;
                    tracing::info!(secret = %entry.secret_name, attempts = entry.attempts + 1, "queued Vault deletion done");
                    done += 1;
                }
                Err(e) => {
                    let attempts = entry.attempts + 1;
                    let backoff = backoff_ms(&inner.options, attempts);
                    metrics::counter!("vaultgate_key_vault_mirror_errors_total", "op" => "delete")
                        .increment(1);
                    tracing::warn!(secret = %entry.secret_name, attempts, error = %e, "queued Vault deletion failed; will retry");
                    inner
                        .store
                        .outbox_failed(
                            &entry.secret_name,
                            attempts,
                            inner.now().saturating_add(backoff),
                            &e.to_string(),
                        )
                        .await?;
                }
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let pending = inner
            .store
            .outbox_all()
            .await
            .map(|p| p.len() as f64)
            .unwrap_or(0.0);
        metrics::gauge!("vaultgate_vault_outbox_pending").set(pending);
        Ok(done)
    }

    /// Names of Vault copies still waiting for deletion.
    pub async fn pending_vault_deletions(&self) -> Result<Vec<String>> {
        self.inner.store.outbox_all().await
    }

    /// Starts the task that retries queued Vault deletions with backoff until done (also those
    /// left from before a restart). It stops when `shutdown` is cancelled. Without a mirror the
    /// task ends at once.
    pub fn spawn_outbox_worker(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let wake = self.inner.outbox_wake.clone();
        let has_mirror = self.inner.mirror.is_some();
        tokio::spawn(async move {
            if !has_mirror {
                return;
            }
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let service = KeyService { inner };
                let options = service.inner.options.clone();
                let wait = match service.process_outbox().await {
                    Ok(_) => match service.inner.store.outbox_next_due().await {
                        Ok(Some(due)) => {
                            let ms = due.saturating_sub(service.inner.now()).max(0);
                            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
                                .min(options.outbox_poll_interval)
                        }
                        Ok(None) => options.outbox_poll_interval,
                        Err(_) => options.outbox_retry_min,
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox pass failed");
                        options.outbox_retry_min
                    }
                };
                drop(service);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = wake.notified() => {}
                    () = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
                }
            }
        })
    }

    /// Keys without a Vault copy and copies without a key (for `vaultgate check`). Empty when no
    /// mirror is configured.
    pub async fn drift(&self) -> Result<DriftReport> {
        let inner = &self.inner;
        let Some(mirror) = &inner.mirror else {
            return Ok(DriftReport::default());
        };
        let secrets: HashSet<String> = mirror
            .mirror
            .list()
            .await
            .map_err(|e| unavailable("list", &e))?
            .into_iter()
            .collect();
        let pending = inner.store.outbox_all().await?;
        let keys = inner.store.all_keys().await?;
        let mut report = DriftReport::default();
        let mut owned = HashSet::new();
        for key in keys {
            let expected = key
                .vault_secret_name
                .clone()
                .unwrap_or_else(|| secret_name(key.key_alias.as_deref(), &key.token));
            if !secrets.contains(&expected) {
                report.keys_without_secret.push(DriftKey {
                    token: key.token.clone(),
                    key_name: key.key_name.clone(),
                    key_alias: key.key_alias.clone(),
                    expected_secret: expected.clone(),
                });
            }
            owned.insert(expected);
        }
        let pending_set: HashSet<&String> = pending.iter().collect();
        let mut orphans: Vec<String> = secrets
            .iter()
            .filter(|s| !s.ends_with('/') && !owned.contains(*s) && !pending_set.contains(s))
            .cloned()
            .collect();
        orphans.sort();
        report.secrets_without_key = orphans;
        report.pending_deletions = pending
            .into_iter()
            .filter(|p| secrets.contains(p))
            .collect();
        Ok(report)
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn backoff_ms(options: &KeyServiceOptions, attempts: i64) -> i64 {
    let min = duration_ms(options.outbox_retry_min).max(1);
    let max = duration_ms(options.outbox_retry_max).max(min);
    let shift = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    min.saturating_mul(1i64 << shift.saturating_sub(1)).min(max)
}

/// Resets budgets whose period is over, also for keys no request touched on this instance.
async fn budget_reset_loop(weak: Weak<Inner>) {
    let (interval, stop) = match weak.upgrade() {
        Some(inner) => (inner.options.budget_reset_interval, inner.stop.clone()),
        None => return,
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        if let Err(e) = reset_due_budgets(&inner).await {
            tracing::warn!(error = %e, "budget reset pass failed");
        }
    }
}

pub(crate) async fn reset_due_budgets(inner: &Inner) -> Result<usize> {
    let now = inner.now();
    let due = inner.store.due_budget_resets(now).await?;
    let mut count = 0;
    for (key_id, duration) in due {
        let Some(duration_ms) = duration.as_deref().and_then(parse_duration) else {
            continue;
        };
        let next = now.saturating_add(duration_ms);
        if let Some(live) = inner.live.get(&key_id) {
            let mut s = live.lock();
            if s.budget_reset_at.is_some_and(|r| r > now) {
                continue; // reset here already; the writer is on its way
            }
            s.spend = 0.0;
            s.budget_reset_at = Some(next);
        }
        inner.send_spend(SpendMsg::Reset {
            key_id,
            now_ms: now,
            next_reset_ms: next,
        });
        count += 1;
    }
    Ok(count)
}

impl KeyService {
    /// Runs one budget-reset pass now (the background task does this every
    /// `budget_reset_interval`). Returns how many keys were reset.
    pub async fn reset_budgets(&self) -> Result<usize> {
        reset_due_budgets(&self.inner).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn outbox_backoff_doubles_up_to_the_cap() {
        let mut options = KeyServiceOptions::new("sqlite::memory:");
        options.outbox_retry_min = Duration::from_secs(1);
        options.outbox_retry_max = Duration::from_secs(300);
        let delays: Vec<i64> = (1..=12).map(|n| backoff_ms(&options, n)).collect();
        assert_eq!(&delays[..5], &[1_000, 2_000, 4_000, 8_000, 16_000]);
        assert_eq!(delays[11], 300_000);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
    }
}
