//! Hears the other instances' changes: forgets changed keys, reloads changed teams, users,
//! organizations, budgets and end users, and takes in spend they wrote. Every (re)subscription
//! is followed by a full flush (cached keys forgotten, the directory reloaded), since what was
//! announced while nobody listened is lost. A channel silent for longer than a few pings is
//! taken for broken and subscribed again.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use vaultgate_core::{Error, Result};

use super::Cluster;
use super::announce::PING_EVERY;
use super::message::{Message, scope_of};
use crate::state::Inner;

/// No notification (not even a ping) for this long: the channel is broken.
pub(super) const SILENCE_MAX: Duration = Duration::from_secs(3 * PING_EVERY.as_secs());

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub(super) async fn run(
    weak: Weak<Inner>,
    cluster: Arc<Cluster>,
    url: String,
    stop: CancellationToken,
) {
    let mut backoff = RETRY_MIN;
    let mut failures = 0u32;
    loop {
        let subscribed = tokio::select! {
            () = stop.cancelled() => return,
            result = subscribe(&weak, &cluster, &url) => result,
        };
        match subscribed {
            Ok(mut listener) => {
                cluster.set_listening(true);
                if failures > 0 {
                    tracing::info!(
                        "listening to the other instances' changes again; caches flushed"
                    );
                }
                failures = 0;
                backoff = RETRY_MIN;
                let Some(reason) = receive(&weak, &cluster, &mut listener, &stop).await else {
                    return;
                };
                cluster.set_listening(false);
                metrics::counter!("vaultgate_cluster_channel_lost_total").increment(1);
                tracing::warn!(%reason, "lost the change notifications of the other instances; subscribing again (cached keys are re-read every second meanwhile)");
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(50) {
                    tracing::warn!(error = %e, failures, "cannot listen to the other instances' changes; retrying");
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(RETRY_MAX);
    }
}

/// Listens on the channel, then flushes what this instance holds: anything cached may be
/// older than a change announced while it did not listen.
async fn subscribe(weak: &Weak<Inner>, cluster: &Cluster, url: &str) -> Result<PgListener> {
    let db = |e: sqlx::Error| Error::Database(e.to_string());
    let listener = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut listener = PgListener::connect(url).await.map_err(db)?;
        // A lost connection is the caller's to handle (it flushes after re-subscribing).
        listener.eager_reconnect(false);
        listener.listen(&cluster.channel).await.map_err(db)?;
        Ok::<_, Error>(listener)
    })
    .await
    .map_err(|_| Error::Database("connecting to listen timed out".into()))??;
    let Some(inner) = weak.upgrade() else {
        return Err(Error::Unavailable("the key service is gone".into()));
    };
    inner.cache.refresh_all();
    // Notifications arriving meanwhile wait in the listener's buffer.
    inner.directory.load_all(&inner.store).await?;
    Ok(listener)
}

/// Applies notifications until the channel breaks (`Some(reason)`) or the service stops.
async fn receive(
    weak: &Weak<Inner>,
    cluster: &Cluster,
    listener: &mut PgListener,
    stop: &CancellationToken,
) -> Option<String> {
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return None,
            next = tokio::time::timeout(SILENCE_MAX, listener.try_recv()) => next,
        };
        let notification = match next {
            Err(_) => return Some(format!("nothing heard for {}s", SILENCE_MAX.as_secs())),
            Ok(Err(e)) => return Some(e.to_string()),
            Ok(Ok(None)) => return Some("connection lost".into()),
            Ok(Ok(Some(notification))) => notification,
        };
        let message: Message = match serde_json::from_str(notification.payload()) {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring a notification that is not ours");
                continue;
            }
        };
        if message.from == cluster.instance {
            continue;
        }
        let inner = weak.upgrade()?;
        apply(&inner, message).await;
    }
}

async fn apply(inner: &Inner, message: Message) {
    for token in &message.keys {
        inner.cache.invalidate(token);
    }
    for (kind, id) in &message.objects {
        if let Err(e) = reload_object(inner, kind, id).await {
            tracing::warn!(kind = %kind, id = %id, error = %e, "a change announced by another instance was not reloaded; the next full reload will");
        }
    }
    if !message.spend.is_empty() {
        let known: Vec<String> = message
            .spend
            .into_iter()
            .filter(|id| inner.live.get(id).is_some())
            .collect();
        let read = inner.live.flushes.mark();
        match inner.store.key_spends(&known).await {
            Ok(rows) => {
                for (key_id, spend, reset_at, updated_at) in rows {
                    if let Some(live) = inner.live.get(&key_id) {
                        live.reconcile(spend, reset_at, updated_at, read);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "spend of other instances not read"),
        }
    }
    for parts in &message.scopes {
        let Some(scope) = scope_of(parts) else {
            continue;
        };
        let Some(live) = inner.directory.live_of(&scope) else {
            continue;
        };
        let read = inner.live.flushes.mark();
        match inner.store.scope_spend(&scope).await {
            Ok(Some((spend, reset_at, updated_at))) => {
                live.reconcile(spend, reset_at, updated_at, read);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "spend of other instances not read"),
        }
    }
}

/// Reloads one team, user, organization, budget or end user from the store.
pub(crate) async fn reload_object(inner: &Inner, kind: &str, id: &str) -> Result<()> {
    let (directory, store) = (&inner.directory, &inner.store);
    match kind {
        "team" => directory.reload_team(store, id).await,
        "user" => directory.reload_user(store, id).await,
        "organization" => directory.reload_org(store, id).await,
        "budget" => directory.reload_budget(store, id).await,
        "end_user" => directory.reload_end_user(store, id).await,
        other => Err(Error::Internal(format!(
            "unknown kind of object to invalidate: {other}"
        ))),
    }
}
