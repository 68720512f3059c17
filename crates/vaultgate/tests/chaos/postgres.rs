//! A PostgreSQL cluster of the test's own stopped (like a crash) and started again while the
//! load runs: cached keys keep serving, key management answers a quick 503 naming the
//! database, readiness says `disconnected` and shows the spend waiting in memory, and once the
//! database is back every request's spend is in the store, exactly.

use serde_json::{Value, json};
use vaultgate_testkit::Gateway;
use vaultgate_testkit::postgres::OwnCluster;

use crate::common::{BIN, MASTER, admin, admin_get};
use crate::load::{Load, assert_all_answered, eventually, until};

/// What one chat answer of the mock costs with the config's prices.
pub const COST: f64 = 0.19;

/// One priced model on `upstream`, keys in `database_url`, no Vault.
pub fn config(upstream: &str, database_url: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-a-upstream, api_base: '{upstream}/v1', api_key: sk-provider}}
    model_info: {{input_cost_per_token: 0.01, output_cost_per_token: 0.02}}
general_settings:
  master_key: {MASTER}
  database_url: "{database_url}"
"#
    )
}

/// The stored spend of `key`, or None while the database cannot say.
pub async fn stored_spend(gateway: &Gateway, key: &str) -> Option<f64> {
    let (status, info) = admin_get(gateway, &format!("/key/info?key={key}")).await;
    (status == 200).then(|| info["info"]["spend"].as_f64())?
}

/// The overall readiness and the database's part of it, e.g. `degraded/disconnected`.
async fn db_status(gateway: &Gateway) -> (String, Value) {
    let (_, ready) = admin_get(gateway, "/health/readiness").await;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        format!(
            "{}/{}",
            text(&ready["status"]),
            text(&ready["database"]["status"])
        ),
        ready["database"]["spend"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_stopped_and_started_under_load() {
    let mock = vaultgate_mock_upstream::MockUpstream::start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = OwnCluster::start().unwrap();
    let gateway = Gateway::builder(BIN, &config(&mock.url(), &cluster.url()))
        .dir(dir.path())
        .start()
        .unwrap();
    let (status, body) = admin(&gateway, "/key/generate", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let key = body["key"].as_str().unwrap().to_owned();
    let load = Load::chat(&gateway.url, &key, "gpt-a", 4);
    load.flowing(50).await;

    cluster.stop().unwrap();
    eventually("readiness saying the database is down", async || {
        db_status(&gateway).await.0 == "degraded/disconnected"
    })
    .await;
    // Management needs the database: a quick 503 in OpenAI's shape that says so.
    for (path, body) in [
        ("/key/generate", json!({})),
        ("/key/update", json!({"key": key, "metadata": {"a": 1}})),
    ] {
        let (status, answer) = admin(&gateway, path, body).await;
        assert_eq!(status, 503, "{path}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("database"), "{path}: {answer}");
    }
    load.flowing(100).await;
    eventually("readiness showing the spend kept in memory", async || {
        db_status(&gateway).await.1["unsaved_usd"].as_f64() > Some(0.0)
    })
    .await;

    cluster.resume().unwrap();
    until("readiness healthy with the database back", async || {
        let (status, spend) = db_status(&gateway).await;
        // The load goes on: the last second's spend is always waiting for the next write.
        if status == "healthy/connected" && spend["failing_since"].is_null() {
            Ok(())
        } else {
            Err(format!("{status} {spend}"))
        }
    })
    .await;
    load.flowing(50).await;
    let (status, body) = admin(&gateway, "/key/generate", json!({})).await;
    assert_eq!(
        status, 200,
        "key management after the database came back: {body}"
    );

    let outcomes = load.stop().await;
    assert_all_answered(&outcomes, "while PostgreSQL was down");
    let expected = outcomes.len() as f64 * COST;
    until(
        "every request's spend in the database",
        async || match stored_spend(&gateway, &key).await {
            Some(spend) if (spend - expected).abs() < 1e-6 => Ok(()),
            spend => Err(format!("{spend:?} stored, {expected} expected")),
        },
    )
    .await;
    eprintln!(
        "postgres chaos: {} model requests, all answered and charged",
        outcomes.len()
    );
}
