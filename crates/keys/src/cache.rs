//! Authentication of virtual keys from an in-memory cache: a hit is served at once (a stale one
//! is refreshed in the background), a miss reads the store once, unknown keys are remembered
//! briefly. [`KeyCache::invalidate`] forgets a key; the management API calls it after every
//! change, and a cross-instance notification can call it too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use vaultgate_core::{Error, FastHashState, Result};

use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::hot_metrics::hot_metrics;
use crate::live::LiveMap;
use crate::model::{KeyRecord, format_ms, hash_key, is_raw_key, key_name};
use crate::store::Store;

pub(crate) struct KeyCache {
    entries: Cache<String, Arc<Cached>, FastHashState>,
    misses: Cache<String, (), FastHashState>,
    /// Bumped on every invalidation, so a lookup that raced with one does not re-cache stale data.
    epoch: AtomicU64,
    /// Records loaded before this (ms since `created`) are re-read at their next use.
    stale_before_ms: AtomicU64,
    created: Instant,
    /// How long a record is trusted before a background refresh.
    ttl: Duration,
    store: Store,
    live: Arc<LiveMap>,
    clock: Arc<dyn Clock>,
    /// Says whether other instances' changes reach this one; while not, records are trusted
    /// for [`UNHEARD_TTL`] only.
    cluster: Arc<Cluster>,
}

/// How long a cached record is trusted while other instances' changes cannot be heard.
const UNHEARD_TTL: Duration = Duration::from_secs(1);

/// Sizes and lifetimes of the caches (from `KeyServiceOptions`).
pub(crate) struct CacheSettings {
    pub capacity: u64,
    pub ttl: Duration,
    pub max_stale: Duration,
    pub negative_ttl: Duration,
}

/// A cached key record and when it was read from the store.
struct Cached {
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

fn auth_error(message: impl Into<String>) -> Error {
    Error::Unauthorized(message.into())
}

impl KeyCache {
    pub fn new(
        settings: &CacheSettings,
        store: Store,
        live: Arc<LiveMap>,
        clock: Arc<dyn Clock>,
        cluster: Arc<Cluster>,
    ) -> Arc<Self> {
        let entries = Cache::builder()
            .max_capacity(settings.capacity)
            .time_to_live(settings.ttl.saturating_add(settings.max_stale))
            .build_with_hasher(FastHashState::default());
        let misses = Cache::builder()
            .max_capacity(settings.capacity)
            .time_to_live(settings.negative_ttl)
            .build_with_hasher(FastHashState::default());
        Arc::new(Self {
            entries,
            misses,
            epoch: AtomicU64::new(0),
            stale_before_ms: AtomicU64::new(0),
            created: Instant::now(),
            ttl: settings.ttl,
            store,
            live,
            clock,
            cluster,
        })
    }

    /// The change channel was lost and is back: every cached key is re-read at its next use,
    /// in the background (served meanwhile, as while the channel was lost; dropping them would
    /// refuse every key while the database is still coming back), unknown keys are forgotten.
    pub fn refresh_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.stale_before_ms.store(now, Ordering::SeqCst);
        self.misses.invalidate_all();
    }

    /// Whether a cached record is due for a re-read.
    fn stale(&self, cached: &Cached) -> bool {
        let loaded_ms = cached
            .loaded_at
            .saturating_duration_since(self.created)
            .as_millis();
        cached.loaded_at.elapsed() >= self.ttl()
            || loaded_ms <= u128::from(self.stale_before_ms.load(Ordering::Relaxed))
    }

    fn ttl(&self) -> Duration {
        if self.cluster.listening() {
            self.ttl
        } else {
            self.ttl.min(UNHEARD_TTL)
        }
    }

    /// Forgets a token on this instance at once (delete, block, update, regenerate, or a change
    /// announced by another instance): its next use reads the store.
    pub fn invalidate(&self, token: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(token);
        self.misses.invalidate(token);
    }

    /// The key record for a raw `sk-…` key: from the cache (the store is read only on a miss).
    /// Unknown, expired or blocked keys give 401 in LiteLLM's wording.
    pub async fn authenticate(self: &Arc<Self>, raw_key: &str) -> Result<Arc<KeyRecord>> {
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
        let record = if let Some(cached) = self.entries.get(&token) {
            hot_metrics().cache_hits.increment(1);
            if self.stale(&cached) && !cached.refreshing.swap(true, Ordering::SeqCst) {
                tokio::spawn(self.clone().refresh(token.clone(), cached.clone()));
            }
            cached.record.clone()
        } else if self.misses.contains_key(&token) {
            metrics::counter!("vaultgate_key_cache_total", "result" => "negative_hit").increment(1);
            return Err(invalid());
        } else {
            metrics::counter!("vaultgate_key_cache_total", "result" => "miss").increment(1);
            let epoch = self.epoch.load(Ordering::SeqCst);
            let read = self.live.flushes.mark();
            let loaded = self.store.get_by_token(&token).await?;
            match loaded {
                Some(record) => {
                    let record = Arc::new(record);
                    self.live.observe(&record, read);
                    self.entries
                        .insert(token.clone(), Cached::new(record.clone()));
                    if self.epoch.load(Ordering::SeqCst) != epoch {
                        // An invalidation raced with the read: do not keep what was read.
                        self.entries.invalidate(&token);
                    }
                    record
                }
                None => {
                    self.misses.insert(token.clone(), ());
                    if self.epoch.load(Ordering::SeqCst) != epoch {
                        self.misses.invalidate(&token);
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
        let now = self.clock.now_ms();
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

    /// Re-reads a stale cached key in the background (the request that noticed does not wait).
    async fn refresh(self: Arc<Self>, token: String, cached: Arc<Cached>) {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let read = self.live.flushes.mark();
        match self.store.get_by_token(&token).await {
            Ok(Some(record)) => {
                let record = Arc::new(record);
                self.live.observe(&record, read);
                if self.epoch.load(Ordering::SeqCst) == epoch {
                    self.entries.insert(token.clone(), Cached::new(record));
                    if self.epoch.load(Ordering::SeqCst) != epoch {
                        self.entries.invalidate(&token);
                    }
                } else {
                    // Something changed meanwhile: let the next request start a fresh read.
                    cached.refreshing.store(false, Ordering::SeqCst);
                }
            }
            Ok(None) => {
                // Deleted (or regenerated) by another instance.
                self.entries.invalidate(&token);
            }
            Err(e) => {
                tracing::warn!(error = %e, "key refresh failed; serving the cached record");
                cached.refreshing.store(false, Ordering::SeqCst);
            }
        }
    }
}
