//! Bedrock end to end: OpenAI and Anthropic-native clients served by `bedrock/` deployments
//! through the real binary, against the mock upstream, which recomputes every request's SigV4
//! signature from the keys it was given and refuses any that does not match.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use vaultgate_mock_upstream::bedrock::{AwsKey, AwsKeys};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-bedrock-5d1e";
const KEY_ID: &str = "AKIAVAULTGATETEST01";
const SECRET: &str = "bedrock-secret-4f9a/+never-logged";
const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

fn key(id: &str, secret: &str, token: Option<&str>) -> AwsKey {
    AwsKey {
        access_key_id: id.into(),
        secret_access_key: secret.into(),
        session_token: token.map(str::to_owned),
    }
}

async fn mock() -> MockUpstream {
    let mock = MockUpstream::start().await.unwrap();
    mock.set_aws_keys(AwsKeys::Static(vec![key(KEY_ID, SECRET, None)]));
    mock
}

fn config(upstream: &str, extra_params: &str, rest: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: claude
    litellm_params:
      model: bedrock/{MODEL}
      aws_bedrock_runtime_endpoint: {upstream}
      aws_region_name: eu-west-3
{extra_params}
router_settings:
  num_retries: 0
{rest}
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
"#
    )
}

const STATIC_KEYS: &str = "      aws_access_key_id: os.environ/TEST_AWS_KEY_ID\n      aws_secret_access_key: os.environ/TEST_AWS_SECRET\n";

fn start(config: &str, secret: &str) -> Gateway {
    Gateway::builder(BIN, config)
        .env("TEST_MASTER_KEY", MASTER)
        .env("TEST_AWS_KEY_ID", KEY_ID)
        .env("TEST_AWS_SECRET", secret)
        .rust_log("trace")
        .start()
        .unwrap()
}

async fn post(gateway: &Gateway, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", gateway.url))
        .bearer_auth(MASTER)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn data_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect()
}

