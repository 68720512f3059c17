//! `vertex_ai/` end to end through the real binary, against the mock playing both Google's
//! token endpoint (it verifies the RS256 signature of the service account's JWT with the test
//! key pair's public key) and Vertex AI (it takes only tokens it issued): Gemini chat whole and
//! streamed, embeddings through `:predict`, Claude through `:rawPredict`, the partner models
//! that speak OpenAI's API (Model Garden's MaaS endpoint, Mistral's rawPredict), tokens cached
//! and refreshed before expiry, keys and ready tokens from Vault.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_mock_upstream::google::{
    TEST_PRIVATE_KEY, UNKNOWN_PRIVATE_KEY, service_account_json,
};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-vertex-51c2";
/// A line of the test private key, to look for in logs.
fn key_line() -> &'static str {
    TEST_PRIVATE_KEY.lines().nth(3).unwrap()
}

fn config(url: &str, credentials: &str, extra: &str) -> String {
    format!(
        r#"model_list:
  - model_name: flash
    litellm_params:
      model: vertex_ai/gemini-2.0-flash
      api_base: '{url}'
      vertex_location: us-east5
      vertex_credentials: {credentials}
{extra}router_settings: {{num_retries: 0}}
general_settings:
  master_key: {MASTER}
"#
    )
}

const MORE_MODELS: &str = r#"  - model_name: claude
    litellm_params:
      model: vertex_ai/claude-3-5-sonnet-v2@20241022
      api_base: '{url}'
      vertex_project: other-project
      vertex_location: europe-west1
      vertex_credentials: os.environ/VERTEX_KEY
  - model_name: embed
    litellm_params:
      model: vertex_ai/text-embedding-005
      api_base: '{url}'
      vertex_credentials: os.environ/VERTEX_KEY
"#;

