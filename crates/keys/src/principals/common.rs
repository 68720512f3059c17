//! What the management routes share: the limit fields of request bodies, id and name checks,
//! lookups that give LiteLLM's 4xx, and removing keys with their Vault copies.

use serde_json::Value;
use vaultgate_core::{Error, Result};

use super::model::{BudgetRecord, Caps, MemberRecord, TeamRecord, UserRecord};
use super::store::Val;
use crate::model::KeyRecord;
use crate::request::{Body, Patch};
use crate::state::Inner;
use crate::store::{self, ListFilter, Tx, db_err, is_unique_violation};

/// The limit fields of a body, under the names given (LiteLLM uses `team_member_*` names for a
/// team's default member budget).
#[derive(Debug, Default)]
pub(crate) struct CapsPatch {
    pub max_budget: Patch<f64>,
    pub tpm_limit: Patch<u64>,
    pub rpm_limit: Patch<u64>,
    pub max_parallel_requests: Patch<u64>,
    pub budget_duration: Patch<(String, i64)>,
}

/// Field names of the limits.
pub(crate) struct CapsNames {
    pub max_budget: &'static str,
    pub tpm_limit: &'static str,
    pub rpm_limit: &'static str,
    pub max_parallel_requests: &'static str,
    pub budget_duration: &'static str,
}

pub(crate) const CAPS: CapsNames = CapsNames {
    max_budget: "max_budget",
    tpm_limit: "tpm_limit",
    rpm_limit: "rpm_limit",
    max_parallel_requests: "max_parallel_requests",
    budget_duration: "budget_duration",
};

impl CapsPatch {
    pub fn parse(body: &Body, names: &CapsNames) -> Result<Self> {
        Ok(Self {
            max_budget: body.amount(names.max_budget)?,
            tpm_limit: body.count(names.tpm_limit)?,
            rpm_limit: body.count(names.rpm_limit)?,
            max_parallel_requests: body.count(names.max_parallel_requests)?,
            budget_duration: body.duration(names.budget_duration)?,
        })
    }

    pub fn is_absent(&self) -> bool {
        self.max_budget.is_absent()
            && self.tpm_limit.is_absent()
            && self.rpm_limit.is_absent()
            && self.max_parallel_requests.is_absent()
            && self.budget_duration.is_absent()
    }

    /// Applies the patch; returns the new budget period's end when `budget_duration` changed
    /// (`Some(None)`: no period any more).
    pub fn apply(&self, caps: &mut Caps, now_ms: i64) -> Option<Option<i64>> {
        set(&self.max_budget, &mut caps.max_budget);
        set(&self.tpm_limit, &mut caps.tpm_limit);
        set(&self.rpm_limit, &mut caps.rpm_limit);
        set(&self.max_parallel_requests, &mut caps.max_parallel_requests);
        match &self.budget_duration {
            Patch::Set((text, ms)) => {
                caps.budget_duration = Some(text.clone());
                Some(Some(now_ms.saturating_add(*ms)))
            }
            Patch::Null => {
                caps.budget_duration = None;
                Some(None)
            }
            Patch::Absent => None,
        }
    }
}

/// Absent: keep; null: clear; a value: set.
pub(crate) fn set<T: Clone>(patch: &Patch<T>, target: &mut Option<T>) {
    match patch {
        Patch::Set(v) => *target = Some(v.clone()),
        Patch::Null => *target = None,
        Patch::Absent => {}
    }
}

pub(crate) fn set_list(patch: &Patch<Vec<String>>, target: &mut Vec<String>) {
    match patch {
        Patch::Set(v) => v.clone_into(target),
        Patch::Null => target.clear(),
        Patch::Absent => {}
    }
}

/// A list of ids that must name at least one `what`.
pub(crate) fn required_list(body: &Body, field: &str, what: &str) -> Result<Vec<String>> {
    match body.string_list(field)? {
        Patch::Set(ids) if !ids.is_empty() => Ok(ids),
        _ => Err(Error::bad_param(
            field,
            format!("{field} must list at least one {what}"),
        )),
    }
}

/// Ids chosen by clients become URL parameters and Vault names: refuse what cannot be one.
pub(crate) fn validate_id(field: &str, id: &str) -> Result<()> {
    let bad = |why: &str| Error::bad_param(field, format!("{field} {why}"));
    if id.trim().is_empty() {
        return Err(bad("must not be empty"));
    }
    if id.len() > 256 {
        return Err(bad("must be at most 256 characters"));
    }
    if id.chars().any(char::is_control) || id.contains("..") || id.contains('/') {
        return Err(bad("must not contain '/', '..' or control characters"));
    }
    Ok(())
}

