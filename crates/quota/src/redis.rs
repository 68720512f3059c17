//! Limits shared by every instance through Redis.
//!
//! - **Admission**: one script call ([`ACQUIRE`]) checks every scope's rpm and tpm windows and
//!   parallel slots and, if all have room, counts the request in each and leases a slot: one
//!   round trip, atomic, on Redis's clock (`TIME`), so instance clocks may disagree.
//! - **Parallel slots** are members `{instance}:{lease}` of a sorted set per scope. A finished
//!   request removes its member (the writer task, batched in one pipeline). Each instance
//!   refreshes its entry in an instances set every `heartbeat`; a full scope first drops the
//!   members of instances that stopped doing so for `instance_ttl` (crashed, or cut off), so no
//!   slot leaks for longer than that.
//! - **Tokens** are added to the tpm window by the writer after the answer, also pipelined.
//! - **Redis down or slow**: an admission that gets no answer within `timeout` marks Redis
//!   unavailable; until a heartbeat gets through again, requests are admitted against this
//!   instance's own counts with each limit divided by the number of instances last seen (fail
//!   open, counted in `vaultgate_quota_fail_open_total`). The connection manager reconnects.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use smallvec::SmallVec;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vaultgate_core::{Error, Result};

use crate::local::{admit_locally, count_locally};
use crate::permit::{Permit, SharedLease};
use crate::settings::RedisSettings;
use crate::window::{Full, rejection};
use crate::{Ask, Quota, QuotaHealth, Scope, WindowUse};

/// Checks and counts one request in every scope, or says which limit is full.
///
/// KEYS[1]: the instances set; KEYS[2..]: the scopes' key prefixes.
/// ARGV: instance, lease, instance_ttl_ms, max_lease_ms, window_ms, then rpm, tpm, parallel per scope
/// (-1: no limit). Returns `{0, requests, tokens, …}` when admitted (each scope's counts in this
/// minute, the request included; -1 where it has no such limit), else `{1 rpm | 2 tpm |
/// 3 parallel, scope index (1-based), ms until the window ends}`.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[5])
local minute = math.floor(now / window)
local retry = window - (now % window)
local me, lease = ARGV[1], ARGV[2]
local ttl, max_lease = tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS - 1
for i = 1, n do
  local base = KEYS[i + 1]
  local rpm, tpm, par = tonumber(ARGV[3 + 3 * i]), tonumber(ARGV[4 + 3 * i]), tonumber(ARGV[5 + 3 * i])
  if rpm >= 0 and tonumber(redis.call('GET', base .. ':rpm:' .. minute) or '0') >= rpm then
    return {1, i, retry}
  end
  if tpm >= 0 and tonumber(redis.call('GET', base .. ':tpm:' .. minute) or '0') >= tpm then
    return {2, i, retry}
  end
  if par >= 0 then
    local slots = base .. ':par'
    if redis.call('ZCARD', slots) >= par then
      -- Full: first drop what cannot be in flight any more.
      redis.call('ZREMRANGEBYSCORE', slots, '-inf', now - max_lease)
      local alive = {[me] = true}
      for _, member in ipairs(redis.call('ZRANGE', slots, 0, -1)) do
        local owner = string.match(member, '^([^:]+):') or member
        if alive[owner] == nil then
          local seen = redis.call('ZSCORE', KEYS[1], owner)
          alive[owner] = seen ~= false and tonumber(seen) > now - ttl
        end
        if not alive[owner] then
          redis.call('ZREM', slots, member)
        end
      end
      if redis.call('ZCARD', slots) >= par then
        return {3, i, 1000}
      end
    end
  end
