//! Wildcard routes on the real binary, with LiteLLM's precedence: an exact `model_name` first,
//! then the most specific pattern (`openai/o1-*` before `openai/*`), `*` last, whatever the
//! config order. The part of the name a route's `*` matched becomes the provider's model where
//! its `litellm_params.model` has a `*` too. Keys with model lists keep their limits on
//! wildcard-served models, and `/v1/models` lists the routes each key may use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::key_with_models;
use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-wildcards-0c3a";

fn start(mock: &MockUpstream, dir: &std::path::Path) -> Gateway {
    let base = mock.url();
    let openai = |model: &str, key: &str| {
        format!("{{model: '{model}', api_base: '{base}/v1', api_key: {key}}}")
    };
    let config = format!(
        "model_list:
  - model_name: '*'
    litellm_params: {star}
  - model_name: gpt-4o
    litellm_params: {exact}
  - model_name: 'openai/*'
    litellm_params: {provider}
  - model_name: 'openai/o1-*'
    litellm_params: {o1}
  - model_name: 'team-*'
    litellm_params: {team}
  - model_name: '*-mini'
    litellm_params: {mini}
  - model_name: 'anthropic/*'
    litellm_params: {{model: 'anthropic/*', api_base: '{base}', api_key: key-anthropic}}
general_settings:
  master_key: {MASTER}
  database_url: \"sqlite://{}/keys.db\"
",
        dir.display(),
        star = openai("openai/*", "key-star"),
        exact = openai("openai/exact-gpt-4o", "key-exact"),
        provider = openai("openai/*", "key-openai"),
        o1 = openai("openai/o1-*", "key-o1"),
        team = openai("openai/team-model", "key-team"),
        mini = openai("openai/*-mini", "key-mini"),
    );
    Gateway::builder(BIN, &config).start().unwrap()
}

async fn chat(gateway: &Gateway, key: &str, model: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn listed(gateway: &Gateway, key: &str) -> Vec<String> {
    let body: Value = reqwest::Client::new()
        .get(format!("{}/v1/models", gateway.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn exact_names_then_the_most_specific_pattern_then_the_catch_all() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&mock, dir.path());

    // (asked for, upstream model, the route's key)
    for (model, upstream, key) in [
        ("gpt-4o", "exact-gpt-4o", "key-exact"),
        ("openai/gpt-4o", "gpt-4o", "key-openai"),
        ("openai/o1-mini", "o1-mini", "key-o1"),
        ("team-alpha", "team-model", "key-team"),
        ("gpt-4o-mini", "gpt-4o-mini", "key-mini"),
        ("some-other-model", "some-other-model", "key-star"),
    ] {
        mock.clear();
        let (status, body) = chat(&gateway, MASTER, model).await;
        assert_eq!(status, 200, "{model}: {body}");
        let seen = mock.last_request().unwrap();
        assert_eq!(seen.uri, "/v1/chat/completions", "{model}");
        assert_eq!(seen.body["model"], upstream, "{model}");
        let bearer = format!("Bearer {key}");
        assert_eq!(
            seen.header("authorization"),
            Some(bearer.as_str()),
            "{model}"
        );
    }
    mock.clear();
    let (status, body) = chat(&gateway, MASTER, "anthropic/claude-3-5-haiku").await;
    assert_eq!(status, 200, "{body}");
    let seen = mock.last_request().unwrap();
    assert_eq!(
        (seen.uri.as_str(), &seen.body["model"]),
        ("/v1/messages", &json!("claude-3-5-haiku"))
    );
    assert_eq!(seen.header("x-api-key"), Some("key-anthropic"));

    // The master key sees every route, in config order.
    assert_eq!(
        listed(&gateway, MASTER).await,
        [
            "*",
            "gpt-4o",
            "openai/*",
            "openai/o1-*",
            "team-*",
            "*-mini",
            "anthropic/*"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_with_model_lists_keep_their_limits_on_wildcard_routes() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&mock, dir.path());

    let denied = |status: u16, body: &Value| {
        status == 401 && body["error"]["type"] == "key_model_access_denied"
    };

    // A provider's pattern: its names, nothing served by other routes.
    let openai_only = key_with_models(&gateway, MASTER, json!(["openai/*"])).await;
    for model in ["openai/gpt-4o", "openai/o1-mini"] {
        let (status, body) = chat(&gateway, &openai_only, model).await;
        assert_eq!(status, 200, "{model}: {body}");
    }
    mock.clear();
    for model in [
        "gpt-4o",
        "team-alpha",
        "some-other-model",
        "anthropic/claude-3-5-haiku",
    ] {
        let (status, body) = chat(&gateway, &openai_only, model).await;
        assert!(denied(status, &body), "{model}: {status} {body}");
    }
    assert!(
        mock.requests().is_empty(),
        "a denied request reached an upstream"
    );
    assert_eq!(
        listed(&gateway, &openai_only).await,
        ["openai/*", "openai/o1-*"]
    );

    // A name pattern: its names only.
    let team = key_with_models(&gateway, MASTER, json!(["team-*"])).await;
    for model in ["team-alpha", "team-beta"] {
        assert_eq!(chat(&gateway, &team, model).await.0, 200, "{model}");
    }
    let (status, body) = chat(&gateway, &team, "openai/gpt-4o").await;
    assert!(denied(status, &body), "{status} {body}");
    assert_eq!(listed(&gateway, &team).await, ["team-*"]);

    // A key listing a route by its name may use what the route serves.
    let mini = key_with_models(&gateway, MASTER, json!(["*-mini"])).await;
    let (status, body) = chat(&gateway, &mini, "gpt-4o-mini").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = chat(&gateway, &mini, "gpt-4o").await;
    assert!(denied(status, &body), "{status} {body}");
    assert_eq!(listed(&gateway, &mini).await, ["*-mini"]);

    // An exact name: not what a pattern serves.
    let exact = key_with_models(&gateway, MASTER, json!(["gpt-4o"])).await;
    assert_eq!(chat(&gateway, &exact, "gpt-4o").await.0, 200);
    let (status, body) = chat(&gateway, &exact, "gpt-4o-mini").await;
    assert!(denied(status, &body), "{status} {body}");
    assert_eq!(listed(&gateway, &exact).await, ["gpt-4o"]);
}
