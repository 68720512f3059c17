//! A config LiteLLM starts on starts here too: LiteLLM's own example proxy config (as a
//! fixture, upstreams pointed at the mock) starts, serves its OpenAI-compatible models and
//! wildcard routes, and answers for the deployments vaultgate cannot call with a 501 naming the
//! provider. Aliases, LiteLLM's fallback settings and `mock_timeout` work as LiteLLM's do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
/// The example's master key, written in the file as LiteLLM's is.
const MASTER: &str = "sk-1234";

fn example_config(base: &str) -> String {
    include_str!("fixtures/litellm_example_config.yaml").replace("{BASE}", base)
}

fn start(config: &str) -> Gateway {
    Gateway::builder(BIN, config)
        .env("OPENAI_API_KEY", "sk-openai-example-1")
        .env("AZURE_API_KEY", "azure-example-key")
        .env("ANTHROPIC_API_KEY", "sk-ant-example")
        .env("GROQ_API_KEY", "gsk-example")
        .start()
        .unwrap()
}

async fn call(
    gateway: &Gateway,
    path: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", gateway.url))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn chat(gateway: &Gateway, model: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    call(
        gateway,
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn litellms_example_config_starts_and_serves_its_openai_compatible_models() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&example_config(&mock.url()));
    let logs = gateway.logs();
    assert!(
        logs.contains("deployment unavailable")
            && logs.contains("sagemaker-completion-model")
            && logs.contains("sagemaker"),
        "{logs}"
    );

    // OpenAI and Azure deployments, by name.
    for (model, upstream_path) in [
        ("fake-openai-endpoint", "/v1/chat/completions"),
        (
            "gpt-3.5-turbo",
            "/openai/deployments/chatgpt-v-2/chat/completions",
        ),
        ("gpt-3.5-turbo-large", "/v1/chat/completions"),
    ] {
        mock.clear();
        let (status, headers, body) = chat(&gateway, model).await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "Hello from the mock upstream."
        );
        assert_eq!(headers["x-litellm-model-group"], model);
        let seen = mock.last_request().unwrap();
        assert_eq!(
            seen.uri.split('?').next().unwrap(),
            upstream_path,
            "{model}"
        );
    }
    let (status, _, body) = call(
        &gateway,
        "/v1/embeddings",
        json!({"model": "text-embedding-ada-002", "input": "hello"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The alias serves its group.
    mock.clear();
    let (status, headers, _) = chat(&gateway, "my-special-fake-model-alias-name").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-litellm-model-group"], "fake-openai-endpoint-3");
    let upstream = mock.last_request().unwrap().body["model"].clone();
    assert!(
        upstream == "my-fake-model" || upstream == "my-fake-model-2",
        "{upstream}"
    );

    // `*` takes any other name, `anthropic/*` the Anthropic ones (and speaks Anthropic).
    mock.clear();
    let (status, headers, _) = chat(&gateway, "gpt-4o-mini").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-litellm-model-group"], "gpt-4o-mini");
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.body["model"], "gpt-4o-mini");
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer sk-openai-example-1")
    );
    mock.clear();
    let (status, _, body) = chat(&gateway, "anthropic/claude-3-5-haiku").await;
    assert_eq!(status, 200, "{body}");
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/v1/messages");
    assert_eq!(seen.body["model"], "claude-3-5-haiku");
    assert_eq!(seen.header("x-api-key"), Some("sk-ant-example"));

    // What vaultgate cannot call: 501 naming the provider; nothing reaches an upstream.
    mock.clear();
    for (model, provider) in [
        ("sagemaker-completion-model", "sagemaker"),
        ("dall-e-2", "azure"),
    ] {
        let (status, _, body) = chat(&gateway, model).await;
        assert_eq!(status, 501, "{model}: {body}");
        assert_eq!(body["error"]["type"], "not_implemented_error", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(model) && message.contains(provider),
            "{message}"
        );
    }
    assert!(mock.requests().is_empty());

    // The OpenAI-compatible prefixes of the example serve with their defaults: groq/* with its
    // key, mistral/ (base already ending in /v1), text-completion-openai/ through /completions.
    for (model, path, upstream_model) in [
        (
            "groq/llama-3.1-8b-instant",
            "/v1/chat/completions",
            "llama-3.1-8b-instant",
        ),
        ("mistral-embed", "/v1/chat/completions", "mistral-embed"),
        ("gpt-instruct", "/v1/completions", "gpt-3.5-turbo-instruct"),
    ] {
        mock.clear();
        let (status, _, body) = chat(&gateway, model).await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(
            body["choices"][0]["message"]["content"], "Hello from the mock upstream.",
            "{model}"
        );
        let seen = mock.last_request().unwrap();
        assert_eq!(
            (seen.uri.as_str(), &seen.body["model"]),
            (path, &json!(upstream_model))
        );
    }
    assert_eq!(
        mock.last_request().unwrap().body["prompt"],
        "hi",
        "chat became a prompt"
    );
    mock.clear();
    let (status, _, _) = chat(&gateway, "groq/llama-3.1-8b-instant").await;
    assert_eq!(status, 200);
    assert_eq!(
        mock.last_request().unwrap().header("authorization"),
        Some("Bearer gsk-example")
    );
    let (status, _, body) = call(
        &gateway,
        "/v1/embeddings",
        json!({"model": "mistral-embed", "input": "hello"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mock.last_request().unwrap().uri, "/v1/embeddings");

    // `mock_timeout: true`: every try waits out the 0.2 s timeout, none reaches the mock.
    mock.clear();
    let (status, headers, body) = chat(&gateway, "bad-model").await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(headers["x-litellm-max-retries"], "5");
    assert_eq!(headers["x-litellm-attempted-retries"], "5");
    assert_eq!(headers["x-litellm-timeout"], "0.2");
    assert!(mock.requests().is_empty());

    // /v1/models lists the configured names, wildcard routes and the alias.
    let models: Value = reqwest::Client::new()
        .get(format!("{}/v1/models", gateway.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in [
        "gpt-3.5-turbo",
        "*",
        "anthropic/*",
        "my-special-fake-model-alias-name",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn context_window_fallbacks_in_litellm_settings_are_followed() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&example_config(&mock.url()));
    mock.push(Script {
        status: Some(400),
        body: Some(
            json!({"error": {"message": "This model's maximum context length is 4097 tokens",
                "type": "invalid_request_error", "code": "context_length_exceeded"}})
            .to_string(),
        ),
        ..Script::default()
    });
    let (status, headers, body) = chat(&gateway, "gpt-3.5-turbo").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-litellm-model-group"], "gpt-3.5-turbo-large");
    assert_eq!(headers["x-litellm-attempted-fallbacks"], "1");
    let calls = mock.requests();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].body["model"], "gpt-3.5-turbo-1106");
}
