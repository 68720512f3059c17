//! LiteLLM's model information routes on the real binary: `/model/info` (and `/v1/…`, `/v2/…`)
//! lists each deployment with its `litellm_params` minus secrets and its `model_info` (prices,
//! limits, mode, provider, params); `/model_group/info` sums each public model name up; a
//! virtual key sees only the models it may use, the master key everything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{get_as as get, key_with_models};
use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-model-info-77c1";
const LITERAL_KEY: &str = "sk-literal-provider-key-9d2e";
const ENV_KEY: &str = "sk-ant-from-env-41aa";
const AWS_SECRET: &str = "aws-secret-literal-6b0f";
const AWS_ID: &str = "AKIALITERAL0000";

fn start(mock: &MockUpstream, dir: &std::path::Path) -> Gateway {
    let base = mock.url();
    let config = format!(
        "model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-a-up, api_base: '{base}/v1', api_key: {LITERAL_KEY}, rpm: 10, tpm: 1000}}
    model_info: {{id: a-1, input_cost_per_token: 0.001, output_cost_per_token: 0.002, max_tokens: 4096, max_input_tokens: 128000}}
  - model_name: gpt-a
    litellm_params: {{model: anthropic/claude-3-5-haiku, api_base: '{base}', api_key: os.environ/MI_ANTHROPIC_KEY, rpm: 5}}
  - model_name: emb
    litellm_params: {{model: mistral/mistral-embed, api_base: '{base}/v1', api_key: x}}
  - model_name: br
    litellm_params: {{model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, aws_access_key_id: {AWS_ID}, aws_secret_access_key: {AWS_SECRET}, aws_region_name: us-east-1, aws_bedrock_runtime_endpoint: '{base}'}}
  - model_name: 'team-*'
    litellm_params: {{model: 'openai/*', api_base: '{base}/v1', api_key: {LITERAL_KEY}}}
  - model_name: sm
    litellm_params: {{model: sagemaker/some-endpoint}}
general_settings:
  master_key: {MASTER}
  database_url: \"sqlite://{}/keys.db\"
",
        dir.display()
    );
    Gateway::builder(BIN, &config)
        .env("MI_ANTHROPIC_KEY", ENV_KEY)
        .start()
        .unwrap()
}

