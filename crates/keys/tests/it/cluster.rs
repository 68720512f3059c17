//! Two instances on one PostgreSQL schema: what one changes (keys, teams) and the spend it
//! writes reach the other through LISTEN/NOTIFY, though the caches would trust their copies for
//! an hour; a lost channel is subscribed again and followed by a full flush; one instance at a
//! time runs the background jobs.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Executor;
use vaultgate_config::ModelInfo;
use vaultgate_keys::KeyService;

use crate::common::{Db, Harness, s};

/// Longest wait for something another instance did (the tests never assert on timing).
const PATIENCE: Duration = Duration::from_secs(10);

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "not seen within {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Both instances listen (the channel is subscribed after the start, in the background).
async fn listening(services: &[&KeyService]) {
    eventually("both instances listening", async || {
        services.iter().all(|s| s.hears_other_instances())
    })
    .await;
}

async fn accepted(service: &KeyService, raw: &str) -> bool {
    service.authenticate(raw).await.is_ok()
}

#[tokio::test]
async fn changes_on_one_instance_reach_the_other_at_once_postgres() {
    let h = Harness::new(Db::Postgres, false).await;
    let other = h.another_instance().await;
    listening(&[&h.service, &other]).await;

    let generated = h.generate(json!({"models": ["gpt-a"]})).await;
    let raw = s(&generated["key"]);
    assert!(accepted(&other, &raw).await);

    h.post("/key/block", json!({"key": raw})).await;
    eventually("block", async || !accepted(&other, &raw).await).await;
    h.post("/key/unblock", json!({"key": raw})).await;
    eventually("unblock", async || accepted(&other, &raw).await).await;

    let (status, body) = h
        .post("/key/update", json!({"key": raw, "models": ["gpt-b"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("models update", async || {
        let key = other.authenticate(&raw).await.unwrap();
        other.authorize_model(&key, "gpt-a").is_err()
            && other.authorize_model(&key, "gpt-b").is_ok()
    })
    .await;

    // Expiry set in the past by an update.
    let (status, body) = h
        .post("/key/update", json!({"key": raw, "duration": "1s"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.clock.advance_ms(5_000);
    eventually("expiry update", async || !accepted(&other, &raw).await).await;
    h.post("/key/update", json!({"key": raw, "duration": "1d"}))
        .await;
    eventually("expiry lifted", async || accepted(&other, &raw).await).await;

    let (status, regenerated) = h.post(&format!("/key/{raw}/regenerate"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{regenerated}");
    let new_raw = s(&regenerated["key"]);
    eventually("regenerate", async || {
        !accepted(&other, &raw).await && accepted(&other, &new_raw).await
    })
    .await;

    // A key the other instance already refused (and remembers as unknown) works once made.
    let custom = "sk-cluster-custom-key-4f1c";
    assert!(!accepted(&other, custom).await);
    h.generate(json!({"key": custom})).await;
    eventually("new key", async || accepted(&other, custom).await).await;

    // A team blocked on one instance blocks its keys on the other.
    let (status, body) = h
        .post("/team/new", json!({"team_id": "cluster-team"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let in_team = s(&h.generate(json!({"team_id": "cluster-team"})).await["key"]);
    assert!(accepted(&other, &in_team).await);
    let (status, body) = h
        .post("/team/block", json!({"team_id": "cluster-team"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("team block", async || !accepted(&other, &in_team).await).await;

    h.post("/key/delete", json!({"keys": [new_raw]})).await;
    eventually("delete", async || !accepted(&other, &new_raw).await).await;

    other.shutdown().await;
    h.finish().await;
}

#[tokio::test]
async fn a_lost_channel_is_subscribed_again_and_the_cache_flushed_postgres() {
    let h = Harness::new(Db::Postgres, false).await;
    let other = h.another_instance().await;
    listening(&[&h.service, &other]).await;
    let raw = s(&h.generate(json!({})).await["key"]);

    // A change nobody announces (written behind the gateways' backs) while the other instance
    // has the key cached: the cache keeps serving it. (Tried again while the key's own
    // announcements, arriving late, make the other instance read the store.)
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&h.db.url)
        .await
        .unwrap();
    let mut stale = false;
    for _ in 0..50 {
        conn.execute("UPDATE keys SET blocked = 0").await.unwrap();
        assert!(accepted(&other, &raw).await);
        conn.execute("UPDATE keys SET blocked = 1").await.unwrap();
        if accepted(&other, &raw).await {
            stale = true;
            break;
        }
    }
    assert!(
        stale,
        "the other instance never served the key from its cache"
    );

    // The listeners' connections are cut: after subscribing again, nothing cached is trusted.
    let schema = h.db.schema().unwrap();
    let hash = Sha256::digest(format!("vaultgate cluster {schema}").as_bytes());
    let channel = format!("vaultgate_{}", hex::encode(&hash[..8]));
    let cut = conn
        .execute(
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE query = 'LISTEN \"{channel}\"'"
            )
            .as_str(),
        )
        .await
        .unwrap();
    assert_eq!(cut.rows_affected(), 2, "both listeners found");
    eventually("flush after the channel is back", async || {
        !accepted(&other, &raw).await
    })
    .await;
    listening(&[&h.service, &other]).await;

    other.shutdown().await;
    h.finish().await;
}

#[tokio::test]
async fn spend_written_by_one_instance_counts_against_the_budget_on_the_other_postgres() {
    let h = Harness::new(Db::Postgres, false).await;
    let other = h.another_instance().await;
    listening(&[&h.service, &other]).await;
    let raw = s(&h.generate(json!({"max_budget": 1.0})).await["key"]);
    let there = other.authenticate(&raw).await.unwrap();
    drop(other.admit(&there, "m", None).await.unwrap());

    let prices = ModelInfo {
        input_cost_per_token: Some(0.001),
        ..ModelInfo::default()
    };
    let here = h.service.authenticate(&raw).await.unwrap();
    let admission = h.service.admit(&here, "m", None).await.unwrap();
    h.service
        .record_usage(&admission, "m", 1500, 0, Some(&prices));
    drop(admission);
    h.service.flush_spend().await.unwrap();

    eventually("the other instance's spend", async || {
        other
            .admit(&there, "m", None)
            .await
            .is_err_and(|e| e.to_string().contains("udget"))
    })
    .await;

    other.shutdown().await;
    h.finish().await;
}

#[tokio::test]
async fn one_instance_at_a_time_runs_the_jobs_and_another_takes_over_postgres() {
    let h = Harness::new(Db::Postgres, false).await;
    let other = h.another_instance().await;
    eventually("a leader", async || {
        h.service.runs_background_jobs() || other.runs_background_jobs()
    })
    .await;
    // Both keep competing for a while: still exactly one.
    for _ in 0..30 {
        assert!(h.service.runs_background_jobs() != other.runs_background_jobs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (leader, follower) = if h.service.runs_background_jobs() {
        (h.service.clone(), other.clone())
    } else {
        (other.clone(), h.service.clone())
    };
    leader.shutdown().await;
    eventually("the follower takes over", async || {
        follower.runs_background_jobs()
    })
    .await;

    other.shutdown().await;
    h.finish().await;
}