end
local seen = {0}
for i = 1, n do
  local base = KEYS[i + 1]
  local requests, tokens = -1, -1
  if tonumber(ARGV[3 + 3 * i]) >= 0 then
    local key = base .. ':rpm:' .. minute
    requests = redis.call('INCR', key)
    if requests == 1 then
      redis.call('PEXPIRE', key, 2 * window)
    end
  end
  if tonumber(ARGV[4 + 3 * i]) >= 0 then
    tokens = tonumber(redis.call('GET', base .. ':tpm:' .. minute) or '0')
  end
  if tonumber(ARGV[5 + 3 * i]) >= 0 then
    local slots = base .. ':par'
    redis.call('ZADD', slots, now, me .. ':' .. lease)
    redis.call('PEXPIRE', slots, max_lease)
  end
  table.insert(seen, requests)
  table.insert(seen, tokens)
end
return seen
";

/// Adds tokens to a scope's current tpm window. KEYS[1]: the scope's prefix; ARGV: tokens,
/// window_ms.
const TOKENS: &str = r"
local t = redis.call('TIME')
local window = tonumber(ARGV[2])
local key = KEYS[1] .. ':tpm:' .. math.floor((tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) / window)
redis.call('INCRBY', key, ARGV[1])
redis.call('PEXPIRE', key, 2 * window)
return 0
";

/// This instance is alive: refresh its entry, forget the silent ones, count the rest.
/// KEYS[1]: the instances set; ARGV: instance, instance_ttl_ms.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], 86400000)
return redis.call('ZCARD', KEYS[1])
";

const INSTANCES_KEY: &str = "vaultgate:q:instances";

/// Settings of the shared limits; `new(settings)` gives the defaults.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub settings: RedisSettings,
    /// How long an admission waits for Redis before it fails open.
    pub timeout: Duration,
    /// How often this instance says it is alive (and, while Redis is away, tries it again).
    pub heartbeat: Duration,
    /// An instance silent for this long is gone: its parallel slots are freed.
    pub instance_ttl: Duration,
    /// A parallel slot older than this is freed even if its instance lives (a release lost
    /// with a long Redis outage must not hold a slot forever). Longer than any request.
    pub max_lease: Duration,
    /// The rpm/tpm window: one minute. Shorter only in tests of its edges.
    #[doc(hidden)]
    pub window: Duration,
}

impl RedisOptions {
    pub fn new(settings: RedisSettings) -> Self {
        Self {
            settings,
            timeout: Duration::from_millis(250),
            heartbeat: Duration::from_secs(1),
            instance_ttl: Duration::from_secs(5),
            max_lease: Duration::from_secs(3600),
            window: Duration::from_secs(60),
        }
    }
}

/// Rate limits shared through Redis. Cheap to share behind the [`crate::Limiter`].
pub struct RedisQuota {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    conn: ConnectionManager,
    options: RedisOptions,
    writer: Arc<Writer>,
    /// Random per process, so a restarted instance never owns its predecessor's slots.
    instance: String,
    next_lease: AtomicU64,
    up: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Instances seen by the last heartbeat (0: not known yet).
    instances: AtomicU64,
    acquire: redis::Script,
    heartbeat: redis::Script,
    stop: CancellationToken,
    metrics: QuotaMetrics,
}

