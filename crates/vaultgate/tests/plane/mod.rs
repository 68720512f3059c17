//! What the management-plane tests share: the gateway with two models on the mock upstream, a
//! client acting as one caller, and assertions on answers.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;

pub const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
pub const MASTER: &str = "sk-master-teams-e2e-77a1";

pub fn config(upstream: &str, database_url: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-a-upstream, api_base: '{upstream}/v1', api_key: os.environ/E2E_PROVIDER_KEY}}
    model_info: {{input_cost_per_token: 0.01, output_cost_per_token: 0.02}}
  - model_name: gpt-b
    litellm_params: {{model: openai/gpt-b-upstream, api_base: '{upstream}/v1', api_key: os.environ/E2E_PROVIDER_KEY}}
general_settings:
  master_key: {MASTER}
  database_url: "{database_url}"
"#
    )
}

pub struct Env {
    pub mock: MockUpstream,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub async fn new() -> Self {
        Self {
            mock: MockUpstream::start().await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}/plane.db", self.dir.path().display())
    }

    pub fn gateway(&self, database_url: &str) -> Gateway {
        Gateway::builder(BIN, &config(&self.mock.url(), database_url))
            .env("E2E_PROVIDER_KEY", "sk-provider-teams")
            .dir(self.dir.path())
            .start()
            .unwrap()
    }
}

/// A client of one gateway acting as one caller.
pub struct As<'a> {
    gateway: &'a Gateway,
    key: String,
}

impl<'a> As<'a> {
    pub fn new(gateway: &'a Gateway, key: &str) -> Self {
        Self {
            gateway,
            key: key.to_owned(),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.gateway.url))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.gateway.url))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// A chat request on `model` for the end user `user` (if any): status and error message.
    pub async fn chat(&self, model: &str, user: Option<&str>) -> (u16, String) {
        let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        if let Some(user) = user {
            body["user"] = json!(user);
        }
        let (status, answer) = self.post("/v1/chat/completions", body).await;
        let message = answer
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        (status, message)
    }
}

pub fn ok(status: u16, body: &Value) {
    assert_eq!(status, 200, "{body}");
}

pub fn bad(status: u16, body: &Value, expected: u16, needle: &str) {
    assert_eq!(status, expected, "{body}");
    let message = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
}

/// The spend writer's tick is 1 s: wait for it to reach the store.
pub async fn flushed() {
    tokio::time::sleep(Duration::from_millis(1600)).await;
}
