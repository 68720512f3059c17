//! Logging and metrics set-up, done once by the binary.

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use vaultgate_core::{Error, Result};

/// How often histogram samples are folded into their buckets when nobody scrapes `/metrics`.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the global Prometheus recorder and returns the handle `/metrics` renders.
///
/// `install_recorder` leaves upkeep to the caller: until a scrape, every histogram sample (one
/// per request) is kept, so an unscraped gateway grew by ~27 bytes per request. A background
/// thread runs the upkeep every few seconds.
pub fn install_metrics() -> Result<PrometheusHandle> {
    let handle = install_recorder()?;
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(METRICS_UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the metrics upkeep thread; histograms are drained only by scrapes");
    }
    Ok(handle)
}

fn install_recorder() -> Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("duration_seconds".into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ],
        )
        .map_err(|e| Error::Internal(format!("metrics buckets: {e}")))?
        .set_buckets_for_metric(
            Matcher::Prefix("litellm_".into()),
            crate::litellm_metrics::LATENCY_BUCKETS,
        )
        .map_err(|e| Error::Internal(format!("metrics buckets: {e}")))?
        .install_recorder()
        .map_err(|e| Error::Internal(format!("cannot install the metrics recorder: {e}")))
}
