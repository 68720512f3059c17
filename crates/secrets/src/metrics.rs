//! Vault metrics, recorded with the `metrics` macros; the server installs the Prometheus recorder.

use std::time::Duration;

pub const REQUESTS_TOTAL: &str = "vaultgate_vault_requests_total";
pub const REQUEST_DURATION: &str = "vaultgate_vault_request_duration_seconds";
pub const TOKEN_TTL: &str = "vaultgate_vault_token_ttl_seconds";
pub const REFRESH_FAILURES: &str = "vaultgate_vault_refresh_failures_total";
pub const STALE_SECRETS: &str = "vaultgate_vault_stale_secrets";
pub const LEASE_RENEWALS: &str = "vaultgate_vault_lease_renewals_total";
pub const LEASE_REISSUES: &str = "vaultgate_vault_lease_reissues_total";

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

pub(crate) fn lease_renewed() {
    metrics::counter!(LEASE_RENEWALS).increment(1);
}

pub(crate) fn lease_reissued() {
    metrics::counter!(LEASE_REISSUES).increment(1);
}

/// Registers help texts; call once after installing the recorder.
pub fn describe() {
    metrics::describe_counter!(
        REQUESTS_TOTAL,
        "Vault HTTP requests by operation and status"
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Vault HTTP request duration by operation"
    );
    metrics::describe_gauge!(
        TOKEN_TTL,
        metrics::Unit::Seconds,
        "Seconds left on the Vault token"
    );
    metrics::describe_counter!(REFRESH_FAILURES, "Failed re-reads of a secret from Vault");
    metrics::describe_counter!(LEASE_RENEWALS, "Vault leases of vault:// values renewed");
    metrics::describe_counter!(
        LEASE_REISSUES,
        "vault:// values issued anew by Vault before they expired"
    );
    metrics::describe_gauge!(
        STALE_SECRETS,
        "Secrets whose last refresh from Vault failed"
    );
}