async fn post(gateway: &Gateway, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", gateway.url))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn bearer(mock: &MockUpstream) -> String {
    mock.last_request()
        .unwrap()
        .header("authorization")
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_key_is_exchanged_for_a_token_that_serves_gemini_claude_and_embeddings() {
    let mock = MockUpstream::start().await.unwrap();
    mock.enable_google_auth(Duration::from_secs(3600));
    let key = service_account_json(
        &format!("{}/token", mock.url()),
        TEST_PRIVATE_KEY,
        "test-project",
    );
    let gateway = Gateway::builder(
        BIN,
        &config(
            &mock.url(),
            "os.environ/VERTEX_KEY",
            &MORE_MODELS.replace("{url}", &mock.url()),
        ),
    )
    .env("VERTEX_KEY", &key)
    .rust_log("trace")
    .start()
    .unwrap();

    let response = post(&gateway, "/v1/chat/completions", chat("flash")).await;
    assert_eq!(response.status(), 200, "{}", gateway.logs());
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    assert_eq!(body["usage"]["total_tokens"], 12);
    let seen = mock.last_request().unwrap();
    // The project is the key's, the host the mock's, the location the entry's.
    assert_eq!(
        seen.uri,
        "/v1/projects/test-project/locations/us-east5/publishers/google/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(seen.header("authorization"), Some("Bearer ya29.mock-1"));
    assert_eq!(seen.header("x-goog-api-key"), None);

    // Streamed, with the same (cached) token.
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "flash", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(text.contains("mock "), "{text}");
    assert_eq!(
        mock.last_request().unwrap().uri,
        "/v1/projects/test-project/locations/us-east5/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );

    // Claude on Vertex: rawPredict, the model in the URL, Vertex's anthropic_version.
    let response = post(&gateway, "/v1/chat/completions", chat("claude")).await;
    assert_eq!(response.status(), 200, "{}", gateway.logs());
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    let seen = mock.last_request().unwrap();
    assert_eq!(
        seen.uri,
        "/v1/projects/other-project/locations/europe-west1/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict"
    );
    assert_eq!(seen.body["anthropic_version"], "vertex-2023-10-16");
    assert_eq!(seen.body.get("model"), None);
    assert_eq!(seen.header("x-api-key"), None);
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("mock "));
    assert!(
        mock.last_request()
            .unwrap()
            .uri
            .ends_with(":streamRawPredict")
    );

    // Embeddings through :predict, at LiteLLM's default location.
    let response = post(
        &gateway,
        "/v1/embeddings",
        json!({"model": "embed", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(response.status(), 200, "{}", gateway.logs());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"][1]["embedding"], json!([0.5, -0.25, 0.125]));
    assert_eq!(body["usage"]["prompt_tokens"], 10);
    let seen = mock.last_request().unwrap();
    assert_eq!(
        seen.uri,
        "/v1/projects/test-project/locations/us-central1/publishers/google/models/text-embedding-005:predict"
    );
    assert_eq!(
        seen.body["instances"],
        json!([{"content": "a"}, {"content": "b"}])
    );

    // Every deployment shares the key's one token.
    assert_eq!(mock.count("/token"), 1);
    assert_eq!(bearer(&mock), "Bearer ya29.mock-1");
    let logs = gateway.logs();
    assert!(
        !logs.contains(key_line()),
        "the private key reached the logs"
    );
    assert!(!logs.contains("ya29.mock-1"), "the token reached the logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn partner_models_that_speak_openai_pass_with_the_vertex_token() {
    let mock = MockUpstream::start().await.unwrap();
    mock.enable_google_auth(Duration::from_secs(3600));
    let key = service_account_json(
        &format!("{}/token", mock.url()),
        TEST_PRIVATE_KEY,
        "test-project",
    );
    let partners = r#"  - model_name: llama
    litellm_params:
      model: vertex_ai/meta/llama-3.3-70b-instruct-maas
      api_base: '{url}'
      vertex_credentials: os.environ/VERTEX_KEY
  - model_name: mistral
    litellm_params:
      model: vertex_ai/mistral-large@2407
      api_base: '{url}'
      vertex_location: europe-west4
      vertex_credentials: os.environ/VERTEX_KEY
"#
    .replace("{url}", &mock.url());
    let gateway = Gateway::builder(
        BIN,
        &config(&mock.url(), "os.environ/VERTEX_KEY", &partners),
    )
    .env("VERTEX_KEY", &key)
    .start()
    .unwrap();

    // Model Garden's OpenAI-compatible endpoint: the publisher/model id goes in the body as it is.
    let response = post(&gateway, "/v1/chat/completions", chat("llama")).await;
    assert_eq!(response.status(), 200, "{}", gateway.logs());
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    let seen = mock.last_request().unwrap();
    assert_eq!(
        seen.uri,
        "/v1/projects/test-project/locations/us-central1/endpoints/openapi/chat/completions"
    );
    assert_eq!(seen.body["model"], "meta/llama-3.3-70b-instruct-maas");
    assert_eq!(seen.body["messages"], chat("llama")["messages"]);
    assert_eq!(seen.header("authorization"), Some("Bearer ya29.mock-1"));
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(
        mock.last_request()
            .unwrap()
            .uri
            .ends_with("/endpoints/openapi/chat/completions")
    );

    // Mistral: its publisher's rawPredict, OpenAI's body, the model without its version.
    let response = post(&gateway, "/v1/chat/completions", chat("mistral")).await;
    assert_eq!(response.status(), 200, "{}", gateway.logs());
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    let seen = mock.last_request().unwrap();
    assert_eq!(
        seen.uri,
        "/v1/projects/test-project/locations/europe-west4/publishers/mistralai/models/mistral-large@2407:rawPredict"
    );
    assert_eq!(seen.body["model"], "mistral-large");
    assert_eq!(seen.body.get("anthropic_version"), None);
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "mistral", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("mock "));
    let seen = mock.last_request().unwrap();
    assert!(
        seen.uri.ends_with("/mistral-large@2407:streamRawPredict"),
        "{}",
        seen.uri
    );
    assert_eq!(seen.body["stream"], true);
    assert_eq!(mock.count("/token"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_google_does_not_know_is_a_clear_503_and_a_refused_token_is_minted_anew() {
    let mock = MockUpstream::start().await.unwrap();
    mock.enable_google_auth(Duration::from_secs(3600));
    let token_uri = format!("{}/token", mock.url());
    let gateway = Gateway::builder(
        BIN,
        &config(
            &mock.url(),
            "os.environ/VERTEX_KEY",
            "  - model_name: good\n    litellm_params:\n      model: vertex_ai/gemini-2.0-flash\n      api_base: '{url}'\n      vertex_credentials: os.environ/GOOD_KEY\n"
                .replace("{url}", &mock.url())
                .as_str(),
        ),
    )
    .env(
        "VERTEX_KEY",
        &service_account_json(&token_uri, UNKNOWN_PRIVATE_KEY, "test-project"),
    )
    .env(
        "GOOD_KEY",
        &service_account_json(&token_uri, TEST_PRIVATE_KEY, "test-project"),
    )
    .rust_log("trace")
    .start()
    .unwrap();
    let response = post(&gateway, "/v1/chat/completions", chat("flash")).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("invalid_grant") && message.contains("flash-0"),
        "{message}"
    );
    assert_eq!(mock.count("/v1/projects/test-project/locations/us-east5/publishers/google/models/gemini-2.0-flash:generateContent"), 0);

    // The other key works; when Vertex stops taking its token, a new one is minted at once.
    assert_eq!(
        post(&gateway, "/v1/chat/completions", chat("good"))
            .await
            .status(),
        200
    );
    assert_eq!(bearer(&mock), "Bearer ya29.mock-1");
    mock.enable_google_auth(Duration::from_secs(3600));
    let response = post(&gateway, "/v1/chat/completions", chat("good")).await;
    assert_eq!(response.status(), 200, "{}", gateway.logs());
    assert_eq!(bearer(&mock), "Bearer ya29.mock-1", "the mock counts anew");
    let refused = mock
        .requests()
        .iter()
        .filter(|r| r.uri.contains(":generateContent"))
        .count();
    assert_eq!(refused, 3, "one refused call, one retry, one first call");
    assert!(!gateway.logs().contains(key_line()));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_refreshed_before_they_expire_without_a_request_waiting() {
    let mock = MockUpstream::start().await.unwrap();
    // Tokens of 12 s are due for replacement after 8 s.
    mock.enable_google_auth(Duration::from_secs(12));
    let key = service_account_json(&format!("{}/token", mock.url()), TEST_PRIVATE_KEY, "p");
    let gateway = Gateway::builder(BIN, &config(&mock.url(), "os.environ/VERTEX_KEY", ""))
        .env("VERTEX_KEY", &key)
        .start()
        .unwrap();
    assert_eq!(
        post(&gateway, "/v1/chat/completions", chat("flash"))
            .await
            .status(),
        200
    );
    assert_eq!(mock.count("/token"), 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while mock.count("/token") < 2 {
        assert!(Instant::now() < deadline, "no refresh: {}", gateway.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let response = post(&gateway, "/v1/chat/completions", chat("flash")).await;
    assert_eq!(response.status(), 200, "{}", gateway.logs());
    assert_eq!(bearer(&mock), "Bearer ya29.mock-2");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_ready_tokens_come_from_vault() {
    let bao = vaultgate_testkit::openbao::OpenBao::start().unwrap();
    let mock = MockUpstream::start().await.unwrap();
    mock.enable_google_auth(Duration::from_secs(3600));
    mock.accept_google_token("ya29.from-vault-gcp-engine");
    // As Vault's GCP engine hands out a key: base64 of the key file.
    let key = service_account_json(
        &format!("{}/token", mock.url()),
        TEST_PRIVATE_KEY,
        "vault-project",
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(&key);
    bao.kv_put_fields(None, "secret", "gcp/key", &[("private_key_data", &encoded)])
        .unwrap();
    bao.kv_put_fields(
        None,
        "secret",
        "gcp/token",
        &[("token", "ya29.from-vault-gcp-engine")],
    )
    .unwrap();
    let extra = "  - model_name: by-token\n    litellm_params:\n      model: vertex_ai/gemini-2.0-flash\n      api_base: '{url}'\n      vertex_project: token-project\n      vertex_credentials: vault://secret/gcp/token#token\n"
        .replace("{url}", &mock.url());
    let gateway = Gateway::builder(
        BIN,
        &config(
            &mock.url(),
            "vault://secret/gcp/key#private_key_data",
            &extra,
        ),
    )
    .env("HCP_VAULT_ADDR", &bao.addr())
    .env("HCP_VAULT_TOKEN", bao.root_token())
    .rust_log("trace")
    .start()
    .unwrap();
    let response = post(&gateway, "/v1/chat/completions", chat("flash")).await;
    assert_eq!(response.status(), 200, "{}", gateway.logs());
    assert!(
        mock.last_request()
            .unwrap()
            .uri
            .starts_with("/v1/projects/vault-project/")
    );
    assert_eq!(bearer(&mock), "Bearer ya29.mock-1");

    let before = mock.count("/token");
    let response = post(&gateway, "/v1/chat/completions", chat("by-token")).await;
    assert_eq!(response.status(), 200, "{}", gateway.logs());
    assert_eq!(bearer(&mock), "Bearer ya29.from-vault-gcp-engine");
    assert_eq!(
        mock.count("/token"),
        before,
        "a ready token is not exchanged"
    );
    let logs = gateway.logs();
    assert!(!logs.contains("ya29.from-vault-gcp-engine") && !logs.contains(&encoded[..40]));
}
