//! Anthropic end to end: OpenAI clients served by `anthropic/` deployments, and Anthropic-native
//! clients (`POST /v1/messages`) served by Anthropic and OpenAI deployments, against the
//! recording mock upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-anthropic-2b9d";
const ANTHROPIC_KEY: &str = "sk-ant-provider-secret-41c7";
const OPENAI_KEY: &str = "sk-openai-provider-secret-9e03";

fn start(upstream: &str, extra: &str) -> Gateway {
    let config = format!(
        r#"
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: {upstream}
      api_key: os.environ/TEST_ANTHROPIC_KEY
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {upstream}/v1
      api_key: os.environ/TEST_OPENAI_KEY
router_settings:
  num_retries: 0
{extra}
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
"#
    );
    Gateway::builder(BIN, &config)
        .env("TEST_ANTHROPIC_KEY", ANTHROPIC_KEY)
        .env("TEST_OPENAI_KEY", OPENAI_KEY)
        .env("TEST_MASTER_KEY", MASTER)
        .start()
        .unwrap()
}

async fn chat(gateway: &Gateway, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// An Anthropic SDK call: the gateway key as `x-api-key`, plus protocol headers.
async fn messages(gateway: &Gateway, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/messages", gateway.url))
        .header("x-api-key", MASTER)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "tools-2024-05-16")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The `data:` payloads of an SSE body.
fn data_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect()
}

