//! The Vault metrics the server exports, and the retry rules (429 is retried, 403/404 are not),
//! observed on a real OpenBao dev server through a debugging metrics recorder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::{bao, config, env};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use vaultgate_core::Error;
use vaultgate_secrets::{LiveSecrets, VaultClient, VaultSettings};

/// Counters and gauges as `name{k=v,…}` → value; histograms → number of samples.
fn take(snapshotter: &Snapshotter, into: &mut BTreeMap<String, f64>) {
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (_, key) = key.into_parts();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(n) => *into.entry(name).or_default() += n as f64,
            DebugValue::Gauge(g) => {
                into.insert(name, g.into_inner());
            }
            DebugValue::Histogram(samples) => {
                *into.entry(name).or_default() += samples.len() as f64
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_retry_rules() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let mut seen = BTreeMap::new();

    let mut bao = bao();
    bao.kv_put(None, "secret", "K", "v").unwrap();
    bao.write_policy(
        None,
        "reader",
        "path \"secret/data/*\" { capabilities = [\"read\"] }",
    )
    .unwrap();
    let token = bao.create_token(None, &["reader"], "1h", None).unwrap();
    let env = env(
        &bao,
        &[
            ("HCP_VAULT_TOKEN", token.as_str()),
            ("VAULT_MAX_RETRIES", "0"),
        ],
    );
    let client = VaultClient::connect(VaultSettings::from_env(&env).unwrap().unwrap())
        .await
        .unwrap();
    client.read_secret("K").await.unwrap();
    assert!(client.read_secret("MISSING").await.unwrap().is_none());
    let denied = client.list_secrets("").await.unwrap_err();
    assert!(
        matches!(
            denied,
            Error::Vault {
                status: Some(403),
                ..
            }
        ),
        "{denied:?}"
    );
    take(&snapshotter, &mut seen);
    for (name, expected) in [
        (
            "vaultgate_vault_requests_total{operation=lookup,status=200}",
            1.0,
        ),
        (
            "vaultgate_vault_requests_total{operation=read,status=200}",
            1.0,
        ),
        (
            "vaultgate_vault_requests_total{operation=read,status=404}",
            1.0,
        ),
        // Not retried (and token auth cannot re-login).
        (
            "vaultgate_vault_requests_total{operation=list,status=403}",
            1.0,
        ),
        (
            "vaultgate_vault_request_duration_seconds{operation=read}",
            2.0,
        ),
    ] {
        assert_eq!(seen.get(name), Some(&expected), "{name} in {seen:#?}");
    }
    assert!(
        seen.get("vaultgate_vault_token_ttl_seconds{}")
            .is_some_and(|ttl| *ttl > 3000.0),
        "{seen:#?}"
    );

    // A rate-limit quota: 429 with Retry-After. Without retries the burst fails...
    bao.bao(&[
        "write",
        "sys/quotas/config",
        "enable_rate_limit_response_headers=true",
    ])
    .unwrap();
    bao.bao(&[
        "write",
        "sys/quotas/rate-limit/rl",
        "path=secret/",
        "rate=1",
        "interval=1s",
    ])
    .unwrap();
    let mut limited = None;
    for _ in 0..5 {
        if let Err(error) = client.read_secret("K").await {
            limited = Some(error);
            break;
        }
    }
    assert!(
        matches!(
            limited,
            Some(Error::Vault {
                status: Some(429),
                ..
            })
        ),
        "{limited:?}"
    );
    // ...and with retries every read gets through, after waiting as told.
    let env = common::env(&bao, &[("VAULT_MAX_RETRIES", "6")]);
    let retrying = VaultClient::connect(VaultSettings::from_env(&env).unwrap().unwrap())
        .await
        .unwrap();
    for _ in 0..3 {
        retrying.read_secret("K").await.unwrap();
    }
    take(&snapshotter, &mut seen);
    assert!(
        seen.get("vaultgate_vault_requests_total{operation=read,status=429}")
            .is_some_and(|n| *n >= 2.0),
        "{seen:#?}"
    );
    bao.bao(&["delete", "sys/quotas/rate-limit/rl"]).unwrap();

    // Refresh failures and stale secrets while OpenBao is down.
    let env = common::env(
        &bao,
        &[
            ("HCP_VAULT_REFRESH_INTERVAL", "1"),
            ("VAULT_MAX_RETRIES", "0"),
        ],
    );
    let live = LiveSecrets::start(&config(&["K"], ""), env).await.unwrap();
    bao.stop().unwrap();
    assert!(live.refresh_now().await.is_err());
    take(&snapshotter, &mut seen);
    assert!(
        seen.get("vaultgate_vault_refresh_failures_total{}")
            .is_some_and(|n| *n >= 1.0),
        "{seen:#?}"
    );
    assert_eq!(
        seen.get("vaultgate_vault_stale_secrets{}"),
        Some(&1.0),
        "{seen:#?}"
    );
    assert!(
        seen.contains_key("vaultgate_vault_requests_total{operation=read,status=error}"),
        "{seen:#?}"
    );
}
