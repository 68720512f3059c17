//! Vault down at start: the gateway serves health, says "not ready" (why, to the master key),
//! answers model routes with a 503 in OpenAI's shape, retries, and serves once Vault is back.
//! `--require-vault-at-start` exits instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;
use vaultgate_testkit::openbao::OpenBao;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-vault-down-5e1a";
const PROVIDER_KEY: &str = "sk-provider-vault-down-93c2";

fn config(upstream: &str) -> String {
    format!(
        "model_list:\n  - model_name: m\n    litellm_params: {{model: openai/m, api_base: '{upstream}/v1', api_key: os.environ/OPENAI_API_KEY}}\ngeneral_settings:\n  master_key: {MASTER}\n  key_management_system: hashicorp_vault\n"
    )
}

async fn get(url: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn chat(gateway: &Gateway) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(MASTER)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_waits_for_vault_and_serves_once_it_is_back() {
    let mock = MockUpstream::start().await.unwrap();
    let mut bao = OpenBao::start().unwrap();
    bao.stop().unwrap();
    let gateway = Gateway::builder(BIN, &config(&mock.url()))
        .env("HCP_VAULT_ADDR", &bao.addr())
        .env("HCP_VAULT_TOKEN", bao.root_token())
        .env("HCP_VAULT_MAX_RETRIES", "0")
        .start()
        .unwrap();
    let url = |path: &str| format!("{}{path}", gateway.url);

    assert_eq!(get(&url("/health/liveliness"), None).await.0, 200);
    let (status, public) = get(&url("/health/readiness"), None).await;
    assert_eq!((status, &public), (503, &json!({"status": "not ready"})));
    let (_, details) = get(&url("/health/readiness"), Some(MASTER)).await;
    let error = details["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("Vault unreachable"), "{details}");

    let response = chat(&gateway).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "service_unavailable", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("Vault"));
    assert!(mock.requests().is_empty());

    bao.restart().unwrap();
    bao.kv_put(None, "secret", "OPENAI_API_KEY", PROVIDER_KEY)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&url("/health/readiness"), None).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "never ready:\n{}",
            gateway.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = chat(&gateway).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        mock.last_request().unwrap().header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    let logs = gateway.logs();
    assert!(
        logs.contains("NOT READY") && logs.contains("ready, serving model requests"),
        "{logs}"
    );
    assert!(!logs.contains(PROVIDER_KEY) && !logs.contains(MASTER));
    assert!(gateway.stop().is_some_and(|status| status.success()));
}

#[test]
fn require_vault_at_start_exits_when_vault_is_down() {
    let mut bao = OpenBao::start().unwrap();
    bao.stop().unwrap();
    let output = Gateway::builder(BIN, &config("http://127.0.0.1:9"))
        .env("HCP_VAULT_ADDR", &bao.addr())
        .env("HCP_VAULT_TOKEN", bao.root_token())
        .env("HCP_VAULT_MAX_RETRIES", "0")
        .run(&["--port", "0", "--require-vault-at-start"])
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("Vault unreachable"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_waiting_for_vault_stops_at_once() {
    let mut bao = OpenBao::start().unwrap();
    bao.stop().unwrap();
    let gateway = Gateway::builder(BIN, &config("http://127.0.0.1:9"))
        .env("HCP_VAULT_ADDR", &bao.addr())
        .env("HCP_VAULT_TOKEN", bao.root_token())
        .start()
        .unwrap();
    let started = Instant::now();
    assert!(gateway.stop().is_some_and(|status| status.success()));
    assert!(started.elapsed() < Duration::from_secs(10));
}
