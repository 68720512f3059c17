//! Budget periods of teams, users, team members, organizations and end users: a pass over the
//! directory starts a new period for every object whose period is over, also for objects no
//! request touched (the request path resets the ones it sees itself). Members, organizations
//! and end users take the period of the budget they point to.

use std::sync::Arc;

use vaultgate_core::Result;

use super::chain::Limit;
use super::directory::Scope;
use super::model::{BudgetRecord, Caps};
use super::store::{bind, scope_row};
use crate::live::Live;
use crate::spend::SpendMsg;
use crate::state::Inner;

/// One pass; returns how many objects started a new budget period.
pub(crate) async fn reset_due(inner: &Inner) -> Result<usize> {
    let now = inner.now();
    let directory = &inner.directory;
    let budget_caps = |id: Option<&String>| -> Option<Arc<BudgetRecord>> {
        id.and_then(|id| directory.budget(id))
    };
    let mut due: Vec<(Arc<Live>, Scope, i64)> = Vec::new();
    let mut consider = |live: &Arc<Live>, scope: &Scope, caps: Option<&Caps>| {
        if let Some(period) = caps.and_then(|c| Limit::of(c).period_ms) {
            due.push((live.clone(), scope.clone(), period));
        }
    };
    for team in directory.teams() {
        consider(
            &team.team.live,
            &team.team.scope,
            Some(&team.team.record.caps),
        );
        let default = budget_caps(team.team.record.team_member_budget_id.as_ref());
        for member in team.members.values() {
            let own = budget_caps(member.record.budget_id.as_ref());
            let budget = own.or_else(|| default.clone());
            consider(
                &member.live,
                &member.scope,
                budget.as_ref().map(|b| &b.caps),
            );
        }
    }
    for user in directory.users() {
        consider(&user.live, &user.scope, Some(&user.record.caps));
    }
    for org in directory.orgs() {
        let budget = budget_caps(org.record.budget_id.as_ref());
        consider(&org.live, &org.scope, budget.as_ref().map(|b| &b.caps));
    }
    for end_user in directory.end_users() {
        let budget = budget_caps(end_user.record.budget_id.as_ref());
        consider(
            &end_user.live,
            &end_user.scope,
            budget.as_ref().map(|b| &b.caps),
        );
    }
    let mut count = 0;
    for (live, scope, period) in due {
        let next = now.saturating_add(period);
        let reset_at = live.lock().budget_reset_at;
        match reset_at {
            Some(at) if at <= now => {
                {
                    let mut s = live.lock();
                    s.spend = 0.0;
                    s.budget_reset_at = Some(next);
                }
                inner.spend.send(SpendMsg::ScopeReset {
                    scope,
                    now_ms: now,
                    next_reset_ms: next,
                });
                count += 1;
            }
            Some(_) => {}
            // A budget with a period attached after the fact: its first period starts now.
            None => {
                start_period(inner, &scope, next).await?;
                live.lock().budget_reset_at = Some(next);
            }
        }
    }
    Ok(count)
}

/// Stores the end of a first budget period (only where none is stored yet).
async fn start_period(inner: &Inner, scope: &Scope, reset_at: i64) -> Result<()> {
    let (table, filter, keys) = scope_row(scope, 2);
    let sql = format!(
        "UPDATE {table} SET budget_reset_at = $1 WHERE {filter} AND budget_reset_at IS NULL"
    );
    let mut query = sqlx::query(&sql).bind(reset_at);
    for key in keys {
        query = bind(query, key);
    }
    query
        .execute(inner.store.pool()?)
        .await
        .map_err(|e| inner.store.fail(e))?;
    Ok(())
}
