//! A circuit breaker in front of the database: after a failure to reach it (no connection within
//! the acquire timeout, a dropped connection, a server shutting down) calls fail at once for a
//! cool-down instead of each waiting out the timeout; then calls go through again, and the first
//! failure re-opens it for twice as long (up to a cap). Answers of a reachable database
//! (constraint violations, a full disk, a lock) do not open it: they are not about reaching it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vaultgate_core::Error;

const COOLDOWN_MIN: Duration = Duration::from_secs(1);
const COOLDOWN_MAX: Duration = Duration::from_secs(30);
/// While open, one call this often goes through to find out whether the database is back, so
/// the gateway recovers within about a second of it rather than after the whole cool-down.
const PROBE_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Breaker {
    started: Instant,
    /// Milliseconds since `started` until which calls fail fast; 0 while closed.
    open_until_ms: AtomicU64,
    cooldown_ms: AtomicU64,
    last_error: Mutex<String>,
    /// When (ms since `started`) a call last went through while open.
    probed_ms: AtomicU64,
    /// How many times it closed again: a writer backing off after a failure retries at once.
    recoveries: AtomicU64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            open_until_ms: AtomicU64::new(0),
            cooldown_ms: AtomicU64::new(millis(COOLDOWN_MIN)),
            last_error: Mutex::new(String::new()),
            recoveries: AtomicU64::new(0),
            probed_ms: AtomicU64::new(0),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        millis(self.started.elapsed())
    }

    /// `Err` while open: the database was unreachable moments ago.
    pub fn check(&self) -> Result<(), Error> {
        let until = self.open_until_ms.load(Ordering::Acquire);
        let now = self.now_ms();
        if until == 0 || now >= until {
            return Ok(());
        }
        let probed = self.probed_ms.load(Ordering::Acquire);
        if now >= probed.saturating_add(millis(PROBE_EVERY))
            && self
                .probed_ms
                .compare_exchange(probed, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Ok(());
        }
        let last = self
            .last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        Err(Error::Unavailable(format!(
            "the key database is unavailable ({last}); calls fail at once for {:.1} s more \
             while it is retried",
            Duration::from_millis(until - now).as_secs_f64()
        )))
    }

    /// How many times a call succeeded after the database had been unreachable.
    pub fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Acquire)
    }

    /// Notes a call's outcome: an unreachable database opens the breaker, a success closes it.
    pub fn record(&self, error: Option<&sqlx::Error>) {
        match error {
            None => {
                if self.open_until_ms.swap(0, Ordering::AcqRel) != 0 {
                    self.cooldown_ms
                        .store(millis(COOLDOWN_MIN), Ordering::Release);
                    self.recoveries.fetch_add(1, Ordering::AcqRel);
                    metrics::gauge!("vaultgate_key_db_circuit_open").set(0.0);
                    tracing::info!("key database reachable again");
                }
            }
            Some(e) if is_unreachable(e) => {
                let cooldown = self.cooldown_ms.load(Ordering::Acquire);
                self.cooldown_ms.store(
                    cooldown.saturating_mul(2).min(millis(COOLDOWN_MAX)),
                    Ordering::Release,
                );
                if let Ok(mut last) = self.last_error.lock() {
                    *last = e.to_string();
                }
                let now = self.now_ms();
                self.probed_ms.store(now, Ordering::Release);
                let was = self
                    .open_until_ms
                    .swap(now.saturating_add(cooldown).max(1), Ordering::AcqRel);
                metrics::gauge!("vaultgate_key_db_circuit_open").set(1.0);
                if was == 0 {
                    metrics::counter!("vaultgate_key_db_circuit_opened_total").increment(1);
                    tracing::warn!(error = %e, "key database unreachable: calls fail fast while it is retried");
                }
            }
            Some(_) => {}
        }
    }
}

/// Whether an error says the database could not be reached (as opposed to an answer of it).
fn is_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL: connection exceptions (08…) and a server shutting down or starting (57P…).
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_an_unreachable_database_and_closes_on_success() {
        let breaker = Breaker::default();
        assert!(breaker.check().is_ok());
        breaker.record(Some(&sqlx::Error::RowNotFound));
        assert!(
            breaker.check().is_ok(),
            "an answer of the database is no outage"
        );
        breaker.record(Some(&sqlx::Error::PoolTimedOut));
        let Err(Error::Unavailable(message)) = breaker.check() else {
            panic!("the breaker did not open");
        };
        assert!(message.contains("unavailable"), "{message}");
        assert_eq!(breaker.recoveries(), 0);
        breaker.record(None);
        assert!(breaker.check().is_ok());
        assert_eq!(breaker.recoveries(), 1, "the recovery was not counted");
        breaker.record(None);
        assert_eq!(
            breaker.recoveries(),
            1,
            "a success while closed is no recovery"
        );
    }
}
