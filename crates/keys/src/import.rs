//! Bulk import into the key store, for `vaultgate migrate`: records read from another gateway's
//! database are written as they are (spend and budget periods included), all in one
//! transaction. A record already stored with the same content is left alone, so running an
//! import twice changes nothing the second time; one stored with other content is rewritten
//! (the source is the truth while migrating); records the source does not have are never
//! touched. A dry run does the same work and rolls it back.

use std::time::Duration;

use serde_json::Value;
use sqlx::any::AnyRow;
use vaultgate_core::{Error, Result};

use crate::model::KeyRecord;
use crate::principals::model::{
    BudgetRecord, EndUserRecord, MemberRecord, OrgMemberRecord, OrgRecord, TeamRecord, UserRecord,
};
use crate::principals::store::{Row, Val, bind, insert, update};
use crate::store::{Store, Tx, db_err, is_unique_violation, json_text, key_from_row, to_i64};

/// Everything to import, by kind.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub budgets: Vec<BudgetRecord>,
    pub organizations: Vec<OrgRecord>,
    pub organization_members: Vec<OrgMemberRecord>,
    pub teams: Vec<TeamRecord>,
    pub team_members: Vec<MemberRecord>,
    pub users: Vec<UserRecord>,
    pub end_users: Vec<EndUserRecord>,
    pub keys: Vec<KeyRecord>,
}

/// What the import did (or, in a dry run, would do) with one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    New,
    /// The columns whose stored value differed.
    Updated(Vec<&'static str>),
    Unchanged,
    /// Left alone, with the reason.
    Skipped(String),
}

/// One record's outcome: its kind (`"key"`, `"team"`, …), a printable name (never a raw key)
/// and what happened.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: &'static str,
    pub name: String,
    pub change: Change,
}

/// Per-record outcomes, in import order.
#[derive(Debug, Default, Clone)]
pub struct ImportReport {
    pub outcomes: Vec<Outcome>,
    /// Whether the changes were committed (false for a dry run).
    pub committed: bool,
}

impl ImportReport {
    /// How many records of `kind` are new, updated, unchanged and skipped.
    pub fn counts(&self, kind: &str) -> [usize; 4] {
        let mut counts = [0; 4];
        for outcome in self.outcomes.iter().filter(|o| o.kind == kind) {
            let slot = match outcome.change {
                Change::New => 0,
                Change::Updated(_) => 1,
                Change::Unchanged => 2,
                Change::Skipped(_) => 3,
            };
            counts[slot] += 1;
        }
        counts
    }

    /// Records written (or that a dry run would write).
    pub fn changes(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.change, Change::New | Change::Updated(_)))
            .count()
    }
}

/// The kinds in import order, as [`Outcome::kind`] names them.
pub const KINDS: [&str; 8] = [
    "budget",
    "organization",
    "organization member",
    "team",
    "team member",
    "user",
    "end user",
    "key",
];

/// Opens the store at `database_url` (creating or upgrading its tables, as the gateway does at
/// start) and imports `snapshot` in one transaction; `dry_run` rolls it back. A failure leaves
/// the store as it was.
pub async fn import(
    database_url: &str,
    snapshot: &Snapshot,
    dry_run: bool,
) -> Result<ImportReport> {
    let store = Store::open(database_url, 2, Duration::from_secs(10)).await?;
    let result = import_into(&store, snapshot, dry_run).await;
    store.close().await;
    result
}

async fn import_into(store: &Store, snapshot: &Snapshot, dry_run: bool) -> Result<ImportReport> {
    let mut tx = store.begin().await?;
    let mut report = ImportReport::default();
    let out = &mut report.outcomes;
    for r in &snapshot.budgets {
        out.push(put(&mut tx, "budget", r.budget_id.clone(), r).await?);
    }
    for r in &snapshot.organizations {
        let name = format!("{} ({})", r.organization_alias, r.organization_id);
        out.push(put(&mut tx, "organization", name, r).await?);
    }
    for r in &snapshot.organization_members {
        let name = format!("{} in {}", r.user_id, r.organization_id);
        out.push(put(&mut tx, "organization member", name, r).await?);
    }
    for r in &snapshot.teams {
        let name = match &r.team_alias {
            Some(alias) => format!("{alias} ({})", r.team_id),
            None => r.team_id.clone(),
        };
        out.push(put(&mut tx, "team", name, r).await?);
    }
    for r in &snapshot.team_members {
        let name = format!("{} in {}", r.user_id, r.team_id);
        out.push(put(&mut tx, "team member", name, r).await?);
    }
    for r in &snapshot.users {
        out.push(put(&mut tx, "user", r.user_id.clone(), r).await?);
    }
    for r in &snapshot.end_users {
        out.push(put(&mut tx, "end user", r.user_id.clone(), r).await?);
    }
    for r in &snapshot.keys {
        let name = match &r.key_alias {
            Some(alias) => format!("{} ({alias})", r.key_name),
            None => r.key_name.clone(),
        };
        let outcome = if regenerated_here(&mut tx, r).await? {
            Outcome {
                kind: "key",
                name,
                change: Change::Skipped(
                    "regenerated in vaultgate since it was imported; the old key no longer works"
                        .into(),
                ),
            }
        } else {
            put(&mut tx, "key", name, r).await?
        };
        out.push(outcome);
    }
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
        report.committed = true;
    }
    Ok(report)
}

