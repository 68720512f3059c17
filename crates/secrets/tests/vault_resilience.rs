//! Rotation, outages and sealing: the last good values are served, readiness tells the truth,
//! and everything recovers by itself. Real OpenBao dev servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{LIMIT, bao, config, env, wait_until};
use tokio_util::sync::CancellationToken;
use vaultgate_secrets::LiveSecrets;

const FAST: &[(&str, &str)] = &[
    ("HCP_VAULT_REFRESH_INTERVAL", "1"),
    ("VAULT_MAX_RETRIES", "0"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_in_vault_is_picked_up_by_the_refresher_and_refresh_one() {
    let bao = bao();
    bao.kv_put(None, "secret", "ROTATED", "old-value").unwrap();
    bao.kv_put(None, "secret", "STEADY", "steady-value")
        .unwrap();
    let live = LiveSecrets::start(&config(&["ROTATED", "STEADY"], ""), env(&bao, FAST))
        .await
        .unwrap();
    let before = live.snapshot();
    let shutdown = CancellationToken::new();
    let refresher = live.clone().spawn_refresher(shutdown.clone());

    bao.kv_put(None, "secret", "ROTATED", "new-value").unwrap();
    assert!(
        wait_until(LIMIT, || async {
            live.snapshot().get("ROTATED") == Some("new-value")
        })
        .await
    );
    assert_eq!(live.snapshot().get("STEADY"), Some("steady-value"));
    // A snapshot taken before is never changed under its reader.
    assert_eq!(before.get("ROTATED"), Some("old-value"));
    assert_eq!(live.readiness().status, "ok");
    shutdown.cancel();
    refresher.await.unwrap();

    // The "upstream said 401" path: one immediate re-read, then rate-limited.
    bao.kv_put(None, "secret", "ROTATED", "newer-value")
        .unwrap();
    assert!(live.refresh_one("ROTATED").await.unwrap());
    assert_eq!(live.snapshot().get("ROTATED"), Some("newer-value"));
    bao.kv_put(None, "secret", "ROTATED", "newest-value")
        .unwrap();
    assert!(
        !live.refresh_one("ROTATED").await.unwrap(),
        "second call within 5 s is skipped"
    );
    assert_eq!(live.snapshot().get("ROTATED"), Some("newer-value"));
    assert!(!live.refresh_one("NOT_A_REFERENCE").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openbao_stopped_mid_run_keeps_last_values_then_recovers() {
    let mut bao = bao();
    bao.kv_put(None, "secret", "K", "before-outage").unwrap();
    let live = LiveSecrets::start(&config(&["K"], ""), env(&bao, FAST))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let _refresher = live.clone().spawn_refresher(shutdown.clone());

    bao.stop().unwrap();
    assert!(wait_until(LIMIT, || async { live.readiness().status == "degraded" }).await);
    let readiness = live.readiness();
    assert!(
        readiness
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("unreachable"),
        "{readiness:?}"
    );
    assert_eq!(
        live.snapshot().get("K"),
        Some("before-outage"),
        "last good value is served"
    );
    assert!(live.refresh_now().await.is_err());

    // The dev server comes back empty: seed it again (with a rotated value).
    bao.restart().unwrap();
    bao.kv_put(None, "secret", "K", "after-outage").unwrap();
    assert!(
        wait_until(LIMIT, || async { live.readiness().status == "ok" }).await,
        "{:?}",
        live.readiness()
    );
    assert!(
        wait_until(LIMIT, || async {
            live.snapshot().get("K") == Some("after-outage")
        })
        .await
    );
    assert!(live.readiness().last_error.is_none());
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_vault_is_degraded_until_unsealed() {
    let mut bao = bao();
    bao.kv_put(None, "secret", "K", "sealed-safe").unwrap();
    let live = LiveSecrets::start(&config(&["K"], ""), env(&bao, FAST))
        .await
        .unwrap();
    let _refresher = live.clone().spawn_refresher(CancellationToken::new());

    bao.seal().unwrap();
    assert!(wait_until(LIMIT, || async { live.readiness().status == "degraded" }).await);
    let error = live.readiness().last_error.unwrap_or_default();
    assert!(error.contains("503") && error.contains("sealed"), "{error}");
    assert_eq!(live.snapshot().get("K"), Some("sealed-safe"));

    bao.unseal().unwrap();
    assert!(
        wait_until(LIMIT, || async { live.readiness().status == "ok" }).await,
        "{:?}",
        live.readiness()
    );
    assert_eq!(live.snapshot().get("K"), Some("sealed-safe"));
    assert!(live.readiness().oldest_value_age_secs.is_some());
}
