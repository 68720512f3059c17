//! The metrics every request touches, registered once: the `metrics` macros hash their name and
//! labels and look them up in the registry on every call.

pub(crate) struct HotMetrics {
    pub cache_hits: metrics::Counter,
    pub auth_ok: metrics::Counter,
    pub spend_usd: metrics::Gauge,
    pub prompt_tokens: metrics::Counter,
    pub completion_tokens: metrics::Counter,
}

/// Registered on first use, which is after the recorder is installed (the first request).
pub(crate) fn hot_metrics() -> &'static HotMetrics {
    static HOT: std::sync::LazyLock<HotMetrics> = std::sync::LazyLock::new(|| HotMetrics {
        cache_hits: metrics::counter!("vaultgate_key_cache_total", "result" => "hit"),
        auth_ok: metrics::counter!("vaultgate_key_auth_total", "result" => "ok"),
        spend_usd: metrics::gauge!("vaultgate_spend_usd_total"),
        prompt_tokens: metrics::counter!("vaultgate_tokens_total", "type" => "prompt"),
        completion_tokens: metrics::counter!("vaultgate_tokens_total", "type" => "completion"),
    });
    &HOT
}
