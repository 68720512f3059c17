//! Minute windows, this instance's counts of a scope, and the rejections (one wording for the
//! local and the shared counters).

use vaultgate_core::Error;

use crate::{Ask, Limits};

pub(crate) const MINUTE_MS: i64 = 60_000;

/// A count that starts again from 0 each minute (rpm and tpm windows).
#[derive(Debug, Default, Clone)]
pub(crate) struct MinuteCount {
    minute: i64,
    count: u64,
}

impl MinuteCount {
    /// The count of the minute `now_ms` falls in.
    pub fn at(&mut self, now_ms: i64) -> &mut u64 {
        let minute = now_ms.div_euclid(MINUTE_MS);
        if self.minute != minute {
            self.minute = minute;
            self.count = 0;
        }
        &mut self.count
    }
}

/// One scope's counts on this instance.
#[derive(Debug, Default)]
pub(crate) struct LocalCounts {
    pub rpm: MinuteCount,
    pub tpm: MinuteCount,
    pub in_flight: u64,
}

/// Which limit turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    Rpm,
    Tpm,
    Parallel,
}

impl LocalCounts {
    /// The first full limit at `now_ms`, each limit divided by `share` (rounded up: several
    /// instances counting alone each take their part of it).
    pub fn full(&mut self, limits: &Limits, now_ms: i64, share: u64) -> Option<(Full, u64)> {
        let part = |limit: u64| limit.div_ceil(share.max(1));
        if let Some(limit) = limits.rpm
            && *self.rpm.at(now_ms) >= part(limit)
        {
            return Some((Full::Rpm, limit));
        }
        if let Some(limit) = limits.tpm
            && *self.tpm.at(now_ms) >= part(limit)
        {
            return Some((Full::Tpm, limit));
        }
        if let Some(limit) = limits.parallel
            && self.in_flight >= part(limit)
        {
            return Some((Full::Parallel, limit));
        }
        None
    }

    /// Counts an admitted request.
    pub fn admit(&mut self, now_ms: i64) {
        *self.rpm.at(now_ms) += 1;
        self.in_flight += 1;
    }

    /// Takes back [`LocalCounts::admit`] (another scope of the same request was full).
    pub fn undo_admit(&mut self, now_ms: i64) {
        let requests = self.rpm.at(now_ms);
        *requests = requests.saturating_sub(1);
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    pub fn add_tokens(&mut self, now_ms: i64, tokens: u64) {
        let used = self.tpm.at(now_ms);
        *used = used.saturating_add(tokens);
    }
}

/// Whole seconds until `ms_left` is over (at least 1), for Retry-After.
pub(crate) fn whole_seconds(ms_left: i64) -> u64 {
    u64::try_from((ms_left + 999) / 1000).unwrap_or(1).max(1)
}

/// Milliseconds until the minute of `now_ms` ends.
pub(crate) fn ms_to_next_minute(now_ms: i64) -> i64 {
    MINUTE_MS - now_ms.rem_euclid(MINUTE_MS)
}

/// The 429 for a full limit; `retry_ms` is when a minute window ends.
pub(crate) fn rejection(full: Full, limit: u64, ask: &Ask<'_>, retry_ms: i64) -> Error {
    let label = ask.label;
    let (reason, message, retry_after) = match full {
        Full::Rpm | Full::Tpm => {
            let (reason, unit) = if full == Full::Rpm {
                ("rpm", "requests")
            } else {
                ("tpm", "tokens")
            };
            let wait = whole_seconds(retry_ms);
            (
                reason,
                format!(
                    "Rate limit reached for {label}: {reason}_limit {limit} {unit} per minute. \
                     Try again in {wait} seconds."
                ),
                wait,
            )
        }
        Full::Parallel => (
            "parallel",
            format!(
                "Max parallel request limit reached for {label}: max_parallel_requests {limit}. \
                 Try again when a request finishes."
            ),
            1,
        ),
    };
    metrics::counter!("vaultgate_key_limit_rejections_total", "reason" => reason,
        "scope" => ask.scope.kind().as_str())
    .increment(1);
    Error::RateLimited {
        message,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn retry_after_is_at_least_one_second() {
        assert_eq!(whole_seconds(ms_to_next_minute(0)), 60);
        assert_eq!(whole_seconds(ms_to_next_minute(59_999)), 1);
        assert_eq!(whole_seconds(ms_to_next_minute(30_500)), 30);
        assert_eq!(whole_seconds(0), 1);
    }

    use crate::{Scope, ScopeKind};

    #[test]
    fn rejections_name_the_limit_and_when_to_retry() {
        let key = Scope::new(ScopeKind::Key, "k");
        let team = Scope::new(ScopeKind::Team, "t1");
        let ask = |scope, label| Ask {
            scope,
            limits: Limits::default(),
            label,
        };
        for (full, reason, unit) in [(Full::Rpm, "rpm", "requests"), (Full::Tpm, "tpm", "tokens")] {
            let Error::RateLimited {
                message,
                retry_after,
            } = rejection(
                full,
                3,
                &ask(&key, &"key sk-...ab"),
                ms_to_next_minute(45_000),
            )
            else {
                panic!("{reason}: not a 429");
            };
            assert_eq!(
                message,
                format!(
                    "Rate limit reached for key sk-...ab: {reason}_limit 3 {unit} per minute. \
                     Try again in 15 seconds."
                )
            );
            assert_eq!(retry_after, 15);
        }
        let Error::RateLimited { message, .. } =
            rejection(Full::Parallel, 2, &ask(&team, &"team t1"), 1_000)
        else {
            panic!("not a 429");
        };
        assert!(message.starts_with("Max parallel request limit reached for team t1"));
    }

    #[test]
    fn a_minute_count_starts_again_each_minute() {
        let mut count = MinuteCount::default();
        *count.at(1_000) += 2;
        *count.at(59_999) += 1;
        assert_eq!(*count.at(59_999), 3);
        assert_eq!(*count.at(60_000), 0);
    }

    #[test]
    fn a_share_of_a_limit_is_rounded_up() {
        let limits = Limits {
            rpm: Some(5),
            tpm: None,
            parallel: None,
        };
        let mut counts = LocalCounts::default();
        for _ in 0..3 {
            assert_eq!(counts.full(&limits, 0, 2), None);
            counts.admit(0);
        }
        assert_eq!(counts.full(&limits, 0, 2), Some((Full::Rpm, 5)));
        assert_eq!(counts.full(&limits, 0, 1), None);
        assert_eq!(counts.full(&limits, 0, 0), None, "share 0 counts as 1");
    }
}
