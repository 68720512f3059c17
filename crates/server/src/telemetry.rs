//! Logging and metrics set-up, done once by the binary.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use vaultgate_core::{Error, Result};

/// Installs the global Prometheus recorder and returns the handle `/metrics` renders.
pub fn install_metrics() -> Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("duration_seconds".into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ],
        )
        .map_err(|e| Error::Internal(format!("metrics buckets: {e}")))?
        .install_recorder()
        .map_err(|e| Error::Internal(format!("cannot install the metrics recorder: {e}")))
}
