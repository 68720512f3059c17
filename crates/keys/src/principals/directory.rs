//! The management plane in memory: every team (with its members), user, organization, budget and
//! configured end user, each with its live spend and rate windows. The request path reads only
//! this (a read lock and a hash lookup per object); the store is read when the management API
//! changes something (that object is reloaded at once) and by a periodic full reload that
//! brings in other instances' changes and spend.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use vaultgate_core::{FastMap, Result};

use super::model::{BudgetRecord, EndUserRecord, MemberRecord, OrgRecord, TeamRecord, UserRecord};
use super::store::{Row, Val};
use crate::live::{FlushSeq, Live, ReadMark};
use crate::store::Store;

/// What spend is added to besides the key, named as the spend writer stores it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Scope {
    Team(Arc<str>),
    User(Arc<str>),
    /// (team, user)
    Member(Arc<str>, Arc<str>),
    Org(Arc<str>),
    EndUser(Arc<str>),
}

impl Scope {
    /// The object's rate-limit counters, named alike on every instance.
    fn quota(&self) -> vaultgate_quota::Scope {
        use vaultgate_quota::{Scope as Quota, ScopeKind};
        match self {
            Self::Team(id) => Quota::new(ScopeKind::Team, id),
            Self::User(id) => Quota::new(ScopeKind::User, id),
            // The team's length first: ids may hold the separator.
            Self::Member(team, user) => {
                Quota::new(ScopeKind::Member, &format!("{}:{team}:{user}", team.len()))
            }
            Self::Org(id) => Quota::new(ScopeKind::Org, id),
            Self::EndUser(id) => Quota::new(ScopeKind::Customer, id),
        }
    }
}

/// A record with its live state.
pub(crate) struct Tracked<R> {
    pub record: R,
    pub live: Arc<Live>,
    pub scope: Scope,
}

pub(crate) struct TeamEntry {
    pub team: Tracked<TeamRecord>,
    pub members: FastMap<String, Arc<Tracked<MemberRecord>>>,
}

/// A record whose spend and budget period the directory tracks.
pub(crate) trait Spending: Row {
    fn spend(&self) -> f64;
    fn budget_reset_at(&self) -> Option<i64>;
    fn updated_at(&self) -> i64;
    fn scope(&self) -> Scope;
}

macro_rules! spending {
    ($record:ty, $scope:expr) => {
        impl Spending for $record {
            fn spend(&self) -> f64 {
                self.spend
            }
            fn budget_reset_at(&self) -> Option<i64> {
                self.budget_reset_at
            }
            fn updated_at(&self) -> i64 {
                self.updated_at
            }
            fn scope(&self) -> Scope {
                #[allow(clippy::redundant_closure_call)]
                ($scope)(self)
            }
        }
    };
}

spending!(TeamRecord, |r: &TeamRecord| Scope::Team(
    r.team_id.as_str().into()
));
spending!(UserRecord, |r: &UserRecord| Scope::User(
    r.user_id.as_str().into()
));
spending!(OrgRecord, |r: &OrgRecord| Scope::Org(
    r.organization_id.as_str().into()
));
spending!(EndUserRecord, |r: &EndUserRecord| Scope::EndUser(
    r.user_id.as_str().into()
));
spending!(MemberRecord, |r: &MemberRecord| Scope::Member(
    r.team_id.as_str().into(),
    r.user_id.as_str().into()
));

