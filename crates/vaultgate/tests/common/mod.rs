//! Shared by the end-to-end key tests: a real OpenBao, the recording mock upstream, the config
//! with virtual keys mirrored under `litellm/`, and calls to the management API.
#![allow(dead_code)]

use serde_json::Value;
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::openbao::OpenBao;
use vaultgate_testkit::{Gateway, GatewayBuilder};

pub const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
pub const MASTER: &str = "sk-master-keys-e2e-5e1f";
pub const PROVIDER_KEY: &str = "sk-provider-keys-e2e";

/// Models `gpt-a` (priced) and `gpt-b`; provider key from the environment (Vault reads are
/// limited to nothing by `hosted_keys: []`), virtual keys mirrored into OpenBao under `litellm/`.
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
  key_management_system: hashicorp_vault
  key_management_settings:
    store_virtual_keys: true
    access_mode: read_and_write
    hosted_keys: []
"#
    )
}

pub struct Env {
    pub bao: OpenBao,
    pub mock: MockUpstream,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub async fn new() -> Self {
        Self {
            bao: OpenBao::start().unwrap(),
            mock: MockUpstream::start().await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}/keys.db", self.dir.path().display())
    }

    pub fn gateway(&self, database_url: &str) -> Gateway {
        self.gateway_with(database_url, &[])
    }

    /// The gateway, with environment variables that override the defaults (Vault address,
    /// token, client timeout).
    pub fn gateway_with(&self, database_url: &str, env: &[(&str, &str)]) -> Gateway {
        self.builder(database_url, env)
            .dir(self.dir.path())
            .start()
            .unwrap()
    }

    /// The builder behind [`Env::gateway_with`], for `run(&["check"])` too.
    pub fn builder(&self, database_url: &str, env: &[(&str, &str)]) -> GatewayBuilder {
        let mut builder = Gateway::builder(BIN, &config(&self.mock.url(), database_url))
            .env("HCP_VAULT_ADDR", &self.bao.addr())
            .env("HCP_VAULT_TOKEN", self.bao.root_token())
            .env("E2E_PROVIDER_KEY", PROVIDER_KEY);
        for (name, value) in env {
            builder = builder.env(name, value);
        }
        builder
    }

    /// The mirrored copy's `key` field, or None when absent or deleted.
    pub fn vault_copy(&self, name: &str) -> Option<String> {
        let answer = self
            .bao
            .kv_get(None, "secret", &format!("litellm/{name}"))
            .unwrap()?;
        answer
            .pointer("/data/data/key")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

pub async fn admin(gateway: &Gateway, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", gateway.url))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

pub async fn admin_get(gateway: &Gateway, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", gateway.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// `GET path` as `key` (none: no key at all): the status and the JSON body (`null` if none).
pub async fn get_as(gateway: &Gateway, key: Option<&str>, path: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", gateway.url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A new virtual key limited to `models` (`[]`: every model), made with `master`.
pub async fn key_with_models(gateway: &Gateway, master: &str, models: Value) -> String {
    let response: Value = reqwest::Client::new()
        .post(format!("{}/key/generate", gateway.url))
        .bearer_auth(master)
        .json(&serde_json::json!({"models": models}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["key"].as_str().unwrap().to_owned()
}
