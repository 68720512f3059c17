//! The official `openai` Python SDK against the real gateway (installed by scripts/setup.sh):
//! chat, embeddings and models, and the Responses API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::{Gateway, python};

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-sdk-test-91c2";

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_chat_stream_embeddings_models_and_bad_key() {
    let mock = MockUpstream::start().await.unwrap();
    let config = format!(
        "model_list:\n  - model_name: sdk-model\n    litellm_params: {{model: openai/upstream-model, api_base: '{}/v1', api_key: os.environ/SDK_PROVIDER_KEY}}\ngeneral_settings: {{master_key: {MASTER}}}\n",
        mock.url()
    );
    let gateway = Gateway::builder(BIN, &config)
        .env("SDK_PROVIDER_KEY", "sk-provider-sdk")
        .start()
        .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        python()
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/sdk/openai_sdk_check.py"
            ))
            .env("GATEWAY_URL", &gateway.url)
            .env("GATEWAY_KEY", MASTER)
            .env("MODEL", "sdk-model")
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
    assert!(
        mock.requests()
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer sk-provider-sdk"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_responses_create_stream_retrieve_and_delete() {
    let mock = MockUpstream::start().await.unwrap();
    let config = format!(
        "model_list:\n  - model_name: sdk-model\n    litellm_params: {{model: openai/upstream-model, api_base: '{0}/v1', api_key: sk-provider-sdk}}\n  - model_name: sdk-claude\n    litellm_params: {{model: anthropic/claude-upstream, api_base: '{0}', api_key: sk-ant-provider-sdk}}\ngeneral_settings: {{master_key: {MASTER}}}\n",
        mock.url()
    );
    let gateway = Gateway::builder(BIN, &config).start().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        python()
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/sdk/openai_responses_check.py"
            ))
            .env("GATEWAY_URL", &gateway.url)
            .env("GATEWAY_KEY", MASTER)
            .env("MODEL", "sdk-model")
            .env("TRANSLATED_MODEL", "sdk-claude")
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
    let paths: Vec<String> = mock.requests().iter().map(|r| r.uri.clone()).collect();
    assert!(paths.iter().any(|p| p == "/v1/responses"), "{paths:?}");
    assert!(paths.iter().any(|p| p == "/v1/messages"), "{paths:?}");
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/v1/responses/resp_mock")),
        "{paths:?}"
    );
    // The streamed follow-up on the translated model got both earlier turns as messages.
    let last = mock
        .requests()
        .into_iter()
        .rfind(|r| r.uri == "/v1/messages")
        .unwrap();
    assert_eq!(
        last.body["messages"].as_array().unwrap().len(),
        5,
        "{}",
        last.body
    );
}
