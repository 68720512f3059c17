//! What the router remembers about each deployment: requests in flight (least-busy), recent
//! latency (latency-based routing) and recent failures (cooldown). Read on every pick, so it is
//! atomics plus one short `std` mutex section per update; nothing is held across an await.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Failures are counted per window of this length, as LiteLLM counts them per minute.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Weight of a new latency sample in the moving average.
const LATENCY_SMOOTHING: f64 = 0.3;
/// A failed attempt enters the latency average as at least this slow, so a deployment that
/// fails fast never looks like the fastest one.
const FAILURE_LATENCY_PENALTY: Duration = Duration::from_secs(10);

/// When a deployment is taken out of rotation, and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CooldownPolicy {
    /// Failures tolerated within [`FAILURE_WINDOW`]; the next one starts a cooldown.
    pub allowed_fails: u32,
    pub cooldown_time: Duration,
}

impl Default for CooldownPolicy {
    /// LiteLLM's defaults: 3 allowed failures, 5 s cooldown.
    fn default() -> Self {
        Self {
            allowed_fails: 3,
            cooldown_time: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Default)]
struct Failures {
    window_start: Option<Instant>,
    in_window: u32,
    cooldown_until: Option<Instant>,
    last_failure: Option<Instant>,
}

/// A deployment's recent failures, as [`DeploymentState::failures`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureStats {
    /// Failures counted in the current window of [`FAILURE_WINDOW`] (reset by a cooldown).
    pub in_window: u32,
    pub last_failure: Option<Instant>,
    /// When the current cooldown ends, if one is running.
    pub cooldown_until: Option<Instant>,
}

/// Live statistics of one deployment.
#[derive(Debug, Default)]
pub struct DeploymentState {
    in_flight: Arc<AtomicUsize>,
    /// Moving average of attempt latency in microseconds; 0 means never measured.
    latency_micros: AtomicU64,
    failures: Mutex<Failures>,
}

/// Holds one in-flight slot of a deployment until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl DeploymentState {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one request in flight until the returned guard is dropped.
    pub fn start(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(&self.in_flight))
    }

    /// The latency moving average, `None` until the first sample.
    pub fn latency(&self) -> Option<Duration> {
        match self.latency_micros.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    pub fn record_latency(&self, sample: Duration) {
        let sample = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX).max(1);
        // A lost update under contention only drops one sample of an average: no CAS loop needed.
        let old = self.latency_micros.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            ((old as f64) * (1.0 - LATENCY_SMOOTHING) + (sample as f64) * LATENCY_SMOOTHING) as u64
        };
        self.latency_micros.store(new.max(1), Ordering::Relaxed);
    }

    /// Notes a failed attempt that took `elapsed`; returns true when it started a cooldown.
    pub fn record_failure(&self, policy: &CooldownPolicy, now: Instant, elapsed: Duration) -> bool {
        self.record_latency(elapsed.max(FAILURE_LATENCY_PENALTY));
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.last_failure = Some(now);
        let window_over = failures
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= FAILURE_WINDOW);
        if window_over {
            failures.window_start = Some(now);
            failures.in_window = 0;
        }
        failures.in_window += 1;
        if failures.in_window > policy.allowed_fails && !policy.cooldown_time.is_zero() {
            failures.cooldown_until = Some(now + policy.cooldown_time);
            failures.window_start = None;
            failures.in_window = 0;
            return true;
        }
        false
    }

    /// What the failure bookkeeping says at `now` (for the admin console; never per request).
    pub fn failures(&self, now: Instant) -> FailureStats {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let window_open = failures
            .window_start
            .is_some_and(|start| now.saturating_duration_since(start) < FAILURE_WINDOW);
        FailureStats {
            in_window: if window_open { failures.in_window } else { 0 },
            last_failure: failures.last_failure,
            cooldown_until: failures.cooldown_until.filter(|until| *until > now),
        }
    }

    /// When the deployment's cooldown ends, if it is cooling down at `now`.
    pub fn cooling_until(&self, now: Instant) -> Option<Instant> {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.cooldown_until.filter(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_starts_after_allowed_fails_and_ends_after_cooldown_time() {
        let state = DeploymentState::default();
        let policy = CooldownPolicy {
            allowed_fails: 2,
            cooldown_time: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        assert!(!state.record_failure(&policy, t0, Duration::ZERO));
        assert!(!state.record_failure(&policy, t0, Duration::ZERO));
        assert_eq!(state.cooling_until(t0), None);
        assert!(state.record_failure(&policy, t0, Duration::ZERO));
        assert_eq!(state.cooling_until(t0), Some(t0 + Duration::from_secs(5)));
        assert!(
            state
                .cooling_until(t0 + Duration::from_millis(4999))
                .is_some()
        );
        assert_eq!(state.cooling_until(t0 + Duration::from_secs(5)), None);
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let state = DeploymentState::default();
        let policy = CooldownPolicy {
            allowed_fails: 1,
            cooldown_time: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        assert!(!state.record_failure(&policy, t0, Duration::ZERO));
        assert!(!state.record_failure(&policy, t0 + FAILURE_WINDOW, Duration::ZERO));
        assert!(state.record_failure(&policy, t0 + FAILURE_WINDOW, Duration::ZERO));
    }

    #[test]
    fn failure_stats_show_the_window_and_the_cooldown() {
        let state = DeploymentState::default();
        let policy = CooldownPolicy {
            allowed_fails: 1,
            cooldown_time: Duration::from_secs(5),
        };
        let t0 = Instant::now();
        assert_eq!(state.failures(t0).in_window, 0);
        state.record_failure(&policy, t0, Duration::ZERO);
        let stats = state.failures(t0);
        assert_eq!(
            (stats.in_window, stats.last_failure, stats.cooldown_until),
            (1, Some(t0), None)
        );
        assert_eq!(state.failures(t0 + FAILURE_WINDOW).in_window, 0);
        state.record_failure(&policy, t0, Duration::ZERO);
        assert_eq!(
            state.failures(t0).cooldown_until,
            Some(t0 + Duration::from_secs(5))
        );
        assert_eq!(
            state.failures(t0 + Duration::from_secs(5)).cooldown_until,
            None
        );
    }

    #[test]
    fn zero_cooldown_time_disables_cooldown() {
        let state = DeploymentState::default();
        let policy = CooldownPolicy {
            allowed_fails: 0,
            cooldown_time: Duration::ZERO,
        };
        let t0 = Instant::now();
        assert!(!state.record_failure(&policy, t0, Duration::ZERO));
        assert_eq!(state.cooling_until(t0), None);
    }

    #[test]
    fn in_flight_guard_counts_until_dropped() {
        let state = DeploymentState::default();
        let a = state.start();
        let b = state.start();
        assert_eq!(state.in_flight(), 2);
        drop(a);
        assert_eq!(state.in_flight(), 1);
        drop(b);
        assert_eq!(state.in_flight(), 0);
    }

    #[test]
    fn latency_is_a_moving_average_and_failures_count_as_slow() {
        let state = DeploymentState::default();
        assert_eq!(state.latency(), None);
        state.record_latency(Duration::from_millis(100));
        assert_eq!(state.latency(), Some(Duration::from_millis(100)));
        state.record_latency(Duration::from_millis(200));
        assert_eq!(state.latency(), Some(Duration::from_millis(130)));
        state.record_failure(&CooldownPolicy::default(), Instant::now(), Duration::ZERO);
        assert!(state.latency() > Some(Duration::from_secs(1)));
    }
}
