//! Credentials leased from a real OpenBao secrets engine, end to end through the binary.
//! OpenBao's builtin RabbitMQ engine issues renewable leases on users it creates through
//! RabbitMQ's management API; the mock upstream plays that API and only lets LLM requests
//! through with the password of a user that exists now. So a request that succeeds used
//! credentials Vault issued and had not revoked, and the mock shows every user Vault revoked.
//! (This OpenBao build has no AWS, GCP or database engine: the same lease table serves them.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;
use vaultgate_testkit::openbao::OpenBao;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-leases-8c2f";

fn deployment(name: &str, id: &str, base: &str, key: &str) -> String {
    format!(
        "  - model_name: {name}\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {base}/v1\n      api_key: {key}\n    model_info:\n      id: {id}\n"
    )
}

fn start(bao: &OpenBao, models: &str, retries: u32) -> Gateway {
    let config = format!(
        "model_list:\n{models}router_settings:\n  num_retries: {retries}\ngeneral_settings:\n  master_key: os.environ/TEST_MASTER_KEY\n"
    );
    Gateway::builder(BIN, &config)
        .env("TEST_MASTER_KEY", MASTER)
        .env("HCP_VAULT_ADDR", &bao.addr())
        .env("HCP_VAULT_TOKEN", bao.root_token())
        .rust_log("info,vaultgate_secrets=debug")
        .start()
        .unwrap()
}

async fn chat(gateway: &Gateway, model: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(MASTER)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The operator's view of the one `vault://` path.
async fn leased_path(gateway: &Gateway) -> (Value, Value) {
    let readiness: Value = reqwest::Client::new()
        .get(format!("{}/health/readiness", gateway.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = readiness["vault"]["paths"][0].clone();
    (readiness, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_renewed_then_reissued_under_load_and_revoked_at_shutdown() {
    let bao = OpenBao::start().unwrap();
    let mock = MockUpstream::start().await.unwrap();
    mock.require_issued_credentials();
    // Renewed at ~2 s, 4 s, 6 s; at 8 s Vault can only give 1 s more (max 9 s): new ones.
    bao.enable_rabbitmq(&mock.url(), 3, 9).unwrap();
    let gateway = start(
        &bao,
        &deployment(
            "leased",
            "leased-one",
            &mock.url(),
            "vault://rabbitmq/creds/gateway#password",
        ),
        0,
    );
    assert_eq!(
        mock.rabbitmq_users().live.len(),
        1,
        "one user issued at start"
    );

    // Steady load across renewals and a re-issue: not one request may fail.
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut served = 0;
    while Instant::now() < deadline {
        let status = chat(&gateway, "leased").await;
        assert_eq!(status, 200, "request {served} failed\n{}", gateway.logs());
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (readiness, path) = leased_path(&gateway).await;
    assert_eq!(readiness["status"], "healthy", "{readiness}");
    assert_eq!(path["leased"], true);
    assert_eq!(path["deployments"], json!(["leased-one"]));
    assert!(path["renewals"].as_u64().unwrap() >= 3, "{path}");
    assert!(path["reissues"].as_u64().unwrap() >= 1, "{path}");
    let users = mock.rabbitmq_users();
    // The first credentials ended at their max TTL, a second after the new ones came in.
    assert_eq!(users.live.len(), 1, "{users:?}");
    assert_eq!(users.deleted.len(), 1, "{users:?}");
    let passwords: Vec<String> = users.live.values().cloned().collect();

    let logs = gateway.logs();
    for password in &passwords {
        assert!(
            !logs.contains(password.as_str()),
            "a credential reached the logs"
        );
    }

    // A graceful stop gives every lease back: Vault deletes every user it created.
    gateway.stop().expect("graceful exit");
    let users = mock.rabbitmq_users();
    assert!(users.live.is_empty(), "leases left behind: {users:?}");
    assert!(users.deleted.len() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_while_vault_is_sealed_fails_over_and_recovers() {
    let mut bao = OpenBao::start().unwrap();
    let leased = MockUpstream::start().await.unwrap();
    leased.require_issued_credentials();
    let other = MockUpstream::start().await.unwrap();
    // Not renewable past its first 3 s: new credentials are due at 2 s.
    bao.enable_rabbitmq(&leased.url(), 3, 3).unwrap();
    let models = deployment(
        "m",
        "leased-one",
        &leased.url(),
        "vault://rabbitmq/creds/gateway#password",
    ) + &deployment("m", "static-one", &other.url(), "sk-static-key");
    let gateway = start(&bao, &models, 2);
    for _ in 0..6 {
        assert_eq!(chat(&gateway, "m").await, 200);
    }

    // Vault goes away before new credentials can be issued; the lease runs out.
    bao.seal().unwrap();
    let expired = wait_for(Duration::from_secs(10), || async {
        let (_, path) = leased_path(&gateway).await;
        path["expired"] == true
    })
    .await;
    assert!(expired, "{}", gateway.logs());
    let (readiness, path) = leased_path(&gateway).await;
    assert_eq!(readiness["status"], "degraded");
    let error = path["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("leased-one"),
        "readiness names the deployment: {error}"
    );

    // Every request is served by the other deployment; the leased one is not even called.
    let before = leased.requests().len();
    for i in 0..10 {
        assert_eq!(
            chat(&gateway, "m").await,
            200,
            "request {i}\n{}",
            gateway.logs()
        );
    }
    assert_eq!(
        leased.requests().len(),
        before,
        "expired credentials were sent"
    );

    // Vault is back: new credentials are issued by themselves and the deployment serves again.
    bao.unseal().unwrap();
    let back = wait_for(Duration::from_secs(30), || async {
        let (_, path) = leased_path(&gateway).await;
        path["expired"] == false && path["last_error"].is_null()
    })
    .await;
    assert!(back, "{}", gateway.logs());
    let served_again = wait_for(Duration::from_secs(30), || async {
        chat(&gateway, "m").await;
        leased.requests().len() > before
    })
    .await;
    assert!(served_again, "{}", gateway.logs());
}

/// Polls `check` every 200 ms until it holds or `limit` passes.
async fn wait_for<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}