/// Checks the upstream saw the provider key and never the client's.
fn assert_anthropic_credentials(mock: &MockUpstream) {
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen.header("authorization"), None);
    assert!(!format!("{:?}", seen.headers).contains(MASTER));
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_completions_are_translated_to_anthropic_messages_and_back() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&mock.url(), "");
    let response = chat(
        &gateway,
        json!({"model": "claude", "temperature": 0.2, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
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

    assert_anthropic_credentials(&mock);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.body["model"], "claude-sonnet-4-5");
    assert_eq!(seen.body["system"], "Be brief.");
    assert_eq!(seen.body["messages"][0]["role"], "user");
    assert_eq!(seen.body["messages"][0]["content"][0]["text"], "hi");
    assert_eq!(seen.body["temperature"], 0.2);
    assert!(seen.body["max_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_streams_become_openai_chunks_with_tool_calls() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&mock.url(), "");

    // Plain text, from the mock's default Anthropic stream.
    let response = chat(
        &gateway,
        json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let mut content = String::new();
    for data in data_lines(&text) {
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk", "{data}");
        assert_eq!(chunk["model"], "claude");
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            content.push_str(piece);
        }
    }
    assert_eq!(content, "Hello from the mock upstream.");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(
        !text.contains("\"usage\""),
        "usage chunk the client did not ask for: {text}"
    );
    assert_anthropic_credentials(&mock);
    assert_eq!(mock.last_request().unwrap().body["stream"], true);

    // A tool call, with its arguments arriving in pieces.
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": " \"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ];
    mock.push(Script {
        stream: Some(events.iter().map(Value::to_string).collect()),
        ..Script::default()
    });
    let response = chat(
        &gateway,
        json!({"model": "claude", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "weather in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let chunks: Vec<Value> = data_lines(&text)
        .into_iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let mut name = None;
    let mut arguments = String::new();
    let mut finish = None;
    let mut usage = None;
    for chunk in &chunks {
        if let Some(call) = chunk["choices"][0]["delta"]["tool_calls"].get(0) {
            assert_eq!(call["index"], 0);
            if let Some(n) = call["function"]["name"].as_str() {
                name = Some(n.to_owned());
                assert_eq!(call["id"], "toolu_01");
            }
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
        if let Some(reason) = chunk["choices"][0]["finish_reason"].as_str() {
            finish = Some(reason.to_owned());
        }
        if chunk["usage"].is_object() {
            usage = Some(chunk["usage"].clone());
        }
    }
    assert_eq!(name.as_deref(), Some("get_weather"));
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let usage = usage.expect("the client asked for usage");
    assert_eq!(
        (
            usage["prompt_tokens"].as_u64(),
            usage["completion_tokens"].as_u64()
        ),
        (Some(12), Some(9))
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.body["tools"][0]["name"], "get_weather");
    assert!(seen.body["tools"][0]["input_schema"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_errors_reach_openai_clients_in_openai_shape() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&mock.url(), "  allowed_fails: 100\n");
    let cases = [
        (529, "overloaded_error", "Overloaded"),
        (
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        ),
        (
            400,
            "invalid_request_error",
            "messages: roles must alternate",
        ),
        (401, "authentication_error", "invalid x-api-key"),
    ];
    for (status, kind, message) in cases {
        mock.push(Script {
            status: Some(status),
            body: Some(
                json!({"type": "error", "error": {"type": kind, "message": message}}).to_string(),
            ),
            ..Script::default()
        });
        let response = chat(
            &gateway,
            json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        let said = body["error"]["message"].as_str().unwrap();
        assert!(
            said.starts_with("litellm.") && said.ends_with(&format!(": {message}")),
            "{body}"
        );
        assert_eq!(body["error"]["type"], kind);
        assert_eq!(body["error"]["code"], status.to_string());
        assert!(body.get("type").is_none(), "Anthropic shape leaked: {body}");
    }

    // An error before the first byte of a stream is an HTTP error, not a broken stream.
    mock.push(Script {
        status: Some(529),
        body: Some(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).to_string()),
        ..Script::default()
    });
    let response = chat(
        &gateway,
        json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 529);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["type"],
        "overloaded_error"
    );

    // Nor is a 200 whose stream opens with an `error` event (Anthropic under load).
    let opened_with_error = || Script {
        stream: Some(vec![
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                .to_string(),
        ]),
        ..Script::default()
    };
    mock.push(opened_with_error());
    let response = chat(
        &gateway,
        json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 529);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (
            body["error"]["type"].as_str(),
            body["error"]["message"].as_str()
        ),
        (
            Some("overloaded_error"),
            Some("litellm.APIError: Overloaded")
        )
    );
    // An Anthropic-native client gets Anthropic's own error body.
    mock.push(opened_with_error());
    let response = messages(
        &gateway,
        json!({"model": "claude", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 529);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "overloaded_error");
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_params_are_refused_unless_drop_params() {
    let mock = MockUpstream::start().await.unwrap();
    let request = json!({"model": "claude", "logit_bias": {"50256": -100}, "messages": [{"role": "user", "content": "hi"}]});
    let gateway = start(&mock.url(), "");
    let response = chat(&gateway, request.clone()).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "logit_bias");
    assert!(
        mock.requests().is_empty(),
        "a refused request reached the upstream"
    );
    drop(gateway);

    let gateway = start(&mock.url(), "litellm_settings:\n  drop_params: true\n");
    let response = chat(&gateway, request).await;
    assert_eq!(response.status(), 200);
    assert!(
        mock.last_request()
            .unwrap()
            .body
            .get("logit_bias")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn native_messages_pass_through_to_anthropic_deployments() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&mock.url(), "");
    let request = json!({"model": "claude", "max_tokens": 256, "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "top_k": 5});
    let response = messages(&gateway, request.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-vaultgate-model-id"], "claude-0");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0]["text"], "Hello from the mock upstream.");
    assert_anthropic_credentials(&mock);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.header("anthropic-beta"), Some("tools-2024-05-16"));
    // Unchanged but for the model name: Anthropic-only fields survive.
    let mut expected = request.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(seen.body, expected);

    // Streaming passes the events through as they are.
    let mut stream_request = request.clone();
    stream_request["stream"] = json!(true);
    let response = messages(&gateway, stream_request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(text.contains("\"text_delta\""), "{text}");
    assert!(
        text.trim_end().ends_with("{\"type\":\"message_stop\"}"),
        "{text}"
    );
    assert_anthropic_credentials(&mock);

    // Anthropic's own errors reach native clients unchanged.
    let overloaded =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    mock.push(Script {
        status: Some(529),
        body: Some(overloaded.to_string()),
        ..Script::default()
    });
    let response = messages(&gateway, request).await;
    assert_eq!(response.status().as_u16(), 529);
    assert_eq!(response.headers()["x-vaultgate-model-id"], "claude-0");
    assert_eq!(response.headers()["x-vaultgate-attempts"], "1");
    assert_eq!(response.json::<Value>().await.unwrap(), overloaded);

    // Without the gateway key: an Anthropic-shaped 401.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", gateway.url))
        .header("x-api-key", "sk-wrong")
        .json(&json!({"model": "claude", "max_tokens": 5, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
}

#[tokio::test(flavor = "multi_thread")]
async fn native_messages_are_translated_for_openai_deployments() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&mock.url(), "");
    let request = json!({"model": "gpt", "max_tokens": 100, "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}]});
    let response = messages(&gateway, request.clone()).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "gpt");
    assert_eq!(body["content"][0]["type"], "text");
    assert_eq!(body["content"][0]["text"], "Hello from the mock upstream.");
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"]["input_tokens"], 5);
    assert_eq!(body["usage"]["output_tokens"], 7);

    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/v1/chat/completions");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(seen.header("x-api-key"), None);
    assert!(!format!("{:?}", seen.headers).contains(MASTER));
    assert_eq!(seen.body["model"], "gpt-4o-mini");
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    );

    // Streaming: OpenAI chunks become Anthropic events.
    let mut stream_request = request.clone();
    stream_request["stream"] = json!(true);
    let response = messages(&gateway, stream_request).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let events: Vec<Value> = data_lines(&text)
        .into_iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"message_start"), "{text}");
    assert_eq!(kinds.last(), Some(&"message_stop"), "{text}");
    let streamed: String = events
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(streamed, "Hello from the mock upstream.");
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 7);
    assert_eq!(
        mock.last_request().unwrap().body["stream_options"]["include_usage"],
        true
    );

    // OpenAI errors are reshaped for the Anthropic client.
    mock.push(Script {
        status: Some(429),
        ..Script::default()
    });
    let response = messages(&gateway, request).await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["message"], "scripted failure");
}