fn names(body: &Value, field: &str) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn model_info_lists_deployments_in_litellms_shape_without_secrets() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&mock, dir.path());

    let (status, body) = get(&gateway, Some(MASTER), "/model/info").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        names(&body, "model_name"),
        ["gpt-a", "gpt-a", "emb", "br", "team-*", "sm"]
    );
    let text = body.to_string();
    for secret in [LITERAL_KEY, ENV_KEY, AWS_SECRET, AWS_ID] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    let data = body["data"].as_array().unwrap();
    let first = &data[0];
    assert_eq!(first["litellm_params"]["model"], "openai/gpt-a-up");
    assert_eq!(
        first["litellm_params"]["api_base"],
        format!("{}/v1", mock.url())
    );
    assert_eq!(first["litellm_params"]["rpm"], 10);
    assert!(first["litellm_params"].get("api_key").is_none(), "{first}");
    let info = &first["model_info"];
    assert_eq!(info["id"], "a-1");
    assert_eq!(info["mode"], "chat");
    assert_eq!(info["litellm_provider"], "openai");
    assert_eq!(info["input_cost_per_token"], 0.001);
    assert_eq!(info["output_cost_per_token"], 0.002);
    assert_eq!(info["max_tokens"], 4096);
    assert_eq!(info["max_input_tokens"], 128_000);
    assert!(
        info["supported_openai_params"]
            .as_array()
            .unwrap()
            .contains(&json!("tools"))
    );
    // Prices from the built-in table when the config has none; the id LiteLLM would give.
    let anthropic = &data[1]["model_info"];
    assert_eq!(anthropic["id"], "gpt-a-1");
    assert_eq!(anthropic["litellm_provider"], "anthropic");
    let price = anthropic["input_cost_per_token"].as_f64().unwrap();
    assert!((price - 0.8e-6).abs() < 1e-12, "{price}");
    assert!(data[1]["litellm_params"].get("api_key").is_none());
    assert_eq!(data[2]["model_info"]["mode"], "embedding");
    assert_eq!(data[2]["model_info"]["litellm_provider"], "mistral");
    let bedrock = &data[3]["litellm_params"];
    assert_eq!(bedrock["aws_region_name"], "us-east-1");
    assert!(
        bedrock.get("aws_secret_access_key").is_none()
            && bedrock.get("aws_access_key_id").is_none()
    );
    assert_eq!(data[4]["litellm_params"]["model"], "openai/*");
    assert_eq!(data[5]["model_info"]["litellm_provider"], "sagemaker");

    // The same under /v1 and /v2; one deployment by id.
    for path in ["/v1/model/info", "/v2/model/info"] {
        assert_eq!(get(&gateway, Some(MASTER), path).await, (200, body.clone()));
    }
    let (_, one) = get(&gateway, Some(MASTER), "/model/info?litellm_model_id=a-1").await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    assert_eq!(one["data"][0], *first);
    let (_, by_name) = get(&gateway, Some(MASTER), "/v2/model/info?model=emb").await;
    assert_eq!(names(&by_name, "model_name"), ["emb"]);

    // A caller needs a key.
    assert_eq!(get(&gateway, None, "/model/info").await.0, 401);
    assert_eq!(
        get(&gateway, Some("sk-wrong"), "/model_group/info").await.0,
        401
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn model_group_info_sums_up_each_model_name() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&mock, dir.path());

    let (status, body) = get(&gateway, Some(MASTER), "/model_group/info").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        names(&body, "model_group"),
        ["gpt-a", "emb", "br", "team-*", "sm"]
    );
    let group = &body["data"][0];
    assert_eq!(group["providers"], json!(["openai", "anthropic"]));
    assert_eq!(group["max_input_tokens"], 128_000);
    assert_eq!(group["input_cost_per_token"], 0.001);
    assert_eq!(group["output_cost_per_token"], 0.002);
    assert_eq!(group["rpm"], 15);
    assert_eq!(group["tpm"], 1000);
    assert_eq!(group["mode"], "chat");
    let params = group["supported_openai_params"].as_array().unwrap();
    assert!(params.contains(&json!("thinking")) && params.contains(&json!("logit_bias")));
    assert_eq!(body["data"][1]["mode"], "embedding");
    assert!(body["data"][1]["rpm"].is_null());
    let (_, one) = get(&gateway, Some(MASTER), "/model_group/info?model_group=emb").await;
    assert_eq!(names(&one, "model_group"), ["emb"]);
    assert!(!body.to_string().contains(LITERAL_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_virtual_key_sees_only_the_models_it_may_use() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&mock, dir.path());

    let only_a = key_with_models(&gateway, MASTER, json!(["gpt-a"])).await;
    let (status, body) = get(&gateway, Some(&only_a), "/model/info").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body, "model_name"), ["gpt-a", "gpt-a"]);
    let (_, groups) = get(&gateway, Some(&only_a), "/model_group/info").await;
    assert_eq!(names(&groups, "model_group"), ["gpt-a"]);
    let (_, none) = get(&gateway, Some(&only_a), "/model_group/info?model_group=emb").await;
    assert_eq!(none["data"], json!([]));

    // A key for the wildcard route sees that route; a key without models sees everything.
    let team = key_with_models(&gateway, MASTER, json!(["team-*", "emb"])).await;
    let (_, body) = get(&gateway, Some(&team), "/v2/model/info").await;
    assert_eq!(names(&body, "model_name"), ["emb", "team-*"]);
    let all = key_with_models(&gateway, MASTER, json!([])).await;
    let (_, body) = get(&gateway, Some(&all), "/v1/model/info").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 6);
}
