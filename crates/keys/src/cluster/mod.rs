//! Several instances on one PostgreSQL database behave as one gateway. Each instance announces
//! what it changed (keys, teams, users, organizations, budgets, end users, written spend) with
//! `NOTIFY` on a channel of its database schema, and listens on it for the others' changes
//! ([`listen`]); a lost channel is re-subscribed and followed by a full flush of what is cached.
//! One instance at a time holds a session advisory lock and runs the background jobs (Vault
//! outbox, budget resets) ([`leader`]); when it dies, its connection closes, the lock is free and
//! another instance takes the jobs over. On SQLite (one instance) nothing is announced and this
//! instance always runs the jobs.

mod announce;
mod leader;
mod listen;
mod message;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::JoinHandle;
use vaultgate_core::Result;

use crate::principals::directory::Scope;
use crate::state::Inner;
use crate::store::{Backend, Store};

pub(crate) use listen::reload_object;

/// A change this instance made, for the other instances.
#[derive(Debug)]
pub(crate) enum Change {
    /// A key's record changed or is gone (its token).
    Key(String),
    /// A team, user, organization, budget or end user changed (kind, id).
    Object(&'static str, String),
    /// Spend of these keys (key ids) and other objects was written to the store.
    Spend(Vec<String>, Vec<Scope>),
}

/// The sending side of the announcements: cheap to clone, never waits, does nothing on SQLite.
#[derive(Clone, Default)]
pub(crate) struct Announcer {
    tx: Option<mpsc::UnboundedSender<Change>>,
}

impl Announcer {
    pub fn send(&self, change: Change) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(change);
        }
    }
}

/// This instance's place among the instances sharing its database.
pub(crate) struct Cluster {
    pub announcer: Announcer,
    /// The announcements' queue, taken by the announcing task at start.
    queue: Mutex<Option<mpsc::UnboundedReceiver<Change>>>,
    /// Names this instance in its announcements (it ignores its own).
    pub instance: String,
    /// `vaultgate_` and a hash of the schema: instances of one schema hear each other only.
    pub channel: String,
    /// The first key of the jobs' advisory lock: a hash of the schema, like the channel.
    pub lock_space: i32,
    /// The database URL (with its password: never logged).
    url: Option<String>,
    /// Whether the other instances' announcements arrive (always true on SQLite).
    listening: AtomicBool,
    /// Whether this instance runs the background jobs (always true on SQLite).
    leader: AtomicBool,
    /// Woken when this instance starts running the jobs.
    pub became_leader: Notify,
}

impl Cluster {
    /// On PostgreSQL, names the channel and lock after the connection's schema.
    pub async fn open(store: &Store, url: &str) -> Result<Arc<Self>> {
        let instance = uuid::Uuid::new_v4().simple().to_string();
        if store.backend() != Backend::Postgres {
            return Ok(Arc::new(Self {
                announcer: Announcer::default(),
                queue: Mutex::new(None),
                instance,
                channel: String::new(),
                lock_space: 0,
                url: None,
                listening: AtomicBool::new(true),
                leader: AtomicBool::new(true),
                became_leader: Notify::new(),
            }));
        }
        let schema = store.current_schema().await?;
        let hash = Sha256::digest(format!("vaultgate cluster {schema}").as_bytes());
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Arc::new(Self {
            announcer: Announcer { tx: Some(tx) },
            queue: Mutex::new(Some(rx)),
            instance,
            channel: format!("vaultgate_{}", hex::encode(&hash[..8])),
            lock_space: i32::from_be_bytes([hash[8], hash[9], hash[10], hash[11]]),
            url: Some(url.to_owned()),
            listening: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            became_leader: Notify::new(),
        }))
    }

    /// Whether this instance runs the background jobs now.
    pub fn runs_jobs(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// Whether the other instances' changes reach this instance now; while not, cached keys
    /// are re-read every second.
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    fn set_listening(&self, on: bool) {
        self.listening.store(on, Ordering::SeqCst);
        metrics::gauge!("vaultgate_cluster_listening").set(if on { 1.0 } else { 0.0 });
    }

    fn set_leader(&self, on: bool) {
        let was = self.leader.swap(on, Ordering::SeqCst);
        metrics::gauge!("vaultgate_background_jobs_leader").set(if on { 1.0 } else { 0.0 });
        if on && !was {
            tracing::info!(instance = %self.instance, "this instance runs the background jobs (Vault outbox, budget resets)");
            self.became_leader.notify_waiters();
        } else if was && !on {
            tracing::warn!(instance = %self.instance, "this instance no longer runs the background jobs");
        }
    }
}

/// Starts announcing, listening and competing for the jobs (PostgreSQL only).
pub(crate) async fn spawn(inner: &Arc<Inner>) -> Vec<JoinHandle<()>> {
    let cluster = inner.cluster.clone();
    let Some(url) = cluster.url.clone() else {
        return Vec::new();
    };
    let Some(queue) = cluster.queue.lock().await.take() else {
        return Vec::new();
    };
    let stop = inner.stop.clone();
    vec![
        tokio::spawn(announce::run(
            inner.store.clone(),
            cluster.clone(),
            queue,
            stop.clone(),
        )),
        tokio::spawn(listen::run(
            Arc::downgrade(inner),
            cluster.clone(),
            url.clone(),
            stop.clone(),
        )),
        tokio::spawn(leader::run(cluster, url, stop)),
    ]
}
