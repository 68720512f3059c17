//! The gateway with its provider keys in a real OpenBao dev server: the seed's setup, rotation
//! without restart, the 401-triggered re-read, outages, and `vaultgate check`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;
use vaultgate_testkit::openbao::OpenBao;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-vault-test-77aa";

/// The seed's layout: namespace `admin`, KV v2 at `secret`.
fn seeded_openbao(provider_key: &str) -> OpenBao {
    let bao = OpenBao::start().unwrap();
    seed(&bao, provider_key);
    bao
}

fn seed(bao: &OpenBao, provider_key: &str) {
    bao.create_namespace("admin").unwrap();
    bao.enable_kv2(Some("admin"), "secret").unwrap();
    bao.kv_put(Some("admin"), "secret", "OPENAI_API_KEY", provider_key)
        .unwrap();
    bao.kv_put(Some("admin"), "secret", "LITELLM_MASTER_KEY", MASTER)
        .unwrap();
}

fn config(upstream: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-vault
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream}/v1
      api_key: os.environ/OPENAI_API_KEY
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  key_management_system: hashicorp_vault
"#
    )
}

fn gateway(bao: &OpenBao, config: &str, refresh_seconds: &str) -> Gateway {
    Gateway::builder(BIN, config)
        .env("HCP_VAULT_ADDR", &bao.addr())
        .env("HCP_VAULT_TOKEN", bao.root_token())
        .env("HCP_VAULT_NAMESPACE", "admin")
        .env("HCP_VAULT_REFRESH_INTERVAL", refresh_seconds)
        .rust_log("debug")
        .start()
        .unwrap()
}

