//! Two real gateway processes on one PostgreSQL database of the test's own, requests alternating
//! between them: a key deleted, blocked or changed on one is refused by the other at once (its
//! cache would trust the key for a minute), spend from both adds up exactly, a budget spent on one
//! is seen by the other, one instance runs the background jobs, and when it is killed with -9 the
//! other takes them over.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;
use vaultgate_testkit::postgres::PgDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-replicas-7d2e";
/// What one chat answer of the mock costs with the config's prices.
const COST: f64 = 0.19;
/// Longest wait for what the other instance did (the tests never assert on timing).
const PATIENCE: Duration = Duration::from_secs(10);

fn config(upstream: &str, database_url: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-a-upstream, api_base: '{upstream}/v1', api_key: sk-provider}}
    model_info: {{input_cost_per_token: 0.01, output_cost_per_token: 0.02}}
  - model_name: gpt-b
    litellm_params: {{model: openai/gpt-b-upstream, api_base: '{upstream}/v1', api_key: sk-provider}}
    model_info: {{input_cost_per_token: 0.01, output_cost_per_token: 0.02}}
general_settings:
  master_key: {MASTER}
  database_url: "{database_url}"
  database_connection_pool_limit: 4
  proxy_budget_rescheduler_min_time: 1
  proxy_budget_rescheduler_max_time: 1
"#
    )
}

struct Pair {
    a: Gateway,
    b: Gateway,
    _db: PgDatabase,
    _mock: MockUpstream,
}

async fn pair() -> Pair {
    let mock = MockUpstream::start().await.unwrap();
    let db = PgDatabase::create().unwrap();
    let text = config(&mock.url(), &db.url);
    let a = Gateway::builder(BIN, &text).start().unwrap();
    let b = Gateway::builder(BIN, &text).start().unwrap();
    for gateway in [&a, &b] {
        eventually("listening to the other instance", async || {
            readiness(gateway).await["database"]["cluster"]["listening"] == true
        })
        .await;
    }
    Pair {
        a,
        b,
        _db: db,
        _mock: mock,
    }
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "not seen within {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn call(gateway: &Gateway, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", gateway.url);
    let request = match method {
        "GET" => client.get(url),
        _ => client.post(url).json(&body),
    };
    let response = request.bearer_auth(key).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn admin(gateway: &Gateway, path: &str, body: Value) -> Value {
    let (status, body) = call(gateway, "POST", path, MASTER, body).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn chat(gateway: &Gateway, key: &str, model: &str) -> u16 {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    call(gateway, "POST", "/v1/chat/completions", key, body)
        .await
        .0
}

async fn readiness(gateway: &Gateway) -> Value {
    call(gateway, "GET", "/health/readiness", MASTER, Value::Null)
        .await
        .1
}

async fn spend(gateway: &Gateway, key: &str) -> f64 {
    let (status, info) = call(
        gateway,
        "GET",
        &format!("/key/info?key={key}"),
        MASTER,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{info}");
    info["info"]["spend"].as_f64().unwrap()
}

/// A sample of the Prometheus text, e.g. `vaultgate_background_jobs_leader` (0 when absent).
async fn metric(gateway: &Gateway, sample: &str) -> f64 {
    let (_, body) = call(gateway, "GET", "/metrics", MASTER, Value::Null).await;
    let text = body.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_on_one_instance_is_refused_by_the_other_at_once() {
    let Pair { a, b, _db, _mock } = pair().await;
    let key = admin(&a, "/key/generate", json!({"models": ["gpt-a"]})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Cached on B from here on (for a minute, unless told otherwise).
    assert_eq!(chat(&b, &key, "gpt-a").await, 200);
    assert_eq!(chat(&a, &key, "gpt-a").await, 200);

    admin(&a, "/key/block", json!({"key": key})).await;
    eventually("blocked on B", async || {
        chat(&b, &key, "gpt-a").await == 401
    })
    .await;
    admin(&a, "/key/unblock", json!({"key": key})).await;
    eventually("unblocked on B", async || {
        chat(&b, &key, "gpt-a").await == 200
    })
    .await;

    admin(&a, "/key/update", json!({"key": key, "models": ["gpt-b"]})).await;
    eventually("models changed on B", async || {
        chat(&b, &key, "gpt-a").await != 200 && chat(&b, &key, "gpt-b").await == 200
    })
    .await;

    let regenerated = admin(&a, &format!("/key/{key}/regenerate"), json!({})).await;
    let new_key = regenerated["key"].as_str().unwrap().to_owned();
    eventually("regenerated on B", async || {
        chat(&b, &key, "gpt-b").await == 401 && chat(&b, &new_key, "gpt-b").await == 200
    })
    .await;

    admin(&b, "/key/delete", json!({"keys": [new_key]})).await;
    eventually("deleted on A", async || {
        chat(&a, &new_key, "gpt-b").await == 401
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spend_of_both_instances_adds_up_and_a_budget_spent_on_one_holds_on_the_other() {
    let Pair { a, b, _db, _mock } = pair().await;
    let key = admin(&a, "/key/generate", json!({})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Alternating, and in parallel on both.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let url = if i % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]});
            reqwest::Client::new()
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let expected = 40.0 * COST;
    eventually("the spend of both in the database", async || {
        (spend(&a, &key).await - expected).abs() < 1e-9
            && (spend(&b, &key).await - expected).abs() < 1e-9
    })
    .await;

    // A budget spent through A: B (which knows the key already) refuses it too.
    let budgeted = admin(&a, "/key/generate", json!({"max_budget": 0.5})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(chat(&b, &budgeted, "gpt-a").await, 200);
    let mut on_a = 0;
    while chat(&a, &budgeted, "gpt-a").await == 200 {
        on_a += 1;
        assert!(on_a < 10, "A never refused the spent budget");
    }
    eventually("the budget spent on A refused by B", async || {
        chat(&b, &budgeted, "gpt-a").await == 400
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_instance_runs_the_jobs_and_the_other_takes_over_when_it_is_killed() {
    let Pair { a, b, _db, _mock } = pair().await;
    const LEADER: &str = "vaultgate_background_jobs_leader";
    const RUNS: &str = r#"vaultgate_background_job_runs_total{job="budget_reset"}"#;
    eventually("a leader", async || {
        metric(&a, LEADER).await + metric(&b, LEADER).await == 1.0
    })
    .await;
    let a_leads = metric(&a, LEADER).await == 1.0;
    let (leader, follower) = if a_leads { (a, b) } else { (b, a) };
    eventually("budget-reset passes on the leader", async || {
        metric(&leader, RUNS).await >= 2.0
    })
    .await;
    assert_eq!(
        metric(&follower, RUNS).await,
        0.0,
        "the follower ran the job too"
    );
    assert_eq!(metric(&follower, LEADER).await, 0.0);

    // A budget period that ends after the leader is gone: the survivor resets it.
    let key = admin(
        &follower,
        "/key/generate",
        json!({"max_budget": 100, "budget_duration": "3s"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(chat(&follower, &key, "gpt-a").await, 200);
    eventually("the spend written", async || {
        spend(&follower, &key).await > 0.0
    })
    .await;

    drop(leader); // SIGKILL: no goodbye, the lock goes with its connection
    eventually("the follower takes over", async || {
        metric(&follower, LEADER).await == 1.0 && metric(&follower, RUNS).await >= 1.0
    })
    .await;
    eventually("the budget reset by the new leader", async || {
        spend(&follower, &key).await == 0.0
    })
    .await;
    assert!(readiness(&follower).await["database"]["cluster"]["runs_background_jobs"] == true);
}