struct QuotaMetrics {
    fail_open: metrics::Counter,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl RedisQuota {
    /// Connects (waiting at most `timeout` + 2 s for the first answer) and starts the heartbeat
    /// and the writer. Redis unreachable now is no error: limits are per instance until it is
    /// reachable. Only a malformed URL is.
    pub async fn start(options: RedisOptions) -> Result<Self> {
        let client = redis::Client::open(options.settings.url())
            .map_err(|e| Error::Config(format!("redis_url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout.max(Duration::from_secs(1))))
            .set_response_timeout(Some(options.timeout.max(Duration::from_millis(50))))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| Error::Config(format!("redis_url: {e}")))?;
        let instance = format!("{:016x}", rand::random::<u64>());
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Arc::new(Writer {
            tx,
            instance: instance.clone(),
        });
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            conn,
            options,
            writer,
            instance,
            next_lease: AtomicU64::new(1),
            up: AtomicBool::new(false),
            last_error: Mutex::new(Some("not connected yet".into())),
            instances: AtomicU64::new(0),
            acquire: redis::Script::new(ACQUIRE),
            heartbeat: redis::Script::new(HEARTBEAT),
            stop,
            metrics: QuotaMetrics {
                fail_open: metrics::counter!("vaultgate_quota_fail_open_total"),
            },
        });
        metrics::gauge!("vaultgate_quota_redis_up").set(0.0);
        // Shown from the start (at 0), so an alert on its rate needs no first failure.
        metrics::counter!("vaultgate_quota_redis_errors_total").increment(0);
        if !shared.beat().await {
            tracing::warn!(
                redis = shared.options.settings.redacted(),
                error = shared.error().unwrap_or_default(),
                "Redis is unreachable: rate limits are per instance until it answers"
            );
        }
        let heartbeat = tokio::spawn(heartbeat_loop(Arc::clone(&shared)));
        let writer = tokio::spawn(write_loop(Arc::clone(&shared), rx));
        Ok(Self {
            shared,
            tasks: Mutex::new(vec![heartbeat, writer]),
        })
    }

    /// Admits one request; see [`Quota::acquire`].
    pub async fn acquire(&self, asks: &[Ask<'_>], now_ms: i64) -> Result<Permit> {
        let shared = &self.shared;
        // Scopes without limits need no shared count: no round trip for them.
        let limited: SmallVec<[usize; 2]> = asks
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.limits.is_unlimited())
            .map(|(i, _)| i)
            .collect();
        if limited.is_empty() {
            return Ok(Permit::local(count_locally(asks, now_ms, false)));
        }
        if shared.up.load(Ordering::Relaxed) {
            let lease = shared.next_lease.fetch_add(1, Ordering::Relaxed);
            let mut call = shared.acquire.key(INSTANCES_KEY);
            call.arg(&shared.instance)
                .arg(lease)
                .arg(ms(shared.options.instance_ttl))
                .arg(ms(shared.options.max_lease))
                .arg(ms(shared.options.window));
            for &i in &limited {
                let limits = &asks[i].limits;
                let limit = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
                call.key(asks[i].scope.redis_key())
                    .arg(limit(limits.rpm))
                    .arg(limit(limits.tpm))
                    .arg(limit(limits.parallel));
            }
            let mut conn = shared.conn.clone();
            let answer = tokio::time::timeout(
                shared.options.timeout,
                call.invoke_async::<Vec<i64>>(&mut conn),
            )
            .await;
            match answer {
                Ok(Ok(reply)) => match reply.as_slice() {
                    [0, seen @ ..] => {
                        let lease = SharedLease {
                            writer: Arc::clone(&shared.writer),
                            lease,
                        };
                        let mut held = count_locally(asks, now_ms, true);
                        for (&i, counts) in limited.iter().zip(seen.chunks_exact(2)) {
                            if let Some(h) = held.get_mut(i) {
                                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                                h.seen = Some(WindowUse {
                                    requests: count(counts[0]),
                                    tokens: count(counts[1]),
                                });
                            }
                        }
                        return Ok(Permit::shared(held, lease));
                    }
                    [code, index, retry_ms] => {
                        let full = match code {
                            1 => Full::Rpm,
                            2 => Full::Tpm,
                            _ => Full::Parallel,
                        };
                        let ask = usize::try_from(*index - 1)
                            .ok()
                            .and_then(|i| limited.get(i))
                            .map(|&i| &asks[i]);
                        if let Some(ask) = ask {
                            let limit = match full {
                                Full::Rpm => ask.limits.rpm,
                                Full::Tpm => ask.limits.tpm,
                                Full::Parallel => ask.limits.parallel,
                            };
                            return Err(rejection(full, limit.unwrap_or(0), ask, *retry_ms));
                        }
                        shared.down(&format!("unexpected answer of the limit script: {reply:?}"));
                    }
                    _ => shared.down(&format!("unexpected answer of the limit script: {reply:?}")),
                },
                Ok(Err(e)) => shared.down(&e.to_string()),
                Err(_) => shared.down(&format!(
                    "no answer within {} ms",
                    shared.options.timeout.as_millis()
                )),
            }
        }
        // Fail open: this instance's share of each limit.
        shared.metrics.fail_open.increment(1);
        let instances = shared.instances.load(Ordering::Relaxed).max(1);
        admit_locally(asks, now_ms, instances).map(Permit::local)
    }

    pub fn health(&self) -> QuotaHealth {
        if self.shared.up.load(Ordering::Relaxed) {
            QuotaHealth::Shared
        } else {
            QuotaHealth::Degraded {
                error: self
                    .shared
                    .error()
                    .unwrap_or_else(|| "Redis is unavailable".into()),
            }
        }
    }

    /// Instances that sent a heartbeat lately (0 until the first one got through).
    pub fn instances_seen(&self) -> u64 {
        self.shared.instances.load(Ordering::Relaxed)
    }

    pub fn redis(&self) -> &RedisSettings {
        &self.shared.options.settings
    }

    /// Stops the heartbeat and lets the writer send what is queued (bounded wait).
    pub async fn shutdown(&self) {
        self.shared.stop.cancel();
        let tasks: Vec<JoinHandle<()>> = match self.tasks.lock() {
            Ok(mut tasks) => tasks.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

impl Quota for RedisQuota {
    async fn acquire(&self, asks: &[Ask<'_>], now_ms: i64) -> Result<Permit> {
        RedisQuota::acquire(self, asks, now_ms).await
    }

    fn health(&self) -> QuotaHealth {
        RedisQuota::health(self)
    }
}

impl Drop for RedisQuota {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

impl Shared {
    fn error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Redis failed: fail open until a heartbeat gets through.
    fn down(&self, error: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_owned());
        }
        metrics::counter!("vaultgate_quota_redis_errors_total").increment(1);
        if self.up.swap(false, Ordering::Relaxed) {
            metrics::gauge!("vaultgate_quota_redis_up").set(0.0);
            tracing::warn!(
                redis = self.options.settings.redacted(),
                error,
                "Redis is unavailable: rate limits are per instance until it answers again"
            );
        }
    }

    /// One heartbeat; true when Redis answered.
    async fn beat(&self) -> bool {
        let mut conn = self.conn.clone();
        let mut call = self.heartbeat.key(INSTANCES_KEY);
        call.arg(&self.instance).arg(ms(self.options.instance_ttl));
        let answer = tokio::time::timeout(
            self.options.timeout * 4,
            call.invoke_async::<u64>(&mut conn),
        )
        .await;
        match answer {
            Ok(Ok(instances)) => {
                self.instances.store(instances, Ordering::Relaxed);
                if !self.up.swap(true, Ordering::Relaxed) {
                    metrics::gauge!("vaultgate_quota_redis_up").set(1.0);
                    tracing::info!(
                        redis = self.options.settings.redacted(),
                        instances,
                        "Redis answers: rate limits are shared by every instance"
                    );
                }
                if let Ok(mut last) = self.last_error.lock() {
                    *last = None;
                }
                true
            }
            Ok(Err(e)) => {
                self.down(&e.to_string());
                false
            }
            Err(_) => {
                self.down("no answer to the heartbeat");
                false
            }
        }
    }
}

async fn heartbeat_loop(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => return,
            () = tokio::time::sleep(shared.options.heartbeat) => {}
        }
        shared.beat().await;
    }
}

/// What the writer sends to Redis after a request.
enum Op {
    /// Free the request's parallel slots.
    Release {
        scopes: SmallVec<[Scope; 2]>,
        lease: u64,
    },
    /// Count tokens in the tpm windows; dropped if it could not be sent within a minute.
    Tokens {
        scopes: SmallVec<[Scope; 2]>,
        tokens: u64,
        at: Instant,
    },
}

/// The request side of the writer task: queue only, never wait.
pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Op>,
    instance: String,
}

impl Writer {
    pub fn release(&self, scopes: SmallVec<[Scope; 2]>, lease: u64) {
        let _ = self.tx.send(Op::Release { scopes, lease });
    }

