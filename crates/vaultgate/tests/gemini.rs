//! `gemini/` end to end through the real binary: OpenAI chat (whole and streamed), tools,
//! embeddings and Anthropic-native clients, against the mock, which refuses any request without
//! the Google AI Studio key in `x-goog-api-key`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-gemini-90af";
const GEMINI_KEY: &str = "AIza-gemini-provider-secret-31";

fn start(mock: &MockUpstream) -> Gateway {
    let config = format!(
        r#"model_list:
  - model_name: flash
    litellm_params: {{model: gemini/gemini-2.0-flash, api_base: '{url}'}}
  - model_name: embed
    litellm_params: {{model: gemini/text-embedding-004, api_base: '{url}'}}
router_settings: {{num_retries: 0}}
general_settings:
  master_key: {MASTER}
"#,
        url = mock.url()
    );
    mock.require_key(Some(GEMINI_KEY));
    Gateway::builder(BIN, &config)
        .env("GEMINI_API_KEY", GEMINI_KEY)
        .rust_log("trace")
        .start()
        .unwrap()
}

async fn post(gateway: &Gateway, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", gateway.url))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn payloads(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// The upstream saw the AI Studio key in its header, and nowhere else.
fn assert_gemini_credentials(mock: &MockUpstream) {
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.header("x-goog-api-key"), Some(GEMINI_KEY));
    assert_eq!(seen.header("authorization"), None);
    assert!(!seen.uri.contains(GEMINI_KEY), "the key is not in the URL");
    assert!(!format!("{:?}", seen.headers).contains(MASTER));
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_chat_is_served_by_generate_content() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&mock);
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "flash", "temperature": 0.2, "max_tokens": 64, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "flash");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        (
            &body["usage"]["prompt_tokens"],
            &body["usage"]["completion_tokens"]
        ),
        (&json!(5), &json!(7))
    );
    assert_gemini_credentials(&mock);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(
        seen.body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(
        seen.body["contents"],
        json!([{"role": "user", "parts": [{"text": "hi"}]}])
    );
    assert_eq!(
        seen.body["generationConfig"],
        json!({"temperature": 0.2, "maxOutputTokens": 64})
    );
    assert!(
        !gateway.logs().contains(GEMINI_KEY),
        "the key reached the trace logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_tools_and_errors() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&mock);

    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "flash", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks = payloads(&text);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello from the mock upstream.");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 12);
    assert_gemini_credentials(&mock);
    assert_eq!(
        mock.last_request().unwrap().uri,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );

    // A streamed function call.
    mock.push(Script {
        stream: Some(vec![
            json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 5}})
            .to_string(),
        ]),
        ..Script::default()
    });
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "flash", "stream": true, "tools": tools, "tool_choice": "required",
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
    )
    .await;
    let chunks = payloads(&response.text().await.unwrap());
    let call = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
        .unwrap();
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "usage the client did not ask for"
    );
    let seen = mock.last_request().unwrap();
    assert_eq!(
        seen.body["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    assert_eq!(
        seen.body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );

    // Google's errors reach OpenAI clients in OpenAI's shape, with Google's status.
    mock.push(Script {
        status: Some(429),
        body: Some(
            json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}})
                .to_string(),
        ),
        ..Script::default()
    });
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "flash", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "litellm.RateLimitError: Resource has been exhausted (e.g. check quota)."
    );
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // The mock refuses a wrong key: proof that it checks the one it gets.
    mock.require_key(Some("another-key"));
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "flash", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_clients_and_embeddings_reach_gemini() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&mock);
    let messages = |body: Value| {
        reqwest::Client::new()
            .post(format!("{}/v1/messages", gateway.url))
            .header("x-api-key", MASTER)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
    };
    let response = messages(
        json!({"model": "flash", "max_tokens": 100, "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0]["text"], "Hello from the mock upstream.");
    assert_eq!(body["usage"]["output_tokens"], 7);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.body["generationConfig"]["maxOutputTokens"], 100);
    assert_eq!(
        seen.body["systemInstruction"]["parts"][0]["text"],
        "Be brief."
    );

    let response = messages(json!({"model": "flash", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]}))
    .await
    .unwrap();
    let text = response.text().await.unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"message_start"));
    assert_eq!(events.last(), Some(&"message_stop"));
    let streamed: String = payloads(&text)
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(streamed, "Hello from the mock upstream.");
    assert_gemini_credentials(&mock);

    let response = post(
        &gateway,
        "/v1/embeddings",
        json!({"model": "embed", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"][1]["embedding"], json!([0.5, -0.25, 0.125]));
    let seen = mock.last_request().unwrap();
    assert_eq!(
        seen.uri,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    assert_eq!(seen.body["requests"][1]["content"]["parts"][0]["text"], "b");
    assert_eq!(
        seen.body["requests"][0]["model"],
        "models/text-embedding-004"
    );
}
