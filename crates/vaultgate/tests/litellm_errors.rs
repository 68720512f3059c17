//! Router errors in LiteLLM's shapes, end to end with the real binary: `{"error": {"message",
//! "type", "param", "code"}}` with `code` the status as a string, LiteLLM's exception class at
//! the head of an upstream's message, 408 for timeouts, 401 `key_model_access_denied` (before
//! "unknown model"), 400 for an unknown model naming `param: model`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-errors-3b7f";

fn start(mock: &MockUpstream, dir: &std::path::Path) -> Gateway {
    let base = mock.url();
    let config = format!(
        "model_list:
  - model_name: chat
    litellm_params: {{model: openai/chat-up, api_base: '{base}/v1', api_key: k}}
  - model_name: other
    litellm_params: {{model: openai/other-up, api_base: '{base}/v1', api_key: k}}
general_settings:
  master_key: {MASTER}
  database_url: \"sqlite://{}/keys.db\"
",
        dir.display()
    );
    Gateway::builder(BIN, &config).start().unwrap()
}

async fn chat(gateway: &Gateway, key: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn hi(model: &str, extra: Value) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    for (name, value) in extra.as_object().unwrap() {
        body[name] = value.clone();
    }
    body
}

/// The error object, after checking it has exactly LiteLLM's four members and a string code.
fn error(status: u16, body: &Value) -> &Value {
    let error = &body["error"];
    let mut members: Vec<&str> = error
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["code", "message", "param", "type"], "{body}");
    assert_eq!(error["code"], status.to_string(), "{body}");
    error
}

fn message(error: &Value) -> &str {
    error["message"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn router_errors_have_litellms_shapes() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&mock, dir.path());

    // No deployment for the model.
    let (status, body) = chat(&gateway, MASTER, hi("nope", json!({}))).await;
    assert_eq!(status, 400);
    let e = error(status, &body);
    assert_eq!(
        (e["type"].as_str(), e["param"].as_str()),
        (Some("invalid_request_error"), Some("model"))
    );
    assert!(
        message(e).contains("Invalid model name passed in model=nope"),
        "{body}"
    );

    // A key calling a model it may not use: 401 before "unknown model".
    let generated: Value = reqwest::Client::new()
        .post(format!("{}/key/generate", gateway.url))
        .bearer_auth(MASTER)
        .json(&json!({"models": ["chat"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = generated["key"].as_str().unwrap();
    for model in ["other", "nope"] {
        let (status, body) = chat(&gateway, key, hi(model, json!({}))).await;
        assert_eq!(status, 401, "{body}");
        let e = error(status, &body);
        assert_eq!(
            (e["type"].as_str(), e["param"].as_str()),
            (Some("key_model_access_denied"), Some("model"))
        );
    }

    // Every attempt failed: the last upstream error, LiteLLM's class in front.
    mock.push(Script {
        status: Some(500),
        ..Script::default()
    });
    mock.push(Script {
        status: Some(500),
        ..Script::default()
    });
    let (status, body) = chat(&gateway, MASTER, hi("chat", json!({"num_retries": 1}))).await;
    assert_eq!(status, 500, "{body}");
    let e = error(status, &body);
    assert_eq!(message(e), "litellm.InternalServerError: scripted failure");
    assert_eq!(mock.requests().len(), 2);

    // Rate limited (LiteLLM's mock switch, no retry left).
    let (status, body) = chat(
        &gateway,
        MASTER,
        hi(
            "chat",
            json!({"mock_testing_rate_limit_error": true, "num_retries": 0}),
        ),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(
        message(error(status, &body)).starts_with("litellm.RateLimitError: "),
        "{body}"
    );

    // Context window and content policy, as the upstream said them.
    for (upstream, class) in [
        (
            json!({"error": {"message": "This model's maximum context length is 8192 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
            "ContextWindowExceededError",
        ),
        (
            json!({"error": {"message": "Your request was rejected by our safety system.", "type": "invalid_request_error", "param": null, "code": "content_policy_violation"}}),
            "ContentPolicyViolationError",
        ),
    ] {
        mock.push(Script {
            status: Some(400),
            body: Some(upstream.to_string()),
            ..Script::default()
        });
        let (status, body) = chat(&gateway, MASTER, hi("chat", json!({}))).await;
        assert_eq!(status, 400, "{body}");
        let e = error(status, &body);
        let said = upstream["error"]["message"].as_str().unwrap();
        assert_eq!(message(e), format!("litellm.{class}: {said}"));
        assert_eq!(e["type"], "invalid_request_error");
        assert_eq!(e["param"], upstream["error"]["param"]);
    }

    // A timeout is LiteLLM's 408 (the mock switch waits the request's timeout out, no call).
    mock.clear();
    let (status, body) = chat(
        &gateway,
        MASTER,
        hi(
            "chat",
            json!({"mock_timeout": true, "timeout": 0.05, "num_retries": 0}),
        ),
    )
    .await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(error(status, &body)["type"], "timeout");
    assert!(mock.requests().is_empty());
}