    pub fn tokens(&self, scopes: SmallVec<[Scope; 2]>, tokens: u64) {
        let _ = self.tx.send(Op::Tokens {
            scopes,
            tokens,
            at: Instant::now(),
        });
    }
}

/// Most queued operations kept while Redis is away; older ones are dropped (a lost release is
/// freed by `max_lease` at the latest).
const MAX_QUEUED: usize = 100_000;
/// Most operations in one pipeline.
const BATCH: usize = 1_000;

/// Sends queued releases and token counts, many per pipeline; keeps them while Redis is away.
async fn write_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut queue: VecDeque<Op> = VecDeque::new();
    let mut retry_delay = Duration::from_millis(50);
    loop {
        if queue.is_empty() {
            tokio::select! {
                biased;
                op = rx.recv() => match op {
                    Some(op) => queue.push_back(op),
                    None => return,
                },
                () = shared.stop.cancelled() => {
                    while let Ok(op) = rx.try_recv() {
                        queue.push_back(op);
                    }
                    if !queue.is_empty() {
                        let _ = send_batch(&shared, &mut queue).await;
                    }
                    return;
                }
            }
        }
        while let Ok(op) = rx.try_recv() {
            queue.push_back(op);
        }
        while queue.len() > MAX_QUEUED {
            queue.pop_front();
            metrics::counter!("vaultgate_quota_writes_dropped_total").increment(1);
        }
        match send_batch(&shared, &mut queue).await {
            Ok(()) => retry_delay = Duration::from_millis(50),
            Err(e) => {
                shared.down(&e);
                tokio::select! {
                    () = shared.stop.cancelled() => return,
                    () = tokio::time::sleep(retry_delay) => {}
                }
                retry_delay = (retry_delay * 2).min(shared.options.heartbeat);
            }
        }
    }
}