/// The last request reached the mock signed with our key, for Bedrock in our region.
fn assert_signed(mock: &MockUpstream, path_end: &str) {
    let seen = mock.last_request().unwrap();
    assert!(seen.uri.ends_with(path_end), "{}", seen.uri);
    assert!(
        seen.uri.contains("%3A0"),
        "model id not encoded: {}",
        seen.uri
    );
    let verified = seen.signature.clone().unwrap().unwrap();
    assert_eq!(verified.access_key_id, KEY_ID);
    assert_eq!(verified.region, "eu-west-3");
    assert!(!format!("{:?}", seen.headers).contains(MASTER));
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_is_translated_to_converse_signed_and_back() {
    let mock = mock().await;
    let gateway = start(&config(&mock.url(), STATIC_KEYS, ""), SECRET);
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "claude", "max_tokens": 50, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-vaultgate-model-id"], "claude-0");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "claude");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["completion_tokens"], 7);

    assert_signed(&mock, "/converse");
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.body["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "user", "content": [{"text": "hi"}]}])
    );
    assert_eq!(seen.body["inferenceConfig"], json!({"maxTokens": 50}));
    let logs = gateway.logs();
    assert!(!logs.contains(SECRET), "the AWS secret reached the logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_are_translated_from_event_stream_frames() {
    let mock = mock().await;
    let gateway = start(&config(&mock.url(), STATIC_KEYS, ""), SECRET);
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "claude", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let lines = data_lines(&text);
    assert_eq!(lines.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello from the mock upstream.");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 7);
    assert_signed(&mock, "/converse-stream");

    // Without include_usage the usage chunk is hidden.
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let text = response.text().await.unwrap();
    assert!(!text.contains("\"usage\""), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_clients_reach_bedrock_through_v1_messages() {
    let mock = mock().await;
    let gateway = start(&config(&mock.url(), STATIC_KEYS, ""), SECRET);
    let response = post(
        &gateway,
        "/v1/messages",
        json!({"model": "claude", "max_tokens": 20, "system": "Be brief.",
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0]["text"], "Hello from the mock upstream.");
    assert_eq!(body["usage"]["output_tokens"], 7);
    assert_signed(&mock, "/converse");
    assert_eq!(
        mock.last_request().unwrap().body["inferenceConfig"]["maxTokens"],
        20
    );

    let response = post(
        &gateway,
        "/v1/messages",
        json!({"model": "claude", "max_tokens": 20, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let text = response.text().await.unwrap();
    assert!(text.contains("event: message_start"), "{text}");
    assert!(text.contains("event: message_stop"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_fails_the_signature_check() {
    let mock = mock().await;
    let gateway = start(&config(&mock.url(), STATIC_KEYS, ""), "not-the-secret");
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("UnrecognizedClientException"), "{body}");
    let seen = mock.last_request().unwrap();
    let why = seen.signature.unwrap().unwrap_err();
    assert!(why.contains("signature"), "{why}");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_429_and_another_deployment_serves() {
    let mock = mock().await;
    let throttled = || Script {
        status: Some(400),
        body: Some(
            json!({"message": "Too many tokens, please wait before trying again."}).to_string(),
        ),
        headers: vec![(
            "x-amzn-errortype",
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/".into(),
        )],
        ..Default::default()
    };
    let gateway = start(&config(&mock.url(), STATIC_KEYS, ""), SECRET);
    mock.push(throttled());
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // A stream opened with a throttling exception is a 429 too, before any byte.
    mock.push(Script {
        stream: Some(vec![
            json!({"throttlingException": {"message": "slow down"}}).to_string(),
        ]),
        ..Default::default()
    });
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 429);

    // With a second deployment and a retry, the throttled one is skipped.
    let second = format!(
        "  - model_name: claude\n    litellm_params:\n      model: bedrock/converse/{MODEL}\n      aws_bedrock_runtime_endpoint: {}\n      aws_region_name: eu-west-3\n{STATIC_KEYS}",
        mock.url()
    );
    let config = config(&mock.url(), &format!("{STATIC_KEYS}{second}"), "")
        .replace("num_retries: 0", "num_retries: 1");
    let gateway = start(&config, SECRET);
    mock.push(throttled());
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-vaultgate-attempts"], "2");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_region_and_session_token_come_from_the_aws_environment() {
    let mock = MockUpstream::start().await.unwrap();
    mock.set_aws_keys(AwsKeys::Static(vec![key(
        KEY_ID,
        SECRET,
        Some("session-token-77"),
    )]));
    let config = format!(
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: {MODEL}\n      api_base: {}\n",
        mock.url()
    );
    let gateway = Gateway::builder(BIN, &config)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_SESSION_TOKEN", "session-token-77")
        .env("AWS_REGION", "ap-south-1")
        .arg("--allow-unauthenticated")
        .start()
        .unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", gateway.logs());
    let verified = mock.last_request().unwrap().signature.unwrap().unwrap();
    assert_eq!(verified.region, "ap-south-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_from_vault_references_are_reread_when_aws_refuses_them() {
    let bao = vaultgate_testkit::openbao::OpenBao::start().unwrap();
    bao.kv_put_fields(
        None,
        "secret",
        "aws/bedrock",
        &[("access_key", KEY_ID), ("secret_key", SECRET)],
    )
    .unwrap();
    let mock = mock().await;
    let keys = "      aws_access_key_id: vault://secret/aws/bedrock#access_key\n      aws_secret_access_key: vault://secret/aws/bedrock#secret_key\n";
    let gateway = Gateway::builder(BIN, &config(&mock.url(), keys, ""))
        .env("TEST_MASTER_KEY", MASTER)
        .env("HCP_VAULT_ADDR", &bao.addr())
        .env("HCP_VAULT_TOKEN", bao.root_token())
        .rust_log("trace")
        .start()
        .unwrap();
    let ask = || {
        post(
            &gateway,
            "/v1/chat/completions",
            json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    assert_eq!(ask().await.status(), 200);
    assert_signed(&mock, "/converse");

    // The keys rotate: Vault has the new pair, AWS knows only the new pair.
    let (new_id, new_secret) = ("AKIAVAULTGATETEST02", "rotated-secret-77b1");
    bao.kv_put_fields(
        None,
        "secret",
        "aws/bedrock",
        &[("access_key", new_id), ("secret_key", new_secret)],
    )
    .unwrap();
    mock.set_aws_keys(AwsKeys::Static(vec![key(new_id, new_secret, None)]));
    let response = ask().await;
    assert_eq!(response.status(), 200, "{}", gateway.logs());
    let requests = mock.requests();
    let last = requests.last().unwrap().signature.clone().unwrap().unwrap();
    assert_eq!(last.access_key_id, new_id);
    // The refused attempt went first, with the old key.
    assert!(
        requests[requests.len() - 2]
            .signature
            .clone()
            .unwrap()
            .is_err()
    );
    let logs = gateway.logs();
    assert!(
        !logs.contains(SECRET) && !logs.contains(new_secret),
        "a secret reached the logs"
    );
}
