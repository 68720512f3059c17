//! `KeyService`: the handle to virtual keys. It opens the store and starts the background tasks,
//! and is the public face of the parts behind it: the request path ([`crate::cache`],
//! [`crate::limits`]), the management API ([`crate::admin`], [`crate::query`]), the Vault outbox
//! ([`crate::outbox`]) and drift report ([`crate::drift`]), budget resets
//! ([`crate::budget_reset`]) and the spend writer ([`crate::spend`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vaultgate_config::ModelInfo;
use vaultgate_core::Result;
use vaultgate_quota::{Quota, QuotaHealth};

use crate::batch::{LogQueue, LogWriter};
use crate::cache::{CacheSettings, KeyCache};
use crate::cluster::{self, Cluster};
use crate::limits::{Admission, Limits};
use crate::live::LiveMap;
use crate::mirror::DriftReport;
use crate::model::KeyRecord;
use crate::options::KeyServiceOptions;
use crate::outbox::Outbox;
use crate::principals::access::{Actor, Caller};
use crate::principals::directory::Directory;
use crate::query::{DailySpend, ListQuery};
use crate::responses::{Pending, StoredResponse, StoredResponses, on_written};
use crate::spend::{SpendStatus, SpendWriter};
use crate::spend_logs::SpendLogRow;
use crate::state::Inner;
use crate::store::{Backend, Store};
use crate::{admin, budget_reset, drift, query};

/// Stored Responses waiting for the writer (also bounded in bytes), and per write.
const RESPONSES_QUEUE_MAX: usize = 10_000;
const RESPONSES_BATCH_MAX: usize = 100;
/// How often expired stored Responses are deleted.
const RESPONSES_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Time given to the tasks and the database beyond the spend flush at shutdown.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(3);

/// Virtual keys: management API, authentication, limits and spend. Cheap to clone.
#[derive(Clone)]
pub struct KeyService {
    inner: Arc<Inner>,
}

