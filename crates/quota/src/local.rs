//! Limits counted in this process alone.

use smallvec::SmallVec;
use vaultgate_core::Result;

use crate::permit::{Held, Permit};
use crate::window::{ms_to_next_minute, rejection};
use crate::{Ask, Quota, QuotaHealth};

/// Counts every scope in this process: exact for one instance; with several, each instance
/// admits up to the whole limit.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalQuota;

impl LocalQuota {
    /// [`Quota::acquire`] without a future: the local counters never wait.
    pub fn acquire_now(&self, asks: &[Ask<'_>], now_ms: i64) -> Result<Permit> {
        admit_locally(asks, now_ms, 1).map(Permit::local)
    }
}

impl Quota for LocalQuota {
    async fn acquire(&self, asks: &[Ask<'_>], now_ms: i64) -> Result<Permit> {
        self.acquire_now(asks, now_ms)
    }

    fn health(&self) -> QuotaHealth {
        QuotaHealth::Local
    }
}

/// Checks and counts every ask on this instance, each limit divided by `share`; all or none.
pub(crate) fn admit_locally(
    asks: &[Ask<'_>],
    now_ms: i64,
    share: u64,
) -> Result<SmallVec<[Held; 2]>> {
    let mut held: SmallVec<[Held; 2]> = SmallVec::with_capacity(asks.len());
    for ask in asks {
        let mut counts = ask.scope.local();
        if let Some((full, limit)) = counts.full(&ask.limits, now_ms, share) {
            drop(counts);
            for done in &held {
                done.scope.local().undo_admit(now_ms);
            }
            return Err(rejection(full, limit, ask, ms_to_next_minute(now_ms)));
        }
        counts.admit(now_ms);
        drop(counts);
        held.push(Held::new(ask, false));
    }
    Ok(held)
}

/// Counts every ask on this instance without checking (they were admitted by the shared
/// counters; the local counts are the fail-open fallback).
pub(crate) fn count_locally(asks: &[Ask<'_>], now_ms: i64, slots: bool) -> SmallVec<[Held; 2]> {
    asks.iter()
        .map(|ask| {
            ask.scope.local().admit(now_ms);
            Held::new(ask, slots && ask.limits.parallel.is_some())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use vaultgate_core::Error;

    use super::*;
    use crate::{Limits, Scope, ScopeKind};

    fn ask<'a>(scope: &'a Scope, limits: Limits) -> Ask<'a> {
        Ask {
            scope,
            limits,
            label: &"key sk-...ab",
        }
    }

    #[test]
    fn rpm_holds_within_a_minute_and_starts_again_in_the_next() {
        let key = Scope::new(ScopeKind::Key, "k1");
        let limits = Limits {
            rpm: Some(2),
            ..Limits::default()
        };
        let quota = LocalQuota;
        let _a = quota.acquire_now(&[ask(&key, limits)], 1_000).unwrap();
        let _b = quota.acquire_now(&[ask(&key, limits)], 2_000).unwrap();
        let Err(Error::RateLimited { retry_after, .. }) =
            quota.acquire_now(&[ask(&key, limits)], 59_500)
        else {
            panic!("the third request of the minute must be refused");
        };
        assert_eq!(retry_after, 1);
        assert!(quota.acquire_now(&[ask(&key, limits)], 60_000).is_ok());
    }

    #[test]
    fn parallel_slots_are_freed_when_the_permit_is_dropped() {
        let key = Scope::new(ScopeKind::Key, "k1");
        let limits = Limits {
            parallel: Some(1),
            ..Limits::default()
        };
        let first = LocalQuota.acquire_now(&[ask(&key, limits)], 0).unwrap();
        assert!(LocalQuota.acquire_now(&[ask(&key, limits)], 0).is_err());
        assert_eq!(key.in_flight(), 1);
        drop(first);
        assert_eq!(key.in_flight(), 0);
        assert!(LocalQuota.acquire_now(&[ask(&key, limits)], 0).is_ok());
    }

    #[test]
    fn tokens_fill_the_tpm_window() {
        let key = Scope::new(ScopeKind::Key, "k1");
        let limits = Limits {
            tpm: Some(100),
            ..Limits::default()
        };
        let permit = LocalQuota.acquire_now(&[ask(&key, limits)], 0).unwrap();
        permit.record_tokens(60, 10);
        assert!(LocalQuota.acquire_now(&[ask(&key, limits)], 20).is_ok());
        permit.record_tokens(40, 30);
        let Err(Error::RateLimited { message, .. }) =
            LocalQuota.acquire_now(&[ask(&key, limits)], 40)
        else {
            panic!("100 tokens used: full");
        };
        assert!(
            message.contains("tpm_limit 100 tokens per minute"),
            "{message}"
        );
        assert!(LocalQuota.acquire_now(&[ask(&key, limits)], 60_000).is_ok());
    }

    #[test]
    fn a_permit_reports_its_scope_s_use_of_the_minute() {
        let key = Scope::new(ScopeKind::Key, "k1");
        let limits = Limits {
            rpm: Some(10),
            tpm: Some(100),
            ..Limits::default()
        };
        let first = LocalQuota.acquire_now(&[ask(&key, limits)], 0).unwrap();
        first.record_tokens(30, 10);
        let second = LocalQuota.acquire_now(&[ask(&key, limits)], 20).unwrap();
        let used = second.used(ScopeKind::Key, 30).unwrap();
        assert_eq!((used.requests, used.tokens), (2, 30));
        assert_eq!(second.used(ScopeKind::Team, 30), None);
        let next_minute = second.used(ScopeKind::Key, 60_000).unwrap();
        assert_eq!((next_minute.requests, next_minute.tokens), (0, 0));
    }

    #[test]
    fn a_full_scope_refuses_the_request_in_every_scope() {
        let key = Scope::new(ScopeKind::Key, "k1");
        let team = Scope::new(ScopeKind::Team, "t1");
        let open = Limits {
            rpm: Some(10),
            parallel: Some(10),
            ..Limits::default()
        };
        let full = Limits {
            parallel: Some(0),
            ..Limits::default()
        };
        let asks = [
            ask(&key, open),
            Ask {
                scope: &team,
                limits: full,
                label: &"team t1",
            },
        ];
        let Err(Error::RateLimited { message, .. }) = LocalQuota.acquire_now(&asks, 0) else {
            panic!("the team is full");
        };
        assert!(message.contains("team t1"), "{message}");
        assert_eq!(key.in_flight(), 0, "the key's slot is given back");
        assert_eq!(*key.local().rpm.at(0), 0, "and the request is not counted");
    }
}