/// A tracked record, keeping the live state of `old` (reconciled with what the store says;
/// `read`: see [`Live::reconcile`]).
fn track<R: Spending>(record: R, old: Option<&Tracked<R>>, read: ReadMark<'_>) -> Tracked<R> {
    let scope = record.scope();
    let live = match old {
        Some(old) => {
            old.live.reconcile(
                record.spend(),
                record.budget_reset_at(),
                record.updated_at(),
                read,
            );
            old.live.clone()
        }
        None => Arc::new(Live::new(
            scope.quota(),
            record.spend(),
            record.budget_reset_at(),
            record.updated_at(),
        )),
    };
    Tracked {
        record,
        live,
        scope,
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Map<T> = RwLock<FastMap<String, Arc<T>>>;

/// End users the request path needs to know: those with limits, a region or a block.
const CONFIGURED_END_USERS: &str = "blocked = 1 OR budget_id IS NOT NULL OR \
     allowed_model_region IS NOT NULL OR default_model IS NOT NULL";

#[derive(Default)]
pub(crate) struct Directory {
    teams: Map<TeamEntry>,
    users: Map<Tracked<UserRecord>>,
    orgs: Map<Tracked<OrgRecord>>,
    budgets: Map<BudgetRecord>,
    end_users: Map<Tracked<EndUserRecord>>,
    /// The spend writer's flushes: whether a read of stored spend overlapped one.
    flushes: Arc<FlushSeq>,
}

impl Directory {
    pub fn new(flushes: Arc<FlushSeq>) -> Self {
        Self {
            flushes,
            ..Self::default()
        }
    }

    pub fn team(&self, team_id: &str) -> Option<Arc<TeamEntry>> {
        read(&self.teams).get(team_id).cloned()
    }

    pub fn user(&self, user_id: &str) -> Option<Arc<Tracked<UserRecord>>> {
        read(&self.users).get(user_id).cloned()
    }

    pub fn org(&self, org_id: &str) -> Option<Arc<Tracked<OrgRecord>>> {
        read(&self.orgs).get(org_id).cloned()
    }

    pub fn budget(&self, budget_id: &str) -> Option<Arc<BudgetRecord>> {
        read(&self.budgets).get(budget_id).cloned()
    }

    pub fn end_user(&self, id: &str) -> Option<Arc<Tracked<EndUserRecord>>> {
        read(&self.end_users).get(id).cloned()
    }

    /// Reads everything from the store (at start and periodically). Live state of objects
    /// already known is kept and reconciled with the stored spend.
    pub async fn load_all(&self, store: &Store) -> Result<()> {
        let mark = self.flushes.mark();
        let teams: Vec<TeamRecord> = store.select(None, &[], "team_id", None).await?;
        let members: Vec<MemberRecord> = store.select(None, &[], "team_id, user_id", None).await?;
        let users: Vec<UserRecord> = store.select(None, &[], "user_id", None).await?;
        let orgs: Vec<OrgRecord> = store.select(None, &[], "organization_id", None).await?;
        let budgets: Vec<BudgetRecord> = store.select(None, &[], "budget_id", None).await?;
        let end_users: Vec<EndUserRecord> = store
            .select(Some(CONFIGURED_END_USERS), &[], "user_id", None)
            .await?;

        let mut by_team: FastMap<String, Vec<MemberRecord>> = FastMap::default();
        for member in members {
            by_team
                .entry(member.team_id.clone())
                .or_default()
                .push(member);
        }
        let old_teams = read(&self.teams).clone();
        let mut new_teams = FastMap::default();
        for team in teams {
            let members = by_team.remove(&team.team_id).unwrap_or_default();
            let old = old_teams.get(&team.team_id).cloned();
            let entry = team_entry(team, members, old.as_deref(), mark);
            new_teams.insert(entry.team.record.team_id.clone(), entry);
        }
        *write(&self.teams) = new_teams;
        replace_all(&self.users, users, |u| u.user_id.clone(), mark);
        replace_all(&self.orgs, orgs, |o| o.organization_id.clone(), mark);
        replace_all(&self.end_users, end_users, |e| e.user_id.clone(), mark);
        *write(&self.budgets) = budgets
            .into_iter()
            .map(|b| (b.budget_id.clone(), Arc::new(b)))
            .collect();
        Ok(())
    }

    /// Reloads one team and its members from the store (gone from the store: forgotten).
    pub async fn reload_team(&self, store: &Store, team_id: &str) -> Result<()> {
        let mark = self.flushes.mark();
        let team: Option<TeamRecord> = store.find("team_id", team_id).await?;
        let Some(team) = team else {
            write(&self.teams).remove(team_id);
            return Ok(());
        };
        let members: Vec<MemberRecord> = store
            .select(Some("team_id = $1"), &[Val::text(team_id)], "user_id", None)
            .await?;
        // The budgets the team and its members point to may have been written with them.
        let budget_ids: Vec<String> = team
            .team_member_budget_id
            .iter()
            .chain(members.iter().filter_map(|m| m.budget_id.as_ref()))
            .cloned()
            .collect();
        for budget_id in budget_ids {
            self.reload_budget(store, &budget_id).await?;
        }
        let old = self.team(team_id);
        let entry = team_entry(team, members, old.as_deref(), mark);
        write(&self.teams).insert(team_id.to_owned(), entry);
        Ok(())
    }

    pub async fn reload_user(&self, store: &Store, user_id: &str) -> Result<()> {
        reload_one(&self.users, store, "user_id", user_id, None, &self.flushes).await
    }

    pub async fn reload_org(&self, store: &Store, org_id: &str) -> Result<()> {
        reload_one(
            &self.orgs,
            store,
            "organization_id",
            org_id,
            None,
            &self.flushes,
        )
        .await
    }

    pub async fn reload_end_user(&self, store: &Store, id: &str) -> Result<()> {
        reload_one(
            &self.end_users,
            store,
            "user_id",
            id,
            Some(CONFIGURED_END_USERS),
            &self.flushes,
        )
        .await
    }

    pub async fn reload_budget(&self, store: &Store, budget_id: &str) -> Result<()> {
        let budget: Option<BudgetRecord> = store.find("budget_id", budget_id).await?;
        let mut map = write(&self.budgets);
        match budget {
            Some(budget) => map.insert(budget_id.to_owned(), Arc::new(budget)),
            None => map.remove(budget_id),
        };
        Ok(())
    }

    /// The live state of an object spend goes to, when this instance tracks it.
    pub fn live_of(&self, scope: &Scope) -> Option<Arc<Live>> {
        match scope {
            Scope::Team(id) => self.team(id).map(|t| t.team.live.clone()),
            Scope::Member(team, user) => self
                .team(team)
                .and_then(|t| t.members.get(&**user).map(|m| m.live.clone())),
            Scope::User(id) => self.user(id).map(|u| u.live.clone()),
            Scope::Org(id) => self.org(id).map(|o| o.live.clone()),
            Scope::EndUser(id) => self.end_user(id).map(|e| e.live.clone()),
        }
    }

    /// Every team entry (for budget resets of objects no request touched).
    pub fn teams(&self) -> Vec<Arc<TeamEntry>> {
        read(&self.teams).values().cloned().collect()
    }

    pub fn users(&self) -> Vec<Arc<Tracked<UserRecord>>> {
        read(&self.users).values().cloned().collect()
    }

    pub fn orgs(&self) -> Vec<Arc<Tracked<OrgRecord>>> {
        read(&self.orgs).values().cloned().collect()
    }

    pub fn end_users(&self) -> Vec<Arc<Tracked<EndUserRecord>>> {
        read(&self.end_users).values().cloned().collect()
    }
}

fn team_entry(
    team: TeamRecord,
    members: Vec<MemberRecord>,
    old: Option<&TeamEntry>,
    read: ReadMark<'_>,
) -> Arc<TeamEntry> {
    let members = members
        .into_iter()
        .map(|m| {
            let previous = old.and_then(|o| o.members.get(&m.user_id));
            (
                m.user_id.clone(),
                Arc::new(track(m, previous.map(AsRef::as_ref), read)),
            )
        })
        .collect();
    Arc::new(TeamEntry {
        team: track(team, old.map(|o| &o.team), read),
        members,
    })
}

fn replace_all<R: Spending>(
    map: &Map<Tracked<R>>,
    records: Vec<R>,
    id: impl Fn(&R) -> String,
    mark: ReadMark<'_>,
) {
    let old = read(map).clone();
    let new = records
        .into_iter()
        .map(|r| {
            let key = id(&r);
            let tracked = track(r, old.get(&key).map(AsRef::as_ref), mark);
            (key, Arc::new(tracked))
        })
        .collect();
    *write(map) = new;
}

async fn reload_one<R: Spending>(
    map: &Map<Tracked<R>>,
    store: &Store,
    column: &str,
    id: &str,
    only: Option<&str>,
    flushes: &FlushSeq,
) -> Result<()> {
    let mark = flushes.mark();
    let filter = match only {
        Some(only) => format!("{column} = $1 AND ({only})"),
        None => format!("{column} = $1"),
    };
    let mut found: Vec<R> = store
        .select(Some(&filter), &[Val::text(id)], column, None)
        .await?;
    match found.pop() {
        Some(record) => {
            let old = read(map).get(id).cloned();
            let tracked = track(record, old.as_deref(), mark);
            write(map).insert(id.to_owned(), Arc::new(tracked));
        }
        None => {
            write(map).remove(id);
        }
    }
    Ok(())
}