async fn chat(gateway: &Gateway) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(MASTER)
        .json(&json!({"model": "gpt-vault", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

async fn readiness(gateway: &Gateway) -> Value {
    reqwest::Client::new()
        .get(format!("{}/health/readiness", gateway.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_key_and_master_key_come_from_vault_and_rotate_without_restart() {
    let bao = seeded_openbao("sk-from-vault-v1");
    let mock = MockUpstream::start().await.unwrap();
    let gateway = gateway(&bao, &config(&mock.url()), "1");

    assert_eq!(chat(&gateway).await.status(), 200);
    assert_eq!(
        mock.last_request().unwrap().header("authorization"),
        Some("Bearer sk-from-vault-v1")
    );
    assert_eq!(readiness(&gateway).await["vault"]["status"], "ok");

    bao.kv_put(
        Some("admin"),
        "secret",
        "OPENAI_API_KEY",
        "sk-from-vault-v2",
    )
    .unwrap();
    let mut seen = String::new();
    for _ in 0..100 {
        assert_eq!(chat(&gateway).await.status(), 200);
        seen = mock
            .last_request()
            .unwrap()
            .header("authorization")
            .unwrap()
            .to_owned();
        if seen == "Bearer sk-from-vault-v2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen, "Bearer sk-from-vault-v2",
        "the rotated key was never used"
    );
    let logs = gateway.logs();
    for secret in ["sk-from-vault-v1", "sk-from-vault-v2", MASTER] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_401_rereads_the_key_from_vault_and_retries_once() {
    let bao = seeded_openbao("sk-old-key");
    let mock = MockUpstream::start().await.unwrap();
    let gateway = gateway(&bao, &config(&mock.url()), "86400");
    assert_eq!(chat(&gateway).await.status(), 200);

    // The provider revoked the old key and an operator stored the new one in Vault.
    mock.require_key(Some("sk-new-key"));
    bao.kv_put(Some("admin"), "secret", "OPENAI_API_KEY", "sk-new-key")
        .unwrap();
    mock.clear();
    let response = chat(&gateway).await;
    assert_eq!(response.status(), 200);
    let keys: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["Bearer sk-old-key", "Bearer sk-new-key"]);

    // A key that is simply wrong (Vault has nothing newer) is not retried forever.
    mock.require_key(Some("sk-nobody-has-this"));
    mock.clear();
    assert_eq!(chat(&gateway).await.status(), 401);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_keep_succeeding_while_openbao_is_down_or_sealed_and_it_recovers() {
    let mut bao = seeded_openbao("sk-survives-outages");
    let mock = MockUpstream::start().await.unwrap();
    let gateway = gateway(&bao, &config(&mock.url()), "1");
    assert_eq!(chat(&gateway).await.status(), 200);

    bao.stop().unwrap();
    let mut degraded = Value::Null;
    for _ in 0..100 {
        assert_eq!(
            chat(&gateway).await.status(),
            200,
            "a request failed while Vault was down"
        );
        degraded = readiness(&gateway).await;
        if degraded["vault"]["status"] == "degraded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    assert!(
        degraded["vault"]["oldest_value_age_secs"].is_u64(),
        "{degraded}"
    );
    assert_eq!(
        mock.last_request().unwrap().header("authorization"),
        Some("Bearer sk-survives-outages")
    );

    // OpenBao returns (a dev server comes back empty: re-seed), with a rotated key.
    bao.restart().unwrap();
    seed(&bao, "sk-after-recovery");
    let mut status = Value::Null;
    for _ in 0..150 {
        assert_eq!(chat(&gateway).await.status(), 200);
        status = readiness(&gateway).await;
        let key = mock
            .last_request()
            .unwrap()
            .header("authorization")
            .unwrap()
            .to_owned();
        if status["vault"]["status"] == "ok" && key == "Bearer sk-after-recovery" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["vault"]["status"], "ok", "{status}");
    assert_eq!(
        mock.last_request().unwrap().header("authorization"),
        Some("Bearer sk-after-recovery")
    );

    bao.seal().unwrap();
    for _ in 0..100 {
        assert_eq!(
            chat(&gateway).await.status(),
            200,
            "a request failed while Vault was sealed"
        );
        if readiness(&gateway).await["vault"]["status"] == "degraded" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("a sealed Vault was not reported as degraded");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_secrets_stop_the_start_naming_every_name_and_path() {
    let bao = seeded_openbao("sk-x");
    let config = r#"
model_list:
  - model_name: a
    litellm_params: {model: openai/a, api_key: os.environ/NOT_IN_VAULT_ONE}
  - model_name: b
    litellm_params: {model: openai/b, api_key: os.environ/NOT_IN_VAULT_TWO}
general_settings: {key_management_system: hashicorp_vault, allow_unauthenticated: true}
"#;
    let output = Gateway::builder(BIN, config)
        .env("HCP_VAULT_ADDR", &bao.addr())
        .env("HCP_VAULT_TOKEN", bao.root_token())
        .env("HCP_VAULT_NAMESPACE", "admin")
        .run(&["--port", "0"])
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "NOT_IN_VAULT_ONE",
        "NOT_IN_VAULT_TWO",
        "admin/secret/data/NOT_IN_VAULT_ONE",
        "model_list[1]",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_auth_and_every_reference_without_values() {
    let bao = seeded_openbao("sk-check-secret-value");
    let config = r#"
model_list:
  - model_name: a
    litellm_params: {model: openai/a, api_key: os.environ/OPENAI_API_KEY}
  - model_name: b
    litellm_params: {model: openai/b, api_key: os.environ/ONLY_IN_ENV}
  - model_name: c
    litellm_params: {model: openai/c, api_key: os.environ/NOWHERE_AT_ALL}
general_settings: {key_management_system: hashicorp_vault}
"#;
    let output = Gateway::builder(BIN, config)
        .env("HCP_VAULT_ADDR", &bao.addr())
        .env("HCP_VAULT_TOKEN", bao.root_token())
        .env("HCP_VAULT_NAMESPACE", "admin")
        .env("ONLY_IN_ENV", "sk-env-secret-value")
        .run(&["check"])
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "check passed with a missing secret:\n{stdout}"
    );
    assert!(stdout.contains("token"), "{stdout}");
    assert!(
        stdout.contains("OPENAI_API_KEY")
            && stdout.contains("ONLY_IN_ENV")
            && stdout.contains("NOWHERE_AT_ALL"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("sk-check-secret-value") && !stdout.contains("sk-env-secret-value"),
        "{stdout}"
    );
}
