//! Budget periods: a pass over the store resets the budgets whose period is over, also for keys
//! no request touched on this instance (the request path resets the keys it sees itself).

use std::sync::Weak;

use vaultgate_core::Result;

use crate::model::parse_duration;
use crate::spend::SpendMsg;
use crate::state::Inner;

/// Runs a pass every `budget_reset_interval` until the service stops or is gone.
pub(crate) async fn run(weak: Weak<Inner>) {
    let (interval, stop) = match weak.upgrade() {
        Some(inner) => (inner.options.budget_reset_interval, inner.stop.clone()),
        None => return,
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        if let Err(e) = reset_due(&inner).await {
            tracing::warn!(error = %e, "budget reset pass failed");
        }
    }
}

/// One pass; returns how many keys were reset.
pub(crate) async fn reset_due(inner: &Inner) -> Result<usize> {
    let now = inner.now();
    let due = inner.store.due_budget_resets(now).await?;
    let mut count = 0;
    for (key_id, duration) in due {
        let Some(duration_ms) = duration.as_deref().and_then(parse_duration) else {
            continue;
        };
        let next = now.saturating_add(duration_ms);
        if let Some(live) = inner.live.get(&key_id) {
            let mut s = live.lock();
            if s.budget_reset_at.is_some_and(|r| r > now) {
                continue; // reset here already; the writer is on its way
            }
            s.spend = 0.0;
            s.budget_reset_at = Some(next);
        }
        inner.spend.send(SpendMsg::Reset {
            key_id,
            now_ms: now,
            next_reset_ms: next,
        });
        count += 1;
    }
    Ok(count)
}