/// Inserts `record`, or rewrites the stored row with its key when it differs.
async fn put<R: Row + PartialEq>(
    tx: &mut Tx,
    kind: &'static str,
    name: String,
    record: &R,
) -> Result<Outcome> {
    let written = match find(tx, record).await.map_err(db_err)? {
        None => insert(tx, record).await.map(|()| Change::New),
        Some(stored) if stored == *record => Ok(Change::Unchanged),
        Some(stored) => {
            let old = stored.values();
            let changed = record
                .values()
                .into_iter()
                .zip(old)
                .filter(|((_, new), (_, old))| new != old)
                .map(|((column, _), _)| column)
                .collect();
            update(tx, record, &["spend", "budget_reset_at"])
                .await
                .map(|_| Change::Updated(changed))
        }
    };
    let change = written.map_err(|e| {
        if is_unique_violation(&e) {
            Error::Database(format!(
                "{kind} {name} clashes with another {kind} in the vaultgate store (same alias or \
                 email): nothing was imported. Rename one of them and run again. ({e})"
            ))
        } else {
            db_err(e)
        }
    })?;
    Ok(Outcome { kind, name, change })
}

/// The stored row with `record`'s key, read inside the transaction.
async fn find<R: Row>(tx: &mut Tx, record: &R) -> std::result::Result<Option<R>, sqlx::Error> {
    let filter: Vec<String> = R::KEY
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} = ${}", i + 1))
        .collect();
    let sql = format!("SELECT * FROM {} WHERE {}", R::TABLE, filter.join(" AND "));
    let mut query = sqlx::query(&sql);
    for value in record.key() {
        query = bind(query, value);
    }
    let row = query.fetch_optional(&mut **tx).await?;
    row.map(|r| R::from_row(&r).map_err(|e| sqlx::Error::Decode(e.to_string().into())))
        .transpose()
}

/// Whether a key imported before was regenerated here: its stable id is stored under another
/// token.
async fn regenerated_here(tx: &mut Tx, key: &KeyRecord) -> Result<bool> {
    let row = sqlx::query("SELECT token FROM keys WHERE key_id = $1")
        .bind(key.key_id.clone())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    match row {
        Some(row) => {
            let token: String = sqlx::Row::try_get(&row, "token").map_err(db_err)?;
            Ok(token != key.token)
        }
        None => Ok(false),
    }
}

impl Row for KeyRecord {
    const TABLE: &'static str = "keys";
    const KEY: &'static [&'static str] = &["token"];
    fn key(&self) -> Vec<Val> {
        vec![Val::text(&self.token)]
    }
    fn values(&self) -> Vec<(&'static str, Val)> {
        let int = |v: Option<u64>| Val::Int(v.map(to_i64));
        vec![
            ("key_id", Val::text(&self.key_id)),
            ("key_name", Val::text(&self.key_name)),
            ("key_alias", Val::Text(self.key_alias.clone())),
            ("models", Val::text(&json_text(&self.models))),
            ("max_budget", Val::Real(self.max_budget)),
            ("budget_duration", Val::Text(self.budget_duration.clone())),
            ("budget_reset_at", Val::Int(self.budget_reset_at)),
            ("spend", Val::Real(Some(self.spend))),
            (
                "metadata",
                Val::text(&Value::Object(self.metadata.clone()).to_string()),
            ),
            ("tpm_limit", int(self.tpm_limit)),
            ("rpm_limit", int(self.rpm_limit)),
            ("max_parallel_requests", int(self.max_parallel_requests)),
            ("user_id", Val::Text(self.user_id.clone())),
            ("team_id", Val::Text(self.team_id.clone())),
            ("tags", Val::text(&json_text(&self.tags))),
            ("blocked", Val::Int(Some(i64::from(self.blocked)))),
            ("expires", Val::Int(self.expires)),
            ("created_at", Val::Int(Some(self.created_at))),
            ("updated_at", Val::Int(Some(self.updated_at))),
            (
                "vault_secret_name",
                Val::Text(self.vault_secret_name.clone()),
            ),
        ]
    }
    fn from_row(row: &AnyRow) -> Result<Self> {
        key_from_row(row)
    }
}
