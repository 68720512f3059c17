//! The state shared by every handle of a `KeyService`, and the lookups all parts need.

use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vaultgate_core::{Error, Result};

use crate::cache::KeyCache;
use crate::clock::Clock;
use crate::cluster::{Change, Cluster};
use crate::limits::Limits;
use crate::live::LiveMap;
use crate::mirror::MirrorConfig;
use crate::model::{KeyRecord, describe_key, token_of};
use crate::options::KeyServiceOptions;
use crate::outbox::Outbox;
use crate::principals::directory::Directory;
use crate::spend::{SpendQueue, SpendStatus};
use crate::store::Store;

pub(crate) struct Inner {
    pub store: Store,
    pub mirror: Option<MirrorConfig>,
    pub cache: Arc<KeyCache>,
    pub live: Arc<LiveMap>,
    /// Teams, users, organizations, budgets and end users in memory.
    pub directory: Arc<Directory>,
    pub limits: Limits,
    pub spend: SpendQueue,
    pub spend_status: Arc<Mutex<SpendStatus>>,
    /// The spend-log rows' queue (takes nothing under `disable_spend_logs`).
    pub logs: crate::batch::LogQueue<crate::spend_logs::SpendLogRow>,
    /// Translated Responses, kept for retrieval and `previous_response_id`.
    pub responses: crate::responses::StoredResponses,
    pub outbox: Arc<Outbox>,
    /// Serialises key-management writes and outbox processing on this instance.
    pub admin: Arc<tokio::sync::Mutex<()>>,
    pub clock: Arc<dyn Clock>,
    /// The other instances on the same database: announcements, listener, jobs leader.
    pub cluster: Arc<Cluster>,
    pub options: KeyServiceOptions,
    pub tasks: Mutex<Vec<JoinHandle<()>>>,
    pub stop: CancellationToken,
}

impl Inner {
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Forgets a token at once (delete, block, update, regenerate), here and, announced, on
    /// the other instances. Called after the change is committed.
    pub fn invalidate(&self, token: &str) {
        self.cache.invalidate(token);
        self.cluster.announcer.send(Change::Key(token.to_owned()));
    }

    /// Tells the other instances that a team, user, organization, budget or end user changed
    /// (after the change is committed; this instance reloads it itself).
    pub fn announce(&self, kind: &'static str, id: &str) {
        self.cluster
            .announcer
            .send(Change::Object(kind, id.to_owned()));
    }

    /// The stored record of a key given raw or hashed, or 404.
    pub async fn find(&self, input: &str) -> Result<KeyRecord> {
        let input = input.trim();
        self.store
            .get_by_token(&token_of(input))
            .await?
            .ok_or_else(|| not_found(input))
    }

    /// The record with this instance's live spend and budget period.
    pub fn with_live(&self, mut record: KeyRecord) -> KeyRecord {
        if let Some(live) = self.live.get(&record.key_id) {
            let s = live.lock();
            match (s.budget_reset_at, record.budget_reset_at) {
                // This instance reset the budget; the store has not seen it yet.
                (Some(here), Some(stored)) if here > stored => {
                    record.spend = s.spend;
                    record.budget_reset_at = Some(here);
                }
                // Another instance reset it: the stored period and spend are the newer ones.
                (Some(here), Some(stored)) if stored > here => {}
                _ => record.spend = record.spend.max(s.spend),
            }
        }
        record
    }
}

pub(crate) fn not_found(input: &str) -> Error {
    Error::NotFound(format!("key not found: {}", describe_key(input)))
}
