//! The background refresher of [`super::GoogleTokens`]: fetches each token when it is due (a
//! third of its lifetime before expiry, or the first time), retries a failing source with
//! backoff, and forgets keys no request used for a while.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use super::{Entry, IDLE_LIMIT, Inner, MAX_SLEEP, MIN_SLEEP, now_secs};

/// Replaces tokens when they are due, forgets idle keys; ends when the cache is dropped.
pub(super) async fn refresh_loop(inner: Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let mut entries: Vec<(Option<Box<str>>, Arc<Entry>)> = match inner.entries.read() {
            Ok(entries) => entries
                .iter()
                .map(|(k, v)| (Some(k.clone()), Arc::clone(v)))
                .collect(),
            Err(_) => return,
        };
        entries.extend(inner.adc.get().map(|adc| (None, Arc::clone(adc))));
        let mut next = SystemTime::now() + MAX_SLEEP;
        for (key, entry) in entries {
            let idle = now_secs().saturating_sub(entry.last_used.load(Ordering::Relaxed));
            if let Some(key) = &key
                && idle > IDLE_LIMIT.as_secs()
            {
                if let Ok(mut map) = inner.entries.write() {
                    map.remove(key);
                }
                continue;
            }
            let retry_at = entry.retry_at.lock().ok().and_then(|r| *r);
            let due = || {
                let at = entry.token.load().as_ref().map(|t| t.refresh_at());
                let now = SystemTime::now();
                at.is_none_or(|at| at <= now) && retry_at.is_none_or(|at| at <= now)
            };
            if due() {
                let _one = entry.fetching.lock().await;
                // A request may have fetched one meanwhile.
                if due()
                    && let Err(error) = inner.fetch(&entry).await
                {
                    tracing::warn!(%error, "refreshing a Vertex AI access token failed; retrying");
                }
            }
            let retry_at = entry.retry_at.lock().ok().and_then(|r| *r);
            let refresh_at = entry.token.load().as_ref().map(|t| t.refresh_at());
            for at in [retry_at, refresh_at].into_iter().flatten() {
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
