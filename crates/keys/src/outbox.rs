//! The persistent outbox of Vault repairs. A name is queued when its copy may not match the
//! store: the key was deleted or renamed (the copy must go), or a multi-step write failed half
//! way (the copy must be what the store says). Repairing a name makes Vault agree with the
//! store: no key owns it → delete it; a key owns it → the copy holds that key's value, put back
//! from Vault's version history when a later write replaced it. Tried at once when Vault
//! answers, else retried with backoff by a worker until done (also across restarts).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vaultgate_core::Result;

use secrecy::ExposeSecret;

use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::mirror::MirrorConfig;
use crate::model::hash_key;
use crate::options::KeyServiceOptions;
use crate::store::{self, OutboxEntry, Store, db_err};
use crate::vault_copy::{find_version, secret_metadata};

/// How a repair ended.
enum Repaired {
    /// Vault agrees with the store.
    Done,
    /// The owner's value is nowhere in the copy's history: nothing left to restore.
    Lost,
}

pub(crate) struct Outbox {
    /// Only the instance that runs the background jobs works the queue.
    cluster: Arc<Cluster>,
    store: Store,
    mirror: Option<MirrorConfig>,
    /// The key service's admin lock: an entry is processed while no key is being written.
    admin: Arc<tokio::sync::Mutex<()>>,
    /// Wakes the worker when work is queued on this instance.
    wake: Arc<Notify>,
    clock: Arc<dyn Clock>,
    retry_min: Duration,
    retry_max: Duration,
    poll_interval: Duration,
    /// When a queued repair was last tried (clock ms), for [`PROBE_EVERY`].
    last_try: AtomicI64,
}

/// While repairs are queued, one is tried at least this often whatever its backoff: Vault
/// comes back long before a backoff of up to `outbox_retry_max` ends, and the copies should
/// follow within seconds.
const PROBE_EVERY: Duration = Duration::from_secs(2);

