//! LiteLLM's region-based routing end to end: an end user's `allowed_model_region` lets only
//! deployments of that `region_name` serve them (in the group asked for and its fallbacks);
//! a model with none there is a 400 naming the region; other callers are routed as before.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-region-e2e-31c9";

fn config(upstream: &str, database_url: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-r
    litellm_params: {{model: openai/r-eu, api_base: '{upstream}/v1', api_key: os.environ/E2E_PROVIDER_KEY, region_name: eu}}
    model_info: {{id: r-eu}}
  - model_name: gpt-r
    litellm_params: {{model: openai/r-us, api_base: '{upstream}/v1', api_key: os.environ/E2E_PROVIDER_KEY, region_name: US}}
    model_info: {{id: r-us}}
  - model_name: gpt-r
    litellm_params: {{model: openai/r-any, api_base: '{upstream}/v1', api_key: os.environ/E2E_PROVIDER_KEY}}
    model_info: {{id: r-any}}
  - model_name: gpt-us-only
    litellm_params: {{model: openai/u, api_base: '{upstream}/v1', api_key: os.environ/E2E_PROVIDER_KEY, region_name: us}}
general_settings:
  master_key: {MASTER}
  database_url: "{database_url}"
"#
    )
}

async fn post(gateway: &Gateway, path: &str, body: Value) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", gateway.url))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-vaultgate-model-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, id, response.json().await.unwrap_or(Value::Null))
}

/// The deployments that served 12 requests of `user` for `model`.
async fn served(gateway: &Gateway, model: &str, user: Option<&str>) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for _ in 0..12 {
        let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        if let Some(user) = user {
            body["user"] = json!(user);
        }
        let (status, id, answer) = post(gateway, "/v1/chat/completions", body).await;
        assert_eq!(status, 200, "{answer}");
        ids.insert(id.unwrap());
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn an_end_users_allowed_model_region_picks_the_deployments_of_that_region() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/region.db", dir.path().display());
    let gateway = Gateway::builder(BIN, &config(&mock.url(), &url))
        .env("E2E_PROVIDER_KEY", "sk-provider-region")
        .dir(dir.path())
        .start()
        .unwrap();
    for (user, region) in [("eu-customer", "eu"), ("us-customer", "us")] {
        let (status, _, body) = post(
            &gateway,
            "/end_user/new",
            json!({"user_id": user, "allowed_model_region": region}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, _, body) = post(&gateway, "/end_user/new", json!({"user_id": "anywhere"})).await;
    assert!(body.get("error").is_none(), "{body}");

    let one = |id: &str| BTreeSet::from([id.to_owned()]);
    assert_eq!(
        served(&gateway, "gpt-r", Some("eu-customer")).await,
        one("r-eu")
    );
    assert_eq!(
        served(&gateway, "gpt-r", Some("us-customer")).await,
        one("r-us")
    );
    assert!(served(&gateway, "gpt-r", Some("anywhere")).await.len() > 1);
    assert!(served(&gateway, "gpt-r", None).await.len() > 1);

    // No deployment of the model in the region: a 400 naming it, nothing sent upstream.
    let before = mock.requests().len();
    let (status, _, body) = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "gpt-us-only", "user": "eu-customer", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("region 'eu'") && message.contains("gpt-us-only"),
        "{body}"
    );
    assert_eq!(mock.requests().len(), before);

    // A change of the end user's region applies to the next request.
    let (status, _, body) = post(
        &gateway,
        "/end_user/update",
        json!({"user_id": "eu-customer", "allowed_model_region": "us"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        served(&gateway, "gpt-r", Some("eu-customer")).await,
        one("r-us")
    );
}
