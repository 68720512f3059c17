//! The gateway killed with -9 while the load runs, then started again on the same key
//! database: the spend lost is at most what was answered within the last write interval
//! (`proxy_batch_write_at`) before the kill plus one write, as the README says; nothing is
//! charged twice, and the restarted gateway serves the key.

use std::time::Duration;

use serde_json::json;
use vaultgate_testkit::Gateway;

use crate::common::{BIN, admin};
use crate::load::{Load, eventually};
use crate::postgres::{COST, config, stored_spend};

/// The config's `proxy_batch_write_at`.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread")]
async fn spend_lost_to_a_kill_9_is_bounded_by_one_write_interval() {
    let mock = vaultgate_mock_upstream::MockUpstream::start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/keys.db", dir.path().display());
    let text = format!(
        "{}  proxy_batch_write_at: {}\n",
        config(&mock.url(), &database),
        FLUSH_INTERVAL.as_secs()
    );
    let gateway = Gateway::builder(BIN, &text)
        .dir(dir.path())
        .start()
        .unwrap();
    let (status, body) = admin(&gateway, "/key/generate", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let key = body["key"].as_str().unwrap().to_owned();
    const CLIENTS: usize = 4;
    let load = Load::chat(&gateway.url, &key, "gpt-a", CLIENTS);
    // Long enough for several writes, so the kill lands between two of them.
    load.flowing(400).await;

    let killed_at = std::time::Instant::now();
    drop(gateway); // SIGKILL
    let outcomes = load.stop().await;
    let answered = outcomes.iter().filter(|o| o.ok()).count();
    // The requests one write interval holds (plus the write itself, up to another interval).
    let window = killed_at.checked_sub(FLUSH_INTERVAL * 2).unwrap();
    let recent = outcomes.iter().filter(|o| o.ok() && o.at >= window).count();

    let gateway = Gateway::builder(BIN, &text)
        .dir(dir.path())
        .start()
        .unwrap();
    let spend = stored_spend(&gateway, &key).await.unwrap();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let stored = (spend / COST).round() as usize;
    assert!((spend - stored as f64 * COST).abs() < 1e-6, "{spend}");
    // Requests in flight at the kill may have been charged without their answer arriving.
    assert!(
        stored <= answered + CLIENTS,
        "charged {stored} requests, {answered} answered"
    );
    let lost = answered.saturating_sub(stored);
    assert!(
        lost <= recent,
        "{lost} requests' spend lost; {recent} were answered within two write intervals \
         before the kill ({answered} answered, {stored} charged)"
    );
    eprintln!(
        "kill -9: {answered} answered, {stored} charged, {lost} lost, {recent} answered in the \
         last {:?} before the kill",
        FLUSH_INTERVAL * 2
    );

    // The restarted gateway serves the key and charges it from the stored total on.
    let load = Load::chat(&gateway.url, &key, "gpt-a", 1);
    load.flowing(5).await;
    let after = load.stop().await;
    crate::load::assert_all_answered(&after, "after the restart");
    let expected = spend + after.len() as f64 * COST;
    eventually("the restarted gateway's spend written", async || {
        stored_spend(&gateway, &key)
            .await
            .is_some_and(|s| (s - expected).abs() < 1e-6)
    })
    .await;
}
