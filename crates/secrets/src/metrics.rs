//! Vault metrics, recorded with the `metrics` macros; the server installs the Prometheus recorder.

use std::time::Duration;

pub const REQUESTS_TOTAL: &str = "vaultgate_vault_requests_total";
pub const REQUEST_DURATION: &str = "vaultgate_vault_request_duration_seconds";
pub const TOKEN_TTL: &str = "vaultgate_vault_token_ttl_seconds";
pub const REFRESH_FAILURES: &str = "vaultgate_vault_refresh_failures_total";
pub const STALE_SECRETS: &str = "vaultgate_vault_stale_secrets";

/// One HTTP attempt; `status` is the HTTP code or `error` for a transport failure.
pub(crate) fn request(operation: &'static str, status: &str) {
    metrics::counter!(REQUESTS_TOTAL, "operation" => operation, "status" => status.to_owned())
        .increment(1);
}

pub(crate) fn request_duration(operation: &'static str, elapsed: Duration) {
    metrics::histogram!(REQUEST_DURATION, "operation" => operation).record(elapsed.as_secs_f64());
}

pub(crate) fn token_ttl(secs: u64) {
    metrics::gauge!(TOKEN_TTL).set(secs as f64);
}

pub(crate) fn refresh_failure() {
    metrics::counter!(REFRESH_FAILURES).increment(1);
}

pub(crate) fn stale_secrets(count: usize) {
    metrics::gauge!(STALE_SECRETS).set(count as f64);
}
