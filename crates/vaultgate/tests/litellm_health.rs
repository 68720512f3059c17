//! LiteLLM's `/health` on the real binary: one real small call per deployment (chat with
//! `max_tokens: 1`, an embedding for embedding models), sorted into healthy and unhealthy
//! endpoints with the error, secrets never shown, master key only; and LiteLLM's fields in
//! `/health/readiness`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

mod common;

use common::{get_as as get, key_with_models};
use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-health-5a9e";
const GOOD_KEY: &str = "sk-good-provider-key-1f3c";
const WRONG_KEY: &str = "sk-wrong-provider-key-88d0";

fn start(mock: &MockUpstream, slow: &MockUpstream, dir: &std::path::Path) -> Gateway {
    let (base, slow_base) = (mock.url(), slow.url());
    let config = format!(
        "model_list:
  - model_name: good-chat
    litellm_params: {{model: openai/good-up, api_base: '{base}/v1', api_key: {GOOD_KEY}}}
  - model_name: emb
    litellm_params: {{model: openai/text-embedding-3-small, api_base: '{base}/v1', api_key: {GOOD_KEY}}}
  - model_name: refused
    litellm_params: {{model: openai/refused-up, api_base: '{base}/v1', api_key: {WRONG_KEY}}}
  - model_name: slow
    litellm_params: {{model: openai/slow-up, api_base: '{slow_base}/v1', api_key: {GOOD_KEY}, timeout: 0.3}}
  - model_name: canned
    litellm_params: {{model: openai/canned, mock_response: hello}}
  - model_name: sm
    litellm_params: {{model: sagemaker/endpoint-x}}
  - model_name: '*'
    litellm_params: {{model: 'openai/*', api_base: '{base}/v1', api_key: {GOOD_KEY}}}
general_settings:
  master_key: {MASTER}
  database_url: \"sqlite://{}/keys.db\"
",
        dir.display()
    );
    Gateway::builder(BIN, &config).start().unwrap()
}

fn by_model<'a>(list: &'a Value, model: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["model"] == model)
        .unwrap_or_else(|| panic!("{model} not in {list}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn health_calls_each_deployment_and_reports_litellms_shape() {
    let mock = MockUpstream::start().await.unwrap();
    mock.require_key(Some(GOOD_KEY));
    let slow = MockUpstream::start().await.unwrap();
    slow.push(Script {
        delay: Duration::from_secs(10),
        ..Script::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&mock, &slow, dir.path());

    let (status, body) = get(&gateway, Some(MASTER), "/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["healthy_count"], 3, "{body}");
    assert_eq!(body["unhealthy_count"], 3, "{body}");
    let healthy = &body["healthy_endpoints"];
    let unhealthy = &body["unhealthy_endpoints"];
    let good = by_model(healthy, "openai/good-up");
    assert_eq!(good["api_base"], format!("{}/v1", mock.url()));
    assert_eq!(good["model_id"], "good-chat-0");
    assert!(
        good.get("api_key").is_none() && good.get("error").is_none(),
        "{good}"
    );
    by_model(healthy, "openai/text-embedding-3-small");
    by_model(healthy, "openai/canned");

    let refused = by_model(unhealthy, "openai/refused-up");
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("AuthenticationError"), "{error}");
    let timed_out = by_model(unhealthy, "openai/slow-up")["error"]
        .as_str()
        .unwrap();
    assert!(timed_out.contains("Timeout"), "{timed_out}");
    let sagemaker = by_model(unhealthy, "sagemaker/endpoint-x")["error"]
        .as_str()
        .unwrap();
    assert!(sagemaker.contains("sagemaker"), "{sagemaker}");
    // Wildcard routes have no name to ask for: not checked.
    assert!(!body.to_string().contains("openai/*"), "{body}");
    for secret in [GOOD_KEY, WRONG_KEY] {
        assert!(!body.to_string().contains(secret), "{secret} shown: {body}");
    }

    // Real calls: the smallest chat and an embedding, nothing for the canned answer.
    let requests = mock.requests();
    let chat = requests
        .iter()
        .find(|r| r.body["model"] == "good-up")
        .unwrap();
    assert_eq!(chat.uri, "/v1/chat/completions");
    assert_eq!(chat.body["max_tokens"], 1);
    let embedding = requests
        .iter()
        .find(|r| r.body["model"] == "text-embedding-3-small")
        .unwrap();
    assert_eq!(embedding.uri, "/v1/embeddings");
    assert_eq!(requests.len(), 3, "good, emb, refused");
    assert_eq!(slow.requests().len(), 1);

    // One model only.
    mock.clear();
    let (_, one) = get(&gateway, Some(MASTER), "/health?model=good-chat").await;
    assert_eq!(
        (&one["healthy_count"], &one["unhealthy_count"]),
        (&json!(1), &json!(0))
    );
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_takes_the_master_key_and_readiness_has_litellms_fields() {
    let mock = MockUpstream::start().await.unwrap();
    let slow = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&mock, &slow, dir.path());

    assert_eq!(get(&gateway, None, "/health").await.0, 401);
    let key = key_with_models(&gateway, MASTER, json!([])).await;
    let (status, body) = get(&gateway, Some(&key), "/health").await;
    assert_eq!(status, 401, "{body}");
    assert!(
        mock.requests().is_empty(),
        "a refused caller made checks run"
    );

    let (status, ready) = get(&gateway, Some(MASTER), "/health/readiness").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "healthy", "{ready}");
    assert_eq!(ready["db"], "connected", "{ready}");
    assert_eq!(ready["database"]["backend"], "sqlite", "{ready}");
    assert_eq!(ready["litellm_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        ready["cache"].is_null() && ready["success_callbacks"] == json!([]),
        "{ready}"
    );
}