/// A string field that must be one of the ids above when present.
pub(crate) fn id_field(body: &Body, name: &str) -> Result<Patch<String>> {
    let patch = body.string(name)?;
    if let Patch::Set(id) = &patch {
        validate_id(name, id)?;
    }
    Ok(patch)
}

/// A unique-violation of an insert or update as the client's 400; other errors as they are.
pub(crate) fn unique(e: sqlx::Error, field: &str, message: impl FnOnce() -> String) -> Error {
    if is_unique_violation(&e) {
        Error::bad_param(field, message())
    } else {
        db_err(e)
    }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Inner {
    pub(crate) async fn team_record(&self, team_id: &str) -> Result<Option<TeamRecord>> {
        self.store.find("team_id", team_id).await
    }

    /// The team or LiteLLM's 404.
    pub(crate) async fn team_or_404(&self, team_id: &str) -> Result<TeamRecord> {
        self.team_record(team_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("Team not found, passed team_id={team_id}")))
    }

    pub(crate) async fn user_record(&self, user_id: &str) -> Result<Option<UserRecord>> {
        self.store.find("user_id", user_id).await
    }

    pub(crate) async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        let mut found: Vec<UserRecord> = self
            .store
            .select(
                Some("LOWER(user_email) = LOWER($1)"),
                &[Val::text(email)],
                "user_id",
                None,
            )
            .await?;
        Ok(found.pop())
    }

    pub(crate) async fn budget_record(&self, budget_id: &str) -> Result<Option<BudgetRecord>> {
        self.store.find("budget_id", budget_id).await
    }

    pub(crate) async fn members_of(&self, team_id: &str) -> Result<Vec<MemberRecord>> {
        self.store
            .select(
                Some("team_id = $1"),
                &[Val::text(team_id)],
                "created_at, user_id",
                None,
            )
            .await
    }

    pub(crate) async fn memberships_of(&self, user_id: &str) -> Result<Vec<MemberRecord>> {
        self.store
            .select(
                Some("user_id = $1"),
                &[Val::text(user_id)],
                "created_at, team_id",
                None,
            )
            .await
    }

    /// Every key matching `filter` (a team's or a user's keys).
    pub(crate) async fn keys_where(&self, filter: ListFilter) -> Result<Vec<KeyRecord>> {
        let (keys, _) = self.store.list(&filter, 1, 1_000_000).await?;
        Ok(keys)
    }

    /// The keys matching `filter` as the `/team/info` and `/user/info` answers list them, with
    /// their live spend.
    pub(crate) async fn keys_json_where(&self, filter: ListFilter) -> Result<Vec<Value>> {
        let keys = self.keys_where(filter).await?;
        Ok(keys
            .into_iter()
            .map(|k| self.with_live(k).to_json())
            .collect())
    }

    /// The team as `/team/info` and the other team routes show it: members with their emails
    /// and the default member budget.
    pub(crate) async fn team_json(&self, team: &TeamRecord) -> Result<Value> {
        let members = self.members_of(&team.team_id).await?;
        let mut with_email = Vec::with_capacity(members.len());
        for member in members {
            let email = self
                .user_record(&member.user_id)
                .await?
                .and_then(|u| u.user_email);
            with_email.push((member, email));
        }
        let budget = match &team.team_member_budget_id {
            Some(id) => self.budget_record(id).await?,
            None => None,
        };
        let mut team = team.clone();
        if let Some(entry) = self.directory.team(&team.team_id) {
            team.spend = team.spend.max(entry.team.live.lock().spend);
        }
        Ok(team.to_json(&with_email, budget.as_ref()))
    }
}

/// Deletes keys inside `tx`, queueing their Vault copies in the outbox (call
/// [`after_keys_deleted`] once committed).
pub(crate) async fn delete_keys(
    tx: &mut Tx,
    keys: &[KeyRecord],
    now_ms: i64,
) -> std::result::Result<(), sqlx::Error> {
    for key in keys {
        store::delete_key(tx, &key.token).await?;
        if let Some(name) = &key.vault_secret_name {
            store::outbox_add(tx, name, now_ms).await?;
        }
    }
    Ok(())
}

/// After the deletion committed: the keys stop working at once here and their Vault copies go
/// now (or by the outbox worker).
pub(crate) async fn after_keys_deleted(inner: &Inner, keys: &[KeyRecord]) {
    for key in keys {
        inner.invalidate(&key.token);
        inner.live.remove(&key.key_id);
        tracing::info!(key = %key.key_name, "virtual key deleted");
    }
    if inner.mirror.is_some() {
        for key in keys {
            if let Some(name) = &key.vault_secret_name {
                inner.outbox.repair_now(name).await;
            }
        }
    }
}

/// Tokens of keys, for responses.
pub(crate) fn tokens(keys: &[KeyRecord]) -> Vec<String> {
    keys.iter().map(|k| k.token.clone()).collect()
}