impl Outbox {
    pub fn new(
        store: Store,
        options: &KeyServiceOptions,
        admin: Arc<tokio::sync::Mutex<()>>,
        cluster: Arc<Cluster>,
    ) -> Self {
        Self {
            cluster,
            store,
            mirror: options.mirror.clone(),
            admin,
            wake: Arc::new(Notify::new()),
            clock: options.clock.clone(),
            retry_min: options.outbox_retry_min,
            retry_max: options.outbox_retry_max,
            poll_interval: options.outbox_poll_interval,
            last_try: AtomicI64::new(i64::MIN),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Tries the repair of a name whose outbox row is committed; on failure the row stays for
    /// the worker. Called with the admin lock held.
    pub async fn repair_now(&self, name: &str) {
        let Some(mirror) = &self.mirror else { return };
        match self.repair(mirror, name).await {
            Ok(_) => {
                if let Err(e) = self.store.outbox_remove(name).await {
                    tracing::warn!(secret = name, error = %e, "Vault copy repaired but outbox row kept");
                }
            }
            Err(e) => {
                metrics::counter!("vaultgate_key_vault_mirror_errors_total", "op" => "repair")
                    .increment(1);
                tracing::warn!(secret = name, error = %e, "Vault copy not repaired yet; queued for retry");
                let next = self.now().saturating_add(duration_ms(self.retry_min));
                if let Err(e) = self
                    .store
                    .outbox_failed(name, 1, next, &e.to_string())
                    .await
                {
                    tracing::warn!(secret = name, error = %e, "could not note the failed repair");
                }
                self.wake.notify_one();
            }
        }
    }

    /// A multi-step write of `name` failed after Vault may have applied part of it: queue the
    /// name and try the repair now.
    pub async fn queue_and_repair(&self, name: &str) {
        let queued = async {
            let mut tx = self.store.begin().await?;
            store::outbox_add(&mut tx, name, self.now())
                .await
                .map_err(db_err)?;
            tx.commit().await
        };
        match queued.await {
            Ok(()) => self.repair_now(name).await,
            Err(e) => {
                // The store is away too: one direct attempt, then `vaultgate check` shows it.
                if let Some(mirror) = &self.mirror
                    && self.repair(mirror, name).await.is_ok()
                {
                    return;
                }
                tracing::error!(secret = name, error = %e, "Vault copy may not match the key store and could not be queued for repair; see `vaultgate check`");
            }
        }
    }

    /// Makes the copy at `name` agree with the store.
    async fn repair(&self, mirror: &MirrorConfig, name: &str) -> Result<Repaired> {
        let Some(owner) = self.store.get_by_secret_name(name).await? else {
            mirror.delete(name).await?;
            return Ok(Repaired::Done);
        };
        let read = mirror.read(name, None).await?;
        let holds_owner = read
            .value()
            .is_some_and(|v| hash_key(v.expose_secret()) == owner.token);
        if !holds_owner {
            let Some(value) = find_version(mirror, name, read.version, &owner.token).await? else {
                metrics::counter!("vaultgate_key_vault_copy_lost_total").increment(1);
                tracing::error!(
                    key = %owner.key_name,
                    secret = name,
                    "the key's value is not in its Vault copy's history; regenerate the key to \
                     give it a copy"
                );
                return Ok(Repaired::Lost);
            };
            let restored = mirror.write(name, &value, read.version).await?;
            if restored.is_none() {
                return Err(vaultgate_core::Error::Unavailable(format!(
                    "the Vault copy '{name}' changed during its repair"
                )));
            }
            tracing::info!(key = %owner.key_name, secret = name, "Vault copy restored to the key's value");
        }
        mirror
            .write_metadata(name, &secret_metadata(&owner))
            .await?;
        Ok(Repaired::Done)
    }

    /// Retries the due repairs once, or, when none is due and none was tried for
    /// [`PROBE_EVERY`], the oldest queued one: if it works Vault is back, and the others go at
    /// once rather than after their backoff. Returns how many are done.
    pub async fn process(&self) -> Result<usize> {
        let Some(mirror) = &self.mirror else {
            return Ok(0);
        };
        let now = self.now();
        let mut due = self.store.outbox_due(now).await?;
        let mut done = 0;
        let probe_due = self.last_try.load(Ordering::Relaxed) <= now - duration_ms(PROBE_EVERY);
        if due.is_empty()
            && probe_due
            && let Some(oldest) = self.store.outbox_due(i64::MAX).await?.into_iter().next()
        {
            self.last_try.store(now, Ordering::Relaxed);
            let repaired = {
                let _admin = self.admin.lock().await;
                self.repair(mirror, &oldest.secret_name).await
            };
            match repaired {
                Ok(_) => {
                    self.store.outbox_remove(&oldest.secret_name).await?;
                    tracing::info!(secret = %oldest.secret_name, "queued Vault repair done; the rest of the queue follows at once");
                    done = 1;
                    due = self.store.outbox_due(i64::MAX).await?;
                }
                // Its own backoff stays as it was: the probe is an extra try.
                Err(e) => {
                    tracing::debug!(secret = %oldest.secret_name, error = %e, "Vault repair probe failed");
                }
            }
        }
        done += self.retry(mirror, due).await?;
        self.report_pending().await;
        Ok(done)
    }

    /// Tries each of `entries`, removing those done and pushing the others' next attempt back.
    async fn retry(&self, mirror: &MirrorConfig, entries: Vec<OutboxEntry>) -> Result<usize> {
        let mut done = 0;
        for entry in entries {
            let _admin = self.admin.lock().await;
            self.last_try.store(self.now(), Ordering::Relaxed);
            match self.repair(mirror, &entry.secret_name).await {
                Ok(_) => {
                    self.store.outbox_remove(&entry.secret_name).await?;
                    tracing::info!(secret = %entry.secret_name, attempts = entry.attempts + 1, "queued Vault repair done");
                    done += 1;
                }
                Err(e) => {
                    let attempts = entry.attempts + 1;
                    let backoff = backoff_ms(self.retry_min, self.retry_max, attempts);
                    metrics::counter!("vaultgate_key_vault_mirror_errors_total", "op" => "repair")
                        .increment(1);
                    tracing::warn!(secret = %entry.secret_name, attempts, error = %e, "queued Vault repair failed; will retry");
                    self.store
                        .outbox_failed(
                            &entry.secret_name,
                            attempts,
                            self.now().saturating_add(backoff),
                            &e.to_string(),
                        )
                        .await?;
                }
            }
        }
        Ok(done)
    }

    async fn report_pending(&self) {
        #[allow(clippy::cast_precision_loss)]
        let pending = self
            .store
            .outbox_all()
            .await
            .map(|p| p.len() as f64)
            .unwrap_or(0.0);
        metrics::gauge!("vaultgate_vault_outbox_pending").set(pending);
    }

    /// Names of Vault copies still waiting for deletion or repair.
    pub async fn pending(&self) -> Result<Vec<String>> {
        self.store.outbox_all().await
    }

    /// Starts the task that processes the outbox until `shutdown` is cancelled or the service
    /// is gone. Without a mirror the task ends at once.
    pub fn spawn_worker(self: &Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let wake = self.wake.clone();
        let has_mirror = self.mirror.is_some();
        tokio::spawn(async move {
            if !has_mirror {
                return;
            }
            loop {
                let Some(outbox) = weak.upgrade() else { return };
                if !outbox.cluster.runs_jobs() {
                    // Another instance works the queue; take over when it is gone.
                    let cluster = outbox.cluster.clone();
                    let poll = outbox.poll_interval;
                    drop(outbox);
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = cluster.became_leader.notified() => {}
                        () = tokio::time::sleep(poll) => {}
                    }
                    continue;
                }
                metrics::counter!("vaultgate_background_job_runs_total", "job" => "vault_outbox")
                    .increment(1);
                let wait = match outbox.process().await {
                    Ok(_) => match outbox.store.outbox_next_due().await {
                        Ok(Some(due)) => {
                            let ms = due.saturating_sub(outbox.now()).max(0);
                            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
                                .min(outbox.poll_interval)
                                .min(PROBE_EVERY)
                        }
                        Ok(None) => outbox.poll_interval,
                        Err(_) => outbox.retry_min,
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox pass failed");
                        outbox.retry_min
                    }
                };
                drop(outbox);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = wake.notified() => {}
                    () = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
                }
            }
        })
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn backoff_ms(retry_min: Duration, retry_max: Duration, attempts: i64) -> i64 {
    let min = duration_ms(retry_min).max(1);
    let max = duration_ms(retry_max).max(min);
    let shift = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    min.saturating_mul(1i64 << shift.saturating_sub(1)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_backoff_doubles_up_to_the_cap() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(300));
        let delays: Vec<i64> = (1..=12).map(|n| backoff_ms(min, max, n)).collect();
        assert_eq!(&delays[..5], &[1_000, 2_000, 4_000, 8_000, 16_000]);
        assert_eq!(delays[11], 300_000);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
    }
}
