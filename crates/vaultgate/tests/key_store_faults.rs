//! The key database failing under the real binary: SQLite writes failing (the gateway's
//! file-size limit lowered with `prlimit`, so every write past 4 KiB fails like on a full disk;
//! this binds root too, where a read-only `chmod` would not), and a PostgreSQL cluster of the
//! test's own stopped and started again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;
use vaultgate_testkit::postgres::OwnCluster;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-store-faults-2b7c";
/// What one chat answer of the mock costs with the config's prices.
const COST: f64 = 0.19;

fn config(upstream: &str, database_url: &str) -> String {
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

fn gateway(mock: &MockUpstream, database_url: &str, dir: &std::path::Path) -> Gateway {
    Gateway::builder(BIN, &config(&mock.url(), database_url))
        .dir(dir)
        .start()
        .unwrap()
}

async fn call(gateway: &Gateway, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", gateway.url);
    let request = match method {
        "GET" => client.get(url),
        _ => client.post(url).json(&body),
    };
    let response = request.bearer_auth(key).send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn chat(gateway: &Gateway, key: &str) -> u16 {
    let body = json!({"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]});
    call(gateway, "POST", "/v1/chat/completions", key, body)
        .await
        .0
}

async fn readiness(gateway: &Gateway) -> Value {
    call(gateway, "GET", "/health/readiness", MASTER, Value::Null)
        .await
        .1
}

/// Sets the soft file-size limit of a running process (`None`: unlimited).
fn file_size_limit(pid: u32, bytes: Option<u64>) {
    let soft = bytes.map_or_else(|| "unlimited".to_owned(), |b| b.to_string());
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--fsize={soft}:unlimited"),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "prlimit failed");
}

/// Polls readiness until `done` holds (at most 20 s); returns the last answer.
async fn readiness_until(gateway: &Gateway, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = readiness(gateway).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("readiness never got there: {last}");
}

fn unsaved(ready: &Value) -> f64 {
    ready["database"]["spend"]["unsaved_usd"]
        .as_f64()
        .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn spend_survives_failing_sqlite_writes_and_no_key_is_answered_without_being_stored() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/keys.db", dir.path().display());
    let gw = gateway(&mock, &url, dir.path());
    let (status, key) = call(&gw, "POST", "/key/generate", MASTER, json!({})).await;
    assert_eq!(status, 200, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        assert_eq!(chat(&gw, &key).await, 200);
    }
    // Two ticks of the writer (every second): written, and the backlog published as empty.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(unsaved(&readiness(&gw).await), 0.0);

    // Every write fails now: requests go on, spend waits in memory, readiness says so, and a
    // key that cannot be stored is not answered 200.
    file_size_limit(gw.pid(), Some(4096));
    for _ in 0..5 {
        assert_eq!(chat(&gw, &key).await, 200);
    }
    let (status, body) = call(&gw, "POST", "/key/generate", MASTER, json!({})).await;
    assert_eq!(status, 503, "a key that was not stored: {body}");
    // The writer may have tried a first part of the five before the rest came in.
    let failing = readiness_until(&gw, |r| {
        r["database"]["spend"]["failing_since"].is_string()
            && (unsaved(r) - 5.0 * COST).abs() < 1e-9
    })
    .await;
    assert_eq!(failing["status"], "degraded", "{failing}");
    assert!((unsaved(&failing) - 5.0 * COST).abs() < 1e-9, "{failing}");

    // Writes work again: the spend kept in memory reaches the store, management works.
    file_size_limit(gw.pid(), None);
    for _ in 0..5 {
        assert_eq!(chat(&gw, &key).await, 200);
    }
    let ready = readiness_until(&gw, |r| {
        unsaved(r) == 0.0 && r["database"]["spend"]["failing_since"].is_null()
    })
    .await;
    assert_eq!(ready["status"], "healthy", "{ready}");
    let (status, body) = call(&gw, "POST", "/key/generate", MASTER, json!({})).await;
    assert_eq!(status, 200, "{body}");

    // Nothing recorded was lost: a clean restart finds all 15 requests' spend.
    assert!(gw.stop().is_some_and(|status| status.success()));
    let gw = gateway(&mock, &url, dir.path());
    let spend = |info: &Value| info["info"]["spend"].as_f64().unwrap();
    let (_, info) = call(
        &gw,
        "GET",
        &format!("/key/info?key={key}"),
        MASTER,
        Value::Null,
    )
    .await;
    assert!((spend(&info) - 15.0 * COST).abs() < 1e-9, "{info}");
    let (_, listed) = call(&gw, "GET", "/key/list", MASTER, Value::Null).await;
    assert_eq!(
        listed["total_count"], 2,
        "the key answered 503 was stored: {listed}"
    );

    // Shutdown while writes fail is bounded: the gateway exits, saying what it could not write.
    assert_eq!(chat(&gw, &key).await, 200);
    file_size_limit(gw.pid(), Some(4096));
    assert_eq!(chat(&gw, &key).await, 200);
    let started = Instant::now();
    let logs = gw.logs();
    let exit = gw
        .stop()
        .expect("shutdown did not finish while the database failed");
    assert!(exit.success(), "{exit}");
    assert!(started.elapsed() < Duration::from_secs(25), "{logs}");
    let gw = gateway(&mock, &url, dir.path());
    let (_, info) = call(
        &gw,
        "GET",
        &format!("/key/info?key={key}"),
        MASTER,
        Value::Null,
    )
    .await;
    assert!(
        [15.0, 16.0, 17.0]
            .iter()
            .any(|n| (spend(&info) - n * COST).abs() < 1e-9),
        "{info}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_down_fails_fast_while_cached_keys_keep_serving() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = OwnCluster::start().unwrap();
    let gw = gateway(&mock, &cluster.url(), dir.path());
    let (status, key) = call(&gw, "POST", "/key/generate", MASTER, json!({})).await;
    assert_eq!(status, 200, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    assert_eq!(chat(&gw, &key).await, 200);

    cluster.stop().unwrap();
    for _ in 0..20 {
        assert_eq!(chat(&gw, &key).await, 200, "a cached key stopped working");
    }
    // What needs the database answers 503 soon, naming the database; not after 30 s.
    for path in ["/key/generate", "/v1/chat/completions"] {
        for attempt in 0..3 {
            let started = Instant::now();
            let (status, body) = if path == "/key/generate" {
                call(&gw, "POST", path, MASTER, json!({})).await
            } else {
                let unknown = format!("sk-not-cached-{attempt}-{}", uuid_like());
                let chat =
                    json!({"model": "gpt-a", "messages": [{"role": "user", "content": "x"}]});
                call(&gw, "POST", path, &unknown, chat).await
            };
            assert_eq!(status, 503, "{path}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("database"), "{path}: {body}");
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{path} waited {:?}",
                started.elapsed()
            );
        }
    }

    cluster.resume().unwrap();
    let mut generated = false;
    for _ in 0..100 {
        if call(&gw, "POST", "/key/generate", MASTER, json!({}))
            .await
            .0
            == 200
        {
            generated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(generated, "key management did not recover\n{}", gw.logs());
    assert_eq!(chat(&gw, &key).await, 200);
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
