//! Sends this instance's changes with `pg_notify`, batching what queued up meanwhile, and a
//! ping every few seconds: the listeners of every instance (this one too) hear it, so a silent
//! channel is known to be broken.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::message::payloads;
use super::{Change, Cluster};
use crate::store::Store;

/// How often the channel is proven alive; a listener that hears nothing for
/// [`super::listen::SILENCE_MAX`] re-subscribes.
pub(super) const PING_EVERY: Duration = Duration::from_secs(2);

/// Attempts of one announcement before it is given up (the periodic re-read catches up).
const ATTEMPTS: u32 = 3;

pub(super) async fn run(
    store: Store,
    cluster: Arc<Cluster>,
    mut queue: mpsc::UnboundedReceiver<Change>,
    stop: CancellationToken,
) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ping_payload = format!(r#"{{"from":"{}"}}"#, cluster.instance);
    loop {
        let batch = tokio::select! {
            () = stop.cancelled() => return,
            _ = ping.tick() => {
                // Errors are the listener's business: it notices the silence.
                let _ = notify(&store, &cluster.channel, &ping_payload).await;
                continue;
            }
            change = queue.recv() => match change {
                Some(change) => {
                    let mut batch = vec![change];
                    while let Ok(more) = queue.try_recv() {
                        batch.push(more);
                    }
                    batch
                }
                None => return,
            },
        };
        for payload in payloads(&cluster.instance, batch) {
            send(&store, &cluster.channel, &payload).await;
        }
    }
}

/// One announcement, retried briefly.
async fn send(store: &Store, channel: &str, payload: &str) {
    let mut pause = Duration::from_millis(100);
    for attempt in 1..=ATTEMPTS {
        match notify(store, channel, payload).await {
            Ok(()) => {
                metrics::counter!("vaultgate_cluster_announcements_total", "result" => "ok")
                    .increment(1);
                return;
            }
            Err(e) if attempt == ATTEMPTS => {
                metrics::counter!("vaultgate_cluster_announcements_total", "result" => "error")
                    .increment(1);
                tracing::warn!(error = %e, "a change was not announced to the other instances; they see it at their next re-read");
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
}

async fn notify(store: &Store, channel: &str, payload: &str) -> vaultgate_core::Result<()> {
    // A void result would not decode through the `Any` driver.
    sqlx::query("SELECT 1 AS sent FROM (SELECT pg_notify($1, $2)) AS n")
        .bind(channel.to_owned())
        .bind(payload.to_owned())
        .execute(store.pool()?)
        .await
        .map(|_| ())
        .map_err(|e| store.fail(e))
}