impl KeyService {
    /// Opens the store (running migrations) and starts the spend writer and the budget-reset task.
    /// Call [`KeyService::spawn_outbox_worker`] too when a mirror is configured, and
    /// [`KeyService::shutdown`] at exit so recorded spend is written.
    pub async fn open(options: KeyServiceOptions) -> Result<Self> {
        let store = Store::open(
            &options.database_url,
            options.max_connections,
            options.database_acquire_timeout,
        )
        .await?;
        let cluster = Cluster::open(&store, &options.database_url).await?;
        let live = Arc::new(LiveMap::default());
        let cache = KeyCache::new(
            &CacheSettings {
                capacity: options.cache_capacity,
                ttl: options.cache_ttl,
                max_stale: options.cache_max_stale,
                negative_ttl: options.negative_cache_ttl,
            },
            store.clone(),
            live.clone(),
            options.clock.clone(),
            cluster.clone(),
        );
        let directory = Arc::new(Directory::new(live.flushes.clone()));
        directory.load_all(&store).await?;
        let stop = CancellationToken::new();
        let (writer, spend, spend_status) = SpendWriter::new(
            store.clone(),
            live.clone(),
            stop.clone(),
            &options,
            cluster.announcer.clone(),
        );
        let bounds = |queue_max, backlog_max| crate::batch::Bounds {
            queue_max,
            backlog_max,
        };
        let spend_logs = &options.spend_logs;
        let (log_writer, logs) = if spend_logs.enabled {
            let (writer, queue) = LogWriter::new(
                store.clone(),
                stop.clone(),
                bounds(spend_logs.queue_max, spend_logs.backlog_max),
                options.spend_flush_interval,
                options.spend_batch_max,
                options.spend_shutdown_timeout,
            );
            (Some(writer), queue)
        } else {
            (None, LogQueue::disabled())
        };
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (responses_writer, responses_queue) = LogWriter::new(
            store.clone(),
            stop.clone(),
            bounds(RESPONSES_QUEUE_MAX, RESPONSES_QUEUE_MAX),
            options.spend_flush_interval,
            RESPONSES_BATCH_MAX,
            options.spend_shutdown_timeout,
        );
        let responses_writer = responses_writer.on_written(on_written(Arc::clone(&pending)));
        let responses = StoredResponses {
            queue: responses_queue,
            pending,
            retention: options.responses_retention,
        };
        let limits = Limits {
            live: live.clone(),
            directory: directory.clone(),
            limiter: options.limiter.clone(),
            clock: options.clock.clone(),
            unknown_request_cost_estimate: options.unknown_request_cost_estimate,
            spend: spend.clone(),
        };
        let admin_lock = Arc::new(tokio::sync::Mutex::new(()));
        let outbox = Arc::new(Outbox::new(
            store.clone(),
            &options,
            admin_lock.clone(),
            cluster.clone(),
        ));
        let inner = Arc::new(Inner {
            store,
            mirror: options.mirror.clone(),
            cache,
            live,
            directory,
            limits,
            spend,
            spend_status,
            logs,
            responses,
            outbox,
            admin: admin_lock,
            clock: options.clock.clone(),
            cluster,
            options,
            tasks: Mutex::new(Vec::new()),
            stop,
        });
        let writer_task = tokio::spawn(writer.run());
        let reset_task = tokio::spawn(budget_reset::run(Arc::downgrade(&inner)));
        let reload_task = tokio::spawn(reload_directory(Arc::downgrade(&inner)));
        let cluster_tasks = cluster::spawn(&inner).await;
        let log_task = log_writer.map(|w| tokio::spawn(w.run()));
        let retention_task = inner.options.spend_logs.retention.map(|period| {
            tokio::spawn(crate::batch::retention::<SpendLogRow>(
                inner.store.clone(),
                inner.clock.clone(),
                period,
                inner.options.spend_logs.retention_interval,
                inner.stop.clone(),
            ))
        });
        let responses_task = tokio::spawn(responses_writer.run());
        let responses_retention = tokio::spawn(crate::batch::retention::<Arc<StoredResponse>>(
            inner.store.clone(),
            inner.clock.clone(),
            inner.options.responses_retention,
            RESPONSES_PURGE_INTERVAL.min(inner.options.responses_retention),
            inner.stop.clone(),
        ));
        if let Ok(mut tasks) = inner.tasks.lock() {
            tasks.extend(log_task);
            tasks.extend(retention_task);
            tasks.push(responses_task);
            tasks.push(responses_retention);
            tasks.push(writer_task);
            tasks.push(reset_task);
            tasks.push(reload_task);
            tasks.extend(cluster_tasks);
        }
        tracing::info!(
            backend = ?inner.store.backend(),
            mirror = inner.mirror.is_some(),
            "key store ready"
        );
        Ok(Self { inner })
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

    /// Stops the background tasks after writing the recorded spend (trying for at most
    /// `spend_shutdown_timeout`). Call once at shutdown; it returns within about that long.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        let tasks: Vec<JoinHandle<()>> = match self.inner.tasks.lock() {
            Ok(mut tasks) => tasks.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let deadline = tokio::time::Instant::now()
            + self.inner.options.spend_shutdown_timeout
            + SHUTDOWN_SLACK;
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
                tracing::warn!("a key-store task did not stop in time");
            }
        }
        self.inner.limits.limiter.shutdown().await;
        if tokio::time::timeout(SHUTDOWN_SLACK, self.inner.store.close())
            .await
            .is_err()
        {
            tracing::warn!("the key database did not close in time");
        }
    }

    /// How the rate limits are counted: here, shared through Redis, or per instance because
    /// Redis does not answer (for readiness).
    pub fn limits_health(&self) -> QuotaHealth {
        self.inner.limits.limiter.health()
    }

    /// Instances sharing the limits at Redis's last answer (`None` without Redis).
    pub fn limits_instances_seen(&self) -> Option<u64> {
        self.inner.limits.limiter.instances_seen()
    }

    /// Spend recorded but not yet written, and whether writes fail (for readiness).
    pub fn spend_status(&self) -> SpendStatus {
        self.inner
            .spend_status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Writes all spend recorded so far to the store (used before admin writes and by tests).
    pub async fn flush_spend(&self) -> Result<()> {
        self.inner.spend.flush().await
    }

    // ---- spend logs ------------------------------------------------------------------------

    /// Whether request rows are kept (`disable_spend_logs` turns them off).
    pub fn spend_logs_enabled(&self) -> bool {
        self.inner.logs.enabled()
    }

    /// Whether rows keep request and response bodies (`store_prompts_in_spend_logs`).
    pub fn store_prompts_in_spend_logs(&self) -> bool {
        self.inner.options.spend_logs.store_prompts
    }

    /// Queues one request's row for the batch writer; never waits (a full queue drops it and
    /// counts it in `vaultgate_spend_logs_dropped_total`).
    pub fn log_request(&self, row: SpendLogRow) {
        self.inner.logs.send(row);
    }

    /// Writes every queued row to the store (tests, shutdown of a caller's own).
    pub async fn flush_spend_logs(&self) -> Result<()> {
        self.inner.logs.flush().await
    }

    /// One retention pass now (the background task runs it every
    /// `maximum_spend_logs_retention_interval`); how many rows were deleted. Without a
    /// retention period nothing is deleted.
    pub async fn purge_spend_logs(&self) -> Result<u64> {
        match self.inner.options.spend_logs.retention {
            Some(period) => {
                crate::batch::purge::<SpendLogRow>(
                    &self.inner.store,
                    self.inner.clock.as_ref(),
                    period,
                )
                .await
            }
            None => Ok(0),
        }
    }

    // ---- stored Responses --------------------------------------------------------------------

    /// Queues a translated response for storing; never waits. `false` when it is not stored
    /// (larger than [`crate::MAX_STORED_RESPONSE_BYTES`], or too many waiting), counted in
    /// `vaultgate_stored_responses_dropped_total`.
    pub fn keep_response(&self, response: StoredResponse) -> bool {
        self.inner.responses.keep(response)
    }

    /// A stored response by id: from memory while it waits for the writer, else from the
    /// store; `None` when unknown, deleted or past the retention period. The caller checks
    /// its owner.
    pub async fn stored_response(&self, id: &str) -> Result<Option<Arc<StoredResponse>>> {
        self.inner
            .responses
            .get(&self.inner.store, self.inner.clock.as_ref(), id)
            .await
    }

    /// Deletes a stored response; whether there was one.
    pub async fn delete_stored_response(&self, id: &str) -> Result<bool> {
        self.inner.responses.delete(&self.inner.store, id).await
    }

    /// Writes every queued response to the store (tests).
    pub async fn flush_stored_responses(&self) -> Result<()> {
        self.inner.responses.queue.flush().await
    }

    /// A team's alias, as this instance knows it (for logs and metrics labels).
    pub fn team_alias(&self, team_id: &str) -> Option<String> {
        self.inner
            .directory
            .team(team_id)
            .and_then(|t| t.team.record.team_alias.clone())
    }

    // ---- request path ----------------------------------------------------------------------

    /// The key record for a raw `sk-…` key: from the in-memory cache (the store is read only on
    /// a miss). Unknown, expired or blocked keys give 401 in LiteLLM's wording.
    pub async fn authenticate(&self, raw_key: &str) -> Result<Arc<KeyRecord>> {
        let key = self.inner.cache.authenticate(raw_key).await?;
        // A blocked team blocks its keys on every route (LiteLLM checks it at authentication).
        self.inner
            .directory
            .chain(&key, None)
            .check_team_blocked()?;
        Ok(key)
    }

    /// Forgets a key (by its token, the SHA-256 hex) on this instance at once, so its next use
    /// reads the store. This instance's own changes and, on PostgreSQL, the other instances'
    /// announced changes do it already.
    pub fn invalidate(&self, token: &str) {
        self.inner.cache.invalidate(token);
    }

    /// Forgets what this instance holds of a team, user, organization, budget or end user and
    /// reads it again (`kind`: `team`, `user`, `organization`, `budget`, `end_user`): for a
    /// change announced by another instance (this instance's own changes do it already).
    pub async fn invalidate_object(&self, kind: &str, id: &str) -> Result<()> {
        cluster::reload_object(&self.inner, kind, id).await
    }

    /// Whether this instance runs the background jobs (Vault outbox, budget resets) now: on
    /// PostgreSQL one instance at a time does; on SQLite always.
    pub fn runs_background_jobs(&self) -> bool {
        self.inner.cluster.runs_jobs()
    }

    /// Whether the other instances' changes reach this instance (always true on SQLite).
    pub fn hears_other_instances(&self) -> bool {
        self.inner.cluster.listening()
    }

    /// Re-reads every team, user, organization, budget and end user (the background task does
    /// this every `directory_reload_interval`).
    pub async fn reload_directory(&self) -> Result<()> {
        self.inner.directory.load_all(&self.inner.store).await
    }

    /// Resolves the caller of a management `route` through the permission table: 401 or 403
    /// (LiteLLM's) when its role may not call it.
    pub fn actor(&self, caller: &Caller, route: &'static str) -> Result<Actor> {
        self.inner.directory.actor(caller, route)
    }

    /// The role of the user a key belongs to (`None`: a key without a known user).
    pub fn role_of(&self, key: &KeyRecord) -> Option<crate::principals::model::Role> {
        self.inner.directory.role_of(key)
    }

    /// Non-admin callers may touch only their own keys (and team admins their team's).
    pub fn check_key(&self, actor: &Actor, key: &KeyRecord) -> Result<()> {
        actor.check_key(key, &self.inner.directory)
    }

    /// Non-admin callers may make keys only for themselves, in teams they belong to.
    pub fn check_new_key(
        &self,
        actor: &Actor,
        user_id: Option<&str>,
        team_id: Option<&str>,
    ) -> Result<()> {
        actor.check_new_key(user_id, team_id, &self.inner.directory)
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The stored record of the key with this alias, with live spend.
    pub async fn get_key_by_alias(&self, alias: &str) -> Result<Option<KeyRecord>> {
        Ok(self
            .inner
            .store
            .get_by_alias(alias)
            .await?
            .map(|r| self.inner.with_live(r)))
    }

    /// Whether the key may use `model`: its `models` list is empty (all models), contains
    /// `all-proxy-models`, or names the model (a trailing `*` is a prefix wildcard).
    pub fn authorize_model(&self, key: &KeyRecord, model: &str) -> Result<()> {
        self.inner.limits.authorize_model(key, model)
    }

    /// The models of `all` that the key may use, in the order of `all` (for GET /v1/models).
    pub fn allowed_models(&self, key: &KeyRecord, all: &[String]) -> Vec<String> {
        self.inner.limits.allowed_models(key, all)
    }

    /// Admits one request of `key` or says why not: budget spent (400 budget_exceeded), a
    /// nearly spent budget already covered by in-flight requests, requests or tokens per minute,
    /// parallel requests (429 with Retry-After). Never touches the database; with shared
    /// limits it waits for one Redis round trip (bounded: Redis slow or down fails open).
    pub async fn admit(
        &self,
        key: &Arc<KeyRecord>,
        model: &str,
        end_user: Option<&str>,
    ) -> Result<Admission> {
        self.inner.limits.admit(key, model, end_user).await
    }

    /// The `allowed_model_region` of the request's end user (`user`), from memory: only
    /// deployments of that region may serve it.
    pub fn allowed_model_region(&self, end_user: Option<&str>) -> Option<String> {
        let entry = self.inner.directory.end_user(end_user?)?;
        entry.record.allowed_model_region.clone()
    }

    /// Records a finished request's usage: cost from `model_info` prices, else the built-in
    /// table (0 for an unknown model). Updates in-memory spend and tokens at once; the store is
    /// written by the batch writer. Returns the cost in USD.
    pub fn record_usage(
        &self,
        admission: &Admission,
        model: &str,
        prompt_tokens: u64,
        completion_tokens: u64,
        model_info: Option<&ModelInfo>,
    ) -> f64 {
        self.inner.limits.record_usage(
            admission,
            model,
            prompt_tokens,
            completion_tokens,
            model_info,
        )
    }

    /// Where an admitted request's key stands now (spend, limits, this minute's use).
    pub fn key_use(&self, admission: &Admission) -> crate::limits::KeyUse {
        admission.key_use(self.inner.limits.clock.now_ms())
    }

    // ---- management API --------------------------------------------------------------------

    /// `POST /key/generate`. The response holds the raw `key`, shown this once.
    pub async fn generate(&self, request: Value) -> Result<Value> {
        admin::generate(&self.inner, request).await
    }

    /// `POST /key/update` (`key` + fields). Renaming the alias moves the Vault copy.
    pub async fn update(&self, request: Value) -> Result<Value> {
        admin::update(&self.inner, request).await
    }

    /// `POST /key/regenerate` and `POST /key/{key}/regenerate`: a new raw key with the same
    /// settings (optionally changed by the body's fields; `new_key` picks the value). The old key
    /// stops working at once; the Vault copy is rewritten with the new value.
    pub async fn regenerate(&self, path_key: Option<&str>, request: Value) -> Result<Value> {
        admin::regenerate(&self.inner, path_key, request).await
    }

    /// `POST /key/delete` with `keys` (raw or hash) or `key_aliases`: `{"deleted_keys": [tokens]}`.
    /// The keys stop working at once; their Vault copies are deleted now or by the outbox.
    pub async fn delete(&self, request: Value) -> Result<Value> {
        admin::delete(&self.inner, request).await
    }

    /// `POST /key/block` (`blocked = true`) and `/key/unblock`: takes effect at once here.
    pub async fn set_blocked(&self, request: Value, blocked: bool) -> Result<Value> {
        admin::set_blocked(&self.inner, request, blocked).await
    }

    /// `GET /key/info?key=` (raw key or hash): `{"key": token, "info": {...}}`.
    pub async fn info(&self, key: &str) -> Result<Value> {
        query::info(&self.inner, key).await
    }

    /// `GET /key/list`: `{keys, total_count, current_page, total_pages}`.
    pub async fn list(&self, query: &ListQuery) -> Result<Value> {
        query::list(&self.inner, query).await
    }

    /// The stored record of a key given raw or hashed, with live spend; `None` when unknown.
    pub async fn get_key(&self, key: &str) -> Result<Option<KeyRecord>> {
        query::get_key(&self.inner, key).await
    }

    /// Per-day spend of a key (raw or hash) as written so far by the batch writer.
    pub async fn spend_logs(&self, key: &str) -> Result<Vec<DailySpend>> {
        query::spend_logs(&self.inner, key).await
    }

    /// Runs one budget-reset pass now (the background task does this every
    /// `budget_reset_interval`). Returns how many keys were reset.
    pub async fn reset_budgets(&self) -> Result<usize> {
        let keys = budget_reset::reset_due(&self.inner).await?;
        let others = crate::principals::resets::reset_due(&self.inner).await?;
        Ok(keys + others)
    }

    // ---- Vault mirror: outbox and drift ----------------------------------------------------

    /// Retries the due Vault deletions once. Returns how many are done. The outbox worker calls
    /// this; it is public for one-off runs (e.g. `vaultgate check --fix`) and tests.
    pub async fn process_outbox(&self) -> Result<usize> {
        self.inner.outbox.process().await
    }

    /// Names of Vault copies still waiting for deletion.
    pub async fn pending_vault_deletions(&self) -> Result<Vec<String>> {
        self.inner.outbox.pending().await
    }

    /// Starts the task that retries queued Vault deletions with backoff until done (also those
    /// left from before a restart). It stops when `shutdown` is cancelled. Without a mirror the
    /// task ends at once.
    pub fn spawn_outbox_worker(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        self.inner.outbox.spawn_worker(shutdown)
    }

    /// Makes the Vault copy at `name` agree with the key store now (the console's repair): a
    /// copy no key owns is deleted, a key's copy gets the key's value back from the copy's
    /// history. What fails stays queued for the outbox worker; a key whose value is nowhere in
    /// the history keeps no copy (regenerate it). Runs under the admin lock, so a key being
    /// written on this instance is never taken for an orphan.
    pub async fn repair_copy(&self, name: &str) {
        if self.inner.mirror.is_none() {
            return;
        }
        let _admin = self.inner.admin.lock().await;
        self.inner.outbox.queue_and_repair(name).await;
    }

    /// Keys without a Vault copy and copies without a key (for `vaultgate check`). Empty when no
    /// mirror is configured.
    pub async fn drift(&self) -> Result<DriftReport> {
        let Some(mirror) = &self.inner.mirror else {
            return Ok(DriftReport::default());
        };
        let mut teams: Vec<(String, crate::vault_location::Location)> = Vec::new();
        for entry in self.inner.directory.teams() {
            let team = &entry.team.record;
            match crate::vault_location::Location::of_metadata(&team.metadata) {
                Ok(location) => teams.push((team.team_id.clone(), location)),
                Err(e) => {
                    tracing::warn!(team = %team.team_id, error = %e, "team's Vault settings unreadable")
                }
            }
        }
        teams.sort();
        drift::report(mirror, &self.inner.store, &teams).await
    }
}

/// Re-reads the directory every `directory_reload_interval` until the service stops or is gone:
/// other instances' changes and spend arrive this way (or sooner through `invalidate_object`).
async fn reload_directory(weak: std::sync::Weak<Inner>) {
    budget_reset::every(weak, |o| o.directory_reload_interval, |inner| async move {
        if let Err(e) = inner.directory.load_all(&inner.store).await {
            tracing::warn!(error = %e, "reloading teams and users failed; serving what is known");
        }
    })
    .await;
}
