//! Ollama through `ollama/` and `ollama_chat/`: its native `/api/chat`, `/api/generate` and
//! `/api/embed`, tools, JSON-lines streams turned into SSE.

use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

use super::{BIN, MASTER, post, sse_payloads, streamed_text};

fn ollama_gateway(mock: &MockUpstream) -> Gateway {
    let config = format!(
        r#"model_list:
  - model_name: llama-chat
    litellm_params: {{model: ollama_chat/llama3.1, api_base: '{url}'}}
  - model_name: llama-generate
    litellm_params: {{model: ollama/llama3.1}}
  - model_name: llama-embed
    litellm_params: {{model: ollama/nomic-embed-text, api_base: '{url}'}}
router_settings: {{num_retries: 0}}
general_settings:
  master_key: {MASTER}
environment_variables:
  OLLAMA_API_BASE: '{url}'
"#,
        url = mock.url()
    );
    Gateway::builder(BIN, &config).start().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_chat_speaks_api_chat_with_tools_and_json_lines_streams() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = ollama_gateway(&mock);
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-chat", "max_tokens": 50, "temperature": 0.1,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
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
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/api/chat");
    assert_eq!(seen.body["model"], "llama3.1");
    assert_eq!(seen.body["stream"], false);
    assert_eq!(seen.body["format"], "json");
    assert_eq!(
        seen.body["options"],
        json!({"num_predict": 50, "temperature": 0.1})
    );
    assert_eq!(
        seen.body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is this?", "images": ["iVBORw0KGgo="]},
        ])
    );

    // A tool call comes back with OpenAI's string arguments and an id; the tool result goes
    // back as a `tool` message.
    mock.push(Script {
        body: Some(json!({"model": "llama3.1", "done": true, "done_reason": "stop",
            "message": {"role": "assistant", "content": "",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            "prompt_eval_count": 20, "eval_count": 4}).to_string()),
        ..Script::default()
    });
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-chat", "tools": tools, "tool_choice": "auto",
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
    )
    .await;
    let body: Value = response.json().await.unwrap();
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
    assert!(call["id"].as_str().unwrap().starts_with("call"));
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.body["tools"], tools);
    assert!(seen.body.get("tool_choice").is_none());

    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-chat", "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let seen = mock.last_request().unwrap();
    assert_eq!(
        seen.body["messages"][1]["tool_calls"][0]["function"]["arguments"],
        json!({"city": "Paris"})
    );
    assert_eq!(
        seen.body["messages"][2],
        json!({"role": "tool", "content": "18C"})
    );

    // A JSON-lines stream becomes OpenAI chunks, with usage when asked for.
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-chat", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let chunks = sse_payloads(&response.text().await.unwrap());
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(streamed_text(&chunks), "Hello from the mock upstream.");
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| {
            c["choices"][0]
                .get("finish_reason")
                .filter(|f| !f.is_null())
        })
        .collect();
    assert_eq!(finish, [&json!("stop")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        (&usage["prompt_tokens"], &usage["completion_tokens"]),
        (&json!(5), &json!(7))
    );
    assert_eq!(mock.last_request().unwrap().body["stream"], true);

    // A stream cut before Ollama's `done` line ends with an error frame, not a silent stop.
    mock.push(Script {
        cut_after: Some(2),
        ..Script::default()
    });
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let chunks = sse_payloads(&response.text().await.unwrap());
    assert!(
        chunks.last().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before")
    );

    // Ollama's errors reach OpenAI clients in OpenAI's shape, with Ollama's status.
    mock.push(Script {
        status: Some(404),
        body: Some(
            json!({"error": "model \"llama3.1\" not found, try pulling it first"}).to_string(),
        ),
        ..Script::default()
    });
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-chat", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");

    // Anthropic-native clients reach it through the same translation.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", gateway.url))
        .header("x-api-key", MASTER)
        .json(&json!({"model": "llama-chat", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0]["text"], "Hello from the mock upstream.");
    assert_eq!(mock.last_request().unwrap().uri, "/api/chat");
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_writes_the_conversation_into_one_generate_prompt_and_embeds() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = ollama_gateway(&mock);
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-generate", "stop": "###", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Bye"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    let seen = mock.last_request().unwrap();
    assert_eq!(
        seen.uri, "/api/generate",
        "the base came from OLLAMA_API_BASE"
    );
    assert_eq!(
        seen.body["prompt"],
        "### System:\nBe brief.\n\n### User:\nHi\n\n### Assistant:\nHello.\n\n### User:\nBye\n\n"
    );
    assert_eq!(seen.body["options"]["stop"], json!(["###"]));

    // Streamed generate lines → chat chunks.
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-generate", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    let chunks = sse_payloads(&response.text().await.unwrap());
    assert_eq!(streamed_text(&chunks), "Hello from the mock upstream.");

    // Legacy completions → /api/generate → text_completion, streamed too.
    let response = post(
        &gateway,
        "/v1/completions",
        json!({"model": "llama-generate", "prompt": "Once upon"}),
    )
    .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["text"], "Hello from the mock upstream.");
    assert_eq!(mock.last_request().unwrap().body["prompt"], "Once upon");
    let response = post(
        &gateway,
        "/v1/completions",
        json!({"model": "llama-generate", "prompt": "Once upon", "stream": true}),
    )
    .await;
    let chunks = sse_payloads(&response.text().await.unwrap());
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello from the mock upstream.");
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));

    // Embeddings → /api/embed.
    let response = post(
        &gateway,
        "/v1/embeddings",
        json!({"model": "llama-embed", "input": ["a", "b"]}),
    )
    .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(body["data"][0]["embedding"], json!([0.5, -0.25, 0.125]));
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/api/embed");
    assert_eq!(
        seen.body,
        json!({"model": "nomic-embed-text", "input": ["a", "b"]})
    );
}
