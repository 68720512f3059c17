//! The official `openai` Python SDK against the real gateway (installed by scripts/setup.sh).
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
