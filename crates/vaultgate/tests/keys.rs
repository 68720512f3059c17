//! Virtual keys end to end: the real binary, a real OpenBao holding the mirrored keys, SQLite and
//! the local PostgreSQL, and enforcement on the model routes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{Value, json};
use vaultgate_testkit::postgres::PgSchema;
use vaultgate_testkit::{Gateway, python};

mod common;

use common::{BIN, Env, MASTER, PROVIDER_KEY, admin, admin_get, config};

async fn chat_as(gateway: &Gateway, key: &str, model: &str) -> reqwest::Response {
    chat_at(&gateway.url, key, model).await
}

async fn chat_at(url: &str, key: &str, model: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

async fn status_as(gateway: &Gateway, key: &str, model: &str) -> u16 {
    chat_as(gateway, key, model).await.status().as_u16()
}

/// [`status_as`] in a task of its own, for requests in flight together.
fn spawn_status(gateway: &Gateway, key: &str, model: &'static str) -> tokio::task::JoinHandle<u16> {
    let (url, key) = (gateway.url.clone(), key.to_owned());
    tokio::spawn(async move { chat_at(&url, &key, model).await.status().as_u16() })
}

async fn lifecycle(database_url: &str, env: &Env) {
    let gateway = env.gateway(database_url);

    // generate: the raw key once, its copy in Vault, usable on its models only.
    let (status, generated) = admin(
        &gateway,
        "/key/generate",
        json!({"key_alias": "team-a", "models": ["gpt-a"]}),
    )
    .await;
    assert_eq!(status, 200, "{generated}");
    let key = generated["key"].as_str().unwrap().to_owned();
    assert_eq!(env.vault_copy("team-a").as_deref(), Some(key.as_str()));
    let metadata = env
        .bao
        .bao_json(&[
            "kv",
            "metadata",
            "get",
            "-format=json",
            "-mount=secret",
            "litellm/team-a",
        ])
        .unwrap();
    assert_eq!(
        metadata
            .pointer("/data/custom_metadata/key_alias")
            .and_then(Value::as_str),
        Some("team-a")
    );
    assert_eq!(status_as(&gateway, &key, "gpt-a").await, 200);
    assert_eq!(
        env.mock.last_request().unwrap().header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    let denied = chat_as(&gateway, &key, "gpt-b").await;
    assert_eq!(denied.status(), 401);
    let message = denied.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("gpt-b"), "{message}");

    // /v1/models lists only the key's models.
    let models: Value = reqwest::Client::new()
        .get(format!("{}/v1/models", gateway.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 1);
    assert_eq!(models["data"][0]["id"], "gpt-a");

    // A key without alias is mirrored as virtual-key-<sha256>.
    let (_, plain) = admin(&gateway, "/key/generate", json!({})).await;
    let plain_key = plain["key"].as_str().unwrap().to_owned();
    let plain_name = format!("virtual-key-{}", plain["token"].as_str().unwrap());
    assert_eq!(
        env.vault_copy(&plain_name).as_deref(),
        Some(plain_key.as_str())
    );

    // info and list never show raw keys.
    let (status, info) = admin_get(&gateway, &format!("/key/info?key={key}")).await;
    assert_eq!(status, 200);
    assert_eq!(info["info"]["key_alias"], "team-a");
    let (_, listed) = admin_get(&gateway, "/key/list?return_full_object=true").await;
    assert_eq!(listed["total_count"], 2);
    assert!(!listed.to_string().contains(&key) && !info.to_string().contains(&key));

    // update renaming the alias moves the copy.
    let (status, _) = admin(
        &gateway,
        "/key/update",
        json!({"key": key, "key_alias": "team-a-renamed", "models": ["gpt-a", "gpt-b"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        env.vault_copy("team-a-renamed").as_deref(),
        Some(key.as_str())
    );
    assert_eq!(env.vault_copy("team-a"), None);
    assert_eq!(status_as(&gateway, &key, "gpt-b").await, 200);

    // regenerate: new value in Vault, the old key stops working.
    let (status, regenerated) = admin(&gateway, &format!("/key/{key}/regenerate"), json!({})).await;
    assert_eq!(status, 200, "{regenerated}");
    let new_key = regenerated["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(
        env.vault_copy("team-a-renamed").as_deref(),
        Some(new_key.as_str())
    );
    assert_eq!(status_as(&gateway, &key, "gpt-a").await, 401);
    assert_eq!(status_as(&gateway, &new_key, "gpt-a").await, 200);

    // block / unblock act at once.
    assert_eq!(
        admin(&gateway, "/key/block", json!({"key": new_key}))
            .await
            .0,
        200
    );
    assert_eq!(status_as(&gateway, &new_key, "gpt-a").await, 401);
    assert_eq!(
        admin(&gateway, "/key/unblock", json!({"key": new_key}))
            .await
            .0,
        200
    );
    assert_eq!(status_as(&gateway, &new_key, "gpt-a").await, 200);

    // delete (by alias and by raw key): revoked at once, no orphan left in Vault.
    let (status, deleted) = admin(
        &gateway,
        "/key/delete",
        json!({"key_aliases": ["team-a-renamed"]}),
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(status_as(&gateway, &new_key, "gpt-a").await, 401);
    assert_eq!(env.vault_copy("team-a-renamed"), None);
    assert_eq!(
        admin(&gateway, "/key/delete", json!({"keys": [plain_key]}))
            .await
            .0,
        200
    );
    assert_eq!(env.vault_copy(&plain_name), None);
    assert_eq!(status_as(&gateway, &plain_key, "gpt-a").await, 401);

    // A virtual key cannot manage keys.
    let (_, other) = admin(&gateway, "/key/generate", json!({})).await;
    let response = reqwest::Client::new()
        .post(format!("{}/key/generate", gateway.url))
        .bearer_auth(other["key"].as_str().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn key_lifecycle_mirrored_in_openbao_on_sqlite() {
    let env = Env::new().await;
    lifecycle(&env.sqlite_url(), &env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_lifecycle_mirrored_in_openbao_on_postgres() {
    let env = Env::new().await;
    let schema = PgSchema::create().unwrap();
    lifecycle(&schema.url, &env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_down_during_generate_creates_nothing() {
    let mut env = Env::new().await;
    let gateway = env.gateway(&env.sqlite_url());
    env.bao.stop().unwrap();
    let (status, body) = admin(&gateway, "/key/generate", json!({"key_alias": "never"})).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("vault"),
        "{body}"
    );
    let (_, listed) = admin_get(&gateway, "/key/list").await;
    assert_eq!(listed["total_count"], 0, "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_sealed_during_delete_revokes_at_once_and_deletes_later_even_after_restart() {
    let mut env = Env::new().await;
    let gateway = env.gateway(&env.sqlite_url());
    let (_, first) = admin(&gateway, "/key/generate", json!({"key_alias": "first"})).await;
    let (_, second) = admin(&gateway, "/key/generate", json!({"key_alias": "second"})).await;
    let first_key = first["key"].as_str().unwrap().to_owned();
    let second_key = second["key"].as_str().unwrap().to_owned();

    env.bao.seal().unwrap();
    let (status, body) = admin(&gateway, "/key/delete", json!({"keys": [first_key]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(status_as(&gateway, &first_key, "gpt-a").await, 401);

    // Vault comes back: the outbox deletes the copy without anybody asking.
    env.bao.unseal().unwrap();
    let mut gone = false;
    for _ in 0..150 {
        if env.vault_copy("first").is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the Vault copy of a deleted key was left behind");

    // Again, with the gateway restarted while Vault is still sealed.
    env.bao.seal().unwrap();
    assert_eq!(
        admin(&gateway, "/key/delete", json!({"keys": [second_key]}))
            .await
            .0,
        200
    );
    assert!(gateway.stop().is_some());
    env.bao.unseal().unwrap();
    assert_eq!(
        env.vault_copy("second").as_deref(),
        Some(second_key.as_str())
    );
    let restarted = env.gateway(&env.sqlite_url());
    for _ in 0..150 {
        if env.vault_copy("second").is_none() {
            assert_eq!(status_as(&restarted, &second_key, "gpt-a").await, 401);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the outbox did not finish the deletion after a restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_budgets_and_spend_are_enforced_on_model_routes() {
    let env = Env::new().await;
    let gateway = env.gateway(&env.sqlite_url());

    // rpm_limit
    let (_, limited) = admin(&gateway, "/key/generate", json!({"rpm_limit": 2})).await;
    let limited = limited["key"].as_str().unwrap().to_owned();
    assert_eq!(status_as(&gateway, &limited, "gpt-b").await, 200);
    assert_eq!(status_as(&gateway, &limited, "gpt-b").await, 200);
    let refused = chat_as(&gateway, &limited, "gpt-b").await;
    assert_eq!(refused.status(), 429);
    assert!(
        refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );

    // max_parallel_requests: a slow upstream holds the only slot.
    let (_, single) = admin(
        &gateway,
        "/key/generate",
        json!({"max_parallel_requests": 1}),
    )
    .await;
    let single = single["key"].as_str().unwrap().to_owned();
    env.mock.push(vaultgate_mock_upstream::Script {
        delay: Duration::from_millis(3000),
        ..Default::default()
    });
    let slow = spawn_status(&gateway, &single, "gpt-b");
    let mut saw_429 = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        if env.mock.requests().len() >= 3 {
            saw_429 = status_as(&gateway, &single, "gpt-b").await == 429;
            break;
        }
    }
    assert!(saw_429, "a second parallel request was admitted");
    assert_eq!(slow.await.unwrap(), 200);
    assert_eq!(status_as(&gateway, &single, "gpt-b").await, 200);

    // max_budget: gpt-a costs 5*0.01 + 7*0.02 = 0.19 per mock answer.
    let (_, budget) = admin(&gateway, "/key/generate", json!({"max_budget": 0.3})).await;
    let budget = budget["key"].as_str().unwrap().to_owned();
    assert_eq!(status_as(&gateway, &budget, "gpt-a").await, 200);
    assert_eq!(status_as(&gateway, &budget, "gpt-a").await, 200);
    let over = chat_as(&gateway, &budget, "gpt-a").await;
    assert_eq!(over.status(), 400);
    let body: Value = over.json().await.unwrap();
    assert_eq!(body["error"]["type"], "budget_exceeded", "{body}");

    // Streaming spend is recorded though the client did not ask for usage.
    let (_, streamer) = admin(&gateway, "/key/generate", json!({})).await;
    let streamer_key = streamer["key"].as_str().unwrap().to_owned();
    let text = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(&streamer_key)
        .json(&json!({"model": "gpt-a", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("\"usage\""), "{text}");
    let mut spend = 0.0;
    for _ in 0..50 {
        let (_, info) = admin_get(&gateway, &format!("/key/info?key={streamer_key}")).await;
        spend = info["info"]["spend"].as_f64().unwrap_or(0.0);
        if spend > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!((spend - 0.19).abs() < 1e-9, "streamed spend {spend}");

    // Expired keys are refused.
    let (_, short) = admin(&gateway, "/key/generate", json!({"duration": "1s"})).await;
    let short = short["key"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(status_as(&gateway, &short, "gpt-a").await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_cannot_overspend_by_more_than_one_request() {
    let env = Env::new().await;
    let gateway = env.gateway(&env.sqlite_url());
    let (_, generated) = admin(&gateway, "/key/generate", json!({"max_budget": 1.0})).await;
    let key = generated["key"].as_str().unwrap().to_owned();
    // Waves of concurrent requests until the budget says no; 429s (requests held back while
    // the budget is nearly spent) are simply sent again in the next wave.
    let mut ok = 0;
    let mut exhausted = false;
    for _ in 0..30 {
        let wave: Vec<_> = (0..8)
            .map(|_| spawn_status(&gateway, &key, "gpt-a"))
            .collect();
        for task in wave {
            match task.await.unwrap() {
                200 => ok += 1,
                400 => exhausted = true,
                429 => {}
                other => panic!("unexpected status {other}"),
            }
        }
        if exhausted {
            break;
        }
    }
    assert!(exhausted, "the budget never ran out");
    // Each answer costs 0.19: at most ceil(1.0 / 0.19) = 6 may succeed (one request past budget).
    assert!(ok <= 6, "{ok} requests succeeded on a budget for 5.3");
    assert!(ok >= 5, "only {ok} requests succeeded; the budget allows 5");
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_with_a_virtual_key() {
    let env = Env::new().await;
    let gateway = env.gateway(&env.sqlite_url());
    let (_, generated) = admin(&gateway, "/key/generate", json!({"models": ["gpt-a"]})).await;
    let key = generated["key"].as_str().unwrap().to_owned();
    let url = gateway.url.clone();
    let sdk_key = key.clone();
    let output = tokio::task::spawn_blocking(move || {
        python()
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/sdk/openai_sdk_check.py"
            ))
            .env("GATEWAY_URL", url)
            .env("GATEWAY_KEY", sdk_key)
            .env("MODEL", "gpt-a")
            .env("DENIED_MODEL", "gpt-b")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // chat + stream + embeddings were paid for (the stream's usage included).
    let mut spend = 0.0;
    for _ in 0..50 {
        let (_, info) = admin_get(&gateway, &format!("/key/info?key={key}")).await;
        spend = info["info"]["spend"].as_f64().unwrap_or(0.0);
        if spend >= 0.19 * 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(spend >= 0.19 * 2.0 - 1e-9, "spend {spend}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_drift_between_the_database_and_vault() {
    let env = Env::new().await;
    let gateway = env.gateway(&env.sqlite_url());
    let (_, kept) = admin(&gateway, "/key/generate", json!({"key_alias": "kept"})).await;
    admin(&gateway, "/key/generate", json!({"key_alias": "drifty"})).await;
    drop(gateway);
    let check = || {
        Gateway::builder(BIN, &config(&env.mock.url(), &env.sqlite_url()))
            .env("HCP_VAULT_ADDR", &env.bao.addr())
            .env("HCP_VAULT_TOKEN", env.bao.root_token())
            .env("E2E_PROVIDER_KEY", PROVIDER_KEY)
            .run(&["check"])
            .unwrap()
    };
    let clean = check();
    let stdout = String::from_utf8_lossy(&clean.stdout).into_owned();
    assert!(clean.status.success(), "{stdout}");
    assert!(stdout.contains("in sync with Vault"), "{stdout}");

    env.bao
        .bao(&[
            "kv",
            "metadata",
            "delete",
            "-mount=secret",
            "litellm/drifty",
        ])
        .unwrap();
    env.bao
        .kv_put(None, "secret", "litellm/orphan", "sk-nobody")
        .unwrap();
    let drifted = check();
    let stdout = String::from_utf8_lossy(&drifted.stdout).into_owned();
    assert!(!drifted.status.success(), "{stdout}");
    assert!(
        stdout.contains("drifty") && stdout.contains("orphan") && stdout.contains("DRIFT"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(kept["key"].as_str().unwrap()) && !stdout.contains("sk-nobody"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn virtual_keys_never_appear_in_trace_logs() {
    let env = Env::new().await;
    let gateway = Gateway::builder(BIN, &config(&env.mock.url(), &env.sqlite_url()))
        .env("HCP_VAULT_ADDR", &env.bao.addr())
        .env("HCP_VAULT_TOKEN", env.bao.root_token())
        .env("E2E_PROVIDER_KEY", PROVIDER_KEY)
        .dir(env.dir.path())
        .rust_log("trace")
        .start()
        .unwrap();
    let (_, generated) = admin(&gateway, "/key/generate", json!({"key_alias": "traced"})).await;
    let key = generated["key"].as_str().unwrap().to_owned();
    assert_eq!(status_as(&gateway, &key, "gpt-a").await, 200);
    let (_, regenerated) = admin(&gateway, "/key/regenerate", json!({"key": key})).await;
    let new_key = regenerated["key"].as_str().unwrap().to_owned();
    admin(&gateway, "/key/delete", json!({"keys": [new_key]})).await;
    let logs = gateway.logs();
    assert!(logs.contains("TRACE"), "trace logging was not on");
    for secret in [key.as_str(), new_key.as_str(), MASTER, PROVIDER_KEY] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spend_recorded_just_before_a_graceful_shutdown_is_not_lost() {
    let env = Env::new().await;
    let gateway = env.gateway(&env.sqlite_url());
    let (_, generated) = admin(&gateway, "/key/generate", json!({"key_alias": "spender"})).await;
    let key = generated["key"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(status_as(&gateway, &key, "gpt-a").await, 200);
    }
    let status = gateway.stop().expect("the gateway did not stop on SIGTERM");
    assert!(status.success(), "{status}");
    let restarted = env.gateway(&env.sqlite_url());
    let (_, info) = admin_get(&restarted, &format!("/key/info?key={key}")).await;
    let spend = info["info"]["spend"].as_f64().unwrap();
    assert!(
        (spend - 3.0 * 0.19).abs() < 1e-9,
        "spend after restart: {spend}"
    );
}