/// Sends up to [`BATCH`] queued operations in one pipeline; on success they leave the queue.
async fn send_batch(shared: &Shared, queue: &mut VecDeque<Op>) -> std::result::Result<(), String> {
    queue.retain(
        |op| !matches!(op, Op::Tokens { at, .. } if at.elapsed() > Duration::from_secs(60)),
    );
    let count = queue.len().min(BATCH);
    if count == 0 {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for op in queue.iter().take(count) {
        match op {
            Op::Release { scopes, lease } => {
                let member = format!("{}:{lease}", shared.writer.instance);
                for scope in scopes {
                    pipe.cmd("ZREM")
                        .arg(format!("{}:par", scope.redis_key()))
                        .arg(&member)
                        .ignore();
                }
            }
            Op::Tokens { scopes, tokens, .. } => {
                for scope in scopes {
                    // EVAL, not EVALSHA: a restarted Redis has forgotten loaded scripts, and a
                    // half-failed pipeline must not be sent again (tokens would count twice).
                    pipe.cmd("EVAL")
                        .arg(TOKENS)
                        .arg(1)
                        .arg(scope.redis_key())
                        .arg(*tokens)
                        .arg(ms(shared.options.window))
                        .ignore();
                }
            }
        }
    }
    let mut conn = shared.conn.clone();
    let sent = tokio::time::timeout(
        shared.options.timeout * 4,
        pipe.query_async::<()>(&mut conn),
    )
    .await;
    match sent {
        Ok(Ok(())) => {
            queue.drain(..count);
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer to a pipeline of releases and token counts".into()),
    }
}
