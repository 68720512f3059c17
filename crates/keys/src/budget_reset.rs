//! Budget periods: a pass over the store resets the budgets whose period is over, also for keys
//! no request touched on this instance (the request path resets the keys it sees itself).

use std::sync::Weak;
use std::time::Duration;

use vaultgate_core::Result;

use crate::model::parse_duration;
use crate::spend::SpendMsg;
use crate::state::Inner;

/// Runs a pass every `budget_reset_interval` until the service stops or is gone.
pub(crate) async fn run(weak: Weak<Inner>) {
    every(
        weak,
        |o| {
            let jitter = u64::try_from(o.budget_reset_jitter.as_millis()).unwrap_or(0);
            o.budget_reset_interval
                + Duration::from_millis(rand::Rng::random_range(&mut rand::rng(), 0..=jitter))
        },
        |inner| async move {
            if !inner.cluster.runs_jobs() {
                return; // another instance runs the jobs
            }
            metrics::counter!("vaultgate_background_job_runs_total", "job" => "budget_reset")
                .increment(1);
            if let Err(e) = reset_due(&inner).await {
                tracing::warn!(error = %e, "budget reset pass failed");
            }
            if let Err(e) = crate::principals::resets::reset_due(&inner).await {
                tracing::warn!(error = %e, "budget reset pass of teams and users failed");
            }
        },
    )
    .await;
}

/// Runs `pass` every `interval` (from the options) until the service stops or is gone.
pub(crate) async fn every<F, Fut>(
    weak: Weak<Inner>,
    interval: fn(&crate::options::KeyServiceOptions) -> std::time::Duration,
    pass: F,
) where
    F: Fn(std::sync::Arc<Inner>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(stop) = weak.upgrade().map(|inner| inner.stop.clone()) else {
        return;
    };
    loop {
        let Some(wait) = weak.upgrade().map(|inner| interval(&inner.options)) else {
            return;
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        pass(inner).await;
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
