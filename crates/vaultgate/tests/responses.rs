//! OpenAI's Responses API end to end against the real binary and the recording mock: passed
//! through to OpenAI and Azure deployments (ids that find the deployment again for retrieve,
//! delete, input items and `previous_response_id`), translated to chat for Anthropic ones,
//! streams, virtual keys, spend and spend logs, and errors in OpenAI's shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-responses-5e1a";
const OPENAI_KEY: &str = "sk-openai-provider-responses-77c1";
const AZURE_KEY: &str = "azure-provider-responses-0b3f";
const ANTHROPIC_KEY: &str = "sk-ant-provider-responses-c2d4";
const ANSWER: &str = "Hello from the mock upstream.";
/// 5 prompt tokens at 0.01 and 7 completion tokens at 0.02: the mock's usage.
const COST: f64 = 0.19;

/// Where a response id says the response lives: LiteLLM's layout, base64 (URL-safe here).
struct Decoded {
    provider: String,
    deployment: String,
    upstream: String,
}

fn decode_id(id: &str) -> Option<Decoded> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id.strip_prefix("resp_")?)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let rest = text.strip_prefix("litellm:custom_llm_provider:")?;
    let (provider, rest) = rest.split_once(";model_id:")?;
    let (deployment, upstream) = rest.split_once(";response_id:")?;
    Some(Decoded {
        provider: provider.to_owned(),
        deployment: deployment.to_owned(),
        upstream: upstream.to_owned(),
    })
}

fn start(mock: &MockUpstream, dir: &std::path::Path) -> Gateway {
    let upstream = mock.url();
    let config = format!(
        r#"
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{upstream}/v1', api_key: os.environ/TEST_OPENAI_KEY}}
    model_info: {{id: gpt-main, input_cost_per_token: 0.01, output_cost_per_token: 0.02}}
  - model_name: gpt-azure
    litellm_params: {{model: azure/my-deploy, api_base: '{upstream}', api_key: os.environ/TEST_AZURE_KEY}}
    model_info: {{id: azure-main}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: '{upstream}', api_key: os.environ/TEST_ANTHROPIC_KEY}}
    model_info: {{id: claude-main, input_cost_per_token: 0.01, output_cost_per_token: 0.02}}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER}
  database_url: "sqlite://{}/keys.db"
"#,
        dir.display()
    );
    Gateway::builder(BIN, &config)
        .env("TEST_OPENAI_KEY", OPENAI_KEY)
        .env("TEST_AZURE_KEY", AZURE_KEY)
        .env("TEST_ANTHROPIC_KEY", ANTHROPIC_KEY)
        .dir(dir)
        .start()
        .unwrap()
}

async fn send(
    gateway: &Gateway,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", gateway.url))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn post(gateway: &Gateway, key: &str, body: Value) -> (u16, Value) {
    let (status, _, text) = send(
        gateway,
        reqwest::Method::POST,
        "/v1/responses",
        key,
        Some(body),
    )
    .await;
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!(text)),
    )
}

async fn generate(gateway: &Gateway, body: Value) -> String {
    let (status, _, text) = send(
        gateway,
        reqwest::Method::POST,
        "/key/generate",
        MASTER,
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    body["key"].as_str().unwrap().to_owned()
}

async fn spend(gateway: &Gateway, key: &str) -> f64 {
    let path = format!("/key/info?key={key}");
    let (_, _, text) = send(gateway, reqwest::Method::GET, &path, MASTER, None).await;
    let info: Value = serde_json::from_str(&text).unwrap();
    info["info"]["spend"].as_f64().unwrap()
}

/// Waits (bounded) for a key's spend to reach `at_least`: streams are charged as they end.
async fn spend_reaches(gateway: &Gateway, key: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spent = spend(gateway, key).await;
        if spent >= at_least - 1e-9 || Instant::now() > deadline {
            return spent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A stream's events as (`event:` name, data), each name checked against the data's type.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split_terminator("\n\n")
        .map(|event| {
            let mut name = None;
            let mut data = None;
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                }
                if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(d).unwrap());
                }
            }
            let (name, data) = (name.unwrap(), data.unwrap());
            assert_eq!(data["type"], name.as_str(), "{event}");
            (name, data)
        })
        .collect()
}

fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .map(|(_, data)| data["delta"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_deployments_get_responses_passed_through_with_ids_that_find_them_again() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&mock, dir.path());
    let key = generate(&gateway, json!({"models": ["gpt", "claude"]})).await;

    let (status, headers, text) = send(
        &gateway,
        reqwest::Method::POST,
        "/responses",
        &key,
        Some(
            json!({"model": "gpt", "input": "hi", "metadata": {"app": "codex"},
            "litellm_metadata": {"tags": ["t"]}, "num_retries": 0}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["x-litellm-model-id"], "gpt-main");
    let created: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(created["object"], "response");
    assert_eq!(created["output"][0]["content"][0]["text"], ANSWER);
    let id = created["id"].as_str().unwrap().to_owned();
    let decoded = decode_id(&id).unwrap();
    assert_eq!(
        (decoded.provider.as_str(), decoded.deployment.as_str()),
        ("openai", "gpt-main")
    );
    let upstream_id = decoded.upstream;
    let seen = mock.last_request().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.uri.as_str()),
        ("POST", "/v1/responses")
    );
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(seen.body["model"], "gpt-4o-mini");
    // OpenAI's own `metadata` goes on; LiteLLM's params do not.
    assert_eq!(seen.body["metadata"], json!({"app": "codex"}));
    assert!(seen.body.get("litellm_metadata").is_none(), "{}", seen.body);
    assert!(seen.body.get("num_retries").is_none(), "{}", seen.body);
    assert!((spend_reaches(&gateway, &key, COST).await - COST).abs() < 1e-9);

    // A follow-up names the gateway's id; the upstream gets its own.
    let (status, follow_up) = post(
        &gateway,
        &key,
        json!({"model": "gpt", "input": "and then?", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 200, "{follow_up}");
    assert_eq!(
        mock.last_request().unwrap().body["previous_response_id"],
        upstream_id.as_str()
    );

    let path = format!("/v1/responses/{id}");
    let (status, _, text) = send(&gateway, reqwest::Method::GET, &path, &key, None).await;
    assert_eq!(status, 200, "{text}");
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["output"][0]["content"][0]["text"], ANSWER);
    let seen = mock.last_request().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.uri.as_str()),
        ("GET", format!("/v1/responses/{upstream_id}").as_str())
    );
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );

    let items = format!("/v1/responses/{id}/input_items?limit=5");
    let (status, _, text) = send(&gateway, reqwest::Method::GET, &items, &key, None).await;
    assert_eq!(status, 200, "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["data"][0]["content"][0]["text"], "hi");
    assert_eq!(
        mock.last_request().unwrap().uri,
        format!("/v1/responses/{upstream_id}/input_items?limit=5")
    );

    // A key that may not use the model may not read its responses.
    let other = generate(&gateway, json!({"models": ["claude"]})).await;
    let (status, _, text) = send(&gateway, reqwest::Method::GET, &path, &other, None).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("key_model_access_denied"), "{text}");

    let (status, _, text) = send(&gateway, reqwest::Method::DELETE, &path, &key, None).await;
    assert_eq!(status, 200, "{text}");
    let deleted: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(deleted["id"], id.as_str());
    assert_eq!(deleted["deleted"], true);
    let (status, _, text) = send(&gateway, reqwest::Method::GET, &path, &key, None).await;
    assert_eq!(status, 404, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert!(error["error"]["message"].is_string(), "{text}");
    assert_eq!(error["error"]["code"], "404");
    let (status, _, text) = send(
        &gateway,
        reqwest::Method::GET,
        "/v1/responses/resp_unknown1",
        &key,
        None,
    )
    .await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("resp_unknown1"), "{text}");

    // Streamed: every lifecycle event carries the gateway's id, and the stream is charged.
    let before = spend(&gateway, &key).await;
    let (status, headers, text) = send(
        &gateway,
        reqwest::Method::POST,
        "/v1/responses",
        &key,
        Some(json!({"model": "gpt", "input": "hi", "stream": true})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "text/event-stream");
    let events = events(&text);
    assert_eq!(events[0].0, "response.created");
    assert_eq!(events.last().unwrap().0, "response.completed");
    let stream_id = events[0].1["response"]["id"].as_str().unwrap();
    assert_eq!(decode_id(stream_id).unwrap().deployment, "gpt-main");
    assert_eq!(events.last().unwrap().1["response"]["id"], stream_id);
    assert_eq!(streamed_text(&events), ANSWER);
    let after = spend_reaches(&gateway, &key, before + COST).await;
    assert!((after - before - COST).abs() < 1e-9, "{before} → {after}");

    // Every request is in the spend logs under LiteLLM's call type.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, text) = send(&gateway, reqwest::Method::GET, "/spend/logs", MASTER, None).await;
        let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
        let responses: Vec<&Value> = rows
            .iter()
            .filter(|r| r["call_type"] == "aresponses")
            .collect();
        if responses.len() >= 3 || Instant::now() > deadline {
            assert_eq!(responses.len(), 3, "{text}");
            assert!(
                responses.iter().all(|r| r["model_id"] == "gpt-main"),
                "{text}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_deployments_get_the_responses_api_of_their_resource() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&mock, dir.path());
    let (status, created) = post(
        &gateway,
        MASTER,
        json!({"model": "gpt-azure", "input": "hi"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/openai/v1/responses?api-version=preview");
    assert_eq!(seen.header("api-key"), Some(AZURE_KEY));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.body["model"], "my-deploy");
    let id = created["id"].as_str().unwrap();
    assert_eq!(decode_id(id).unwrap().provider, "azure");
    let path = format!("/v1/responses/{id}");
    let (status, _, text) = send(&gateway, reqwest::Method::GET, &path, MASTER, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        mock.last_request().unwrap().uri,
        "/openai/v1/responses/resp_mock1?api-version=preview"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn other_deployments_get_responses_translated_to_chat_and_back() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&mock, dir.path());
    let key = generate(&gateway, json!({"models": ["claude"]})).await;
    let tools = json!([{"type": "function", "name": "look", "description": "Looks.",
        "parameters": {"type": "object", "properties": {"q": {"type": "integer"}}}}]);

    let (status, response) = post(
        &gateway,
        &key,
        json!({"model": "claude", "instructions": "Be brief.", "input": "hi",
            "max_output_tokens": 100, "tools": tools}),
    )
    .await;
    assert_eq!(status, 200, "{response}");
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(seen.body["model"], "claude-sonnet-4-5");
    assert_eq!(seen.body["system"], "Be brief.");
    assert_eq!(seen.body["max_tokens"], 100);
    assert_eq!(seen.body["messages"][0]["content"][0]["text"], "hi");
    assert_eq!(seen.body["tools"][0]["name"], "look");
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "claude");
    assert_eq!(response["instructions"], "Be brief.");
    assert_eq!(response["output"][0]["type"], "message");
    assert_eq!(response["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(response["output"][0]["content"][0]["text"], ANSWER);
    assert_eq!(response["usage"]["input_tokens"], 5);
    assert_eq!(response["usage"]["output_tokens"], 7);
    assert_eq!(response["usage"]["total_tokens"], 12);
    let id = response["id"].as_str().unwrap();
    assert_eq!(decode_id(id).unwrap().deployment, "claude-main");
    assert!((spend_reaches(&gateway, &key, COST).await - COST).abs() < 1e-9);

    // The model calls a tool; its result goes back as input items.
    mock.push(Script {
        body: Some(json!({"id": "msg_t", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": 1}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 7}}).to_string()),
        ..Script::default()
    });
    let (status, response) = post(
        &gateway,
        &key,
        json!({"model": "claude", "input": "look", "tools": tools, "tool_choice": "required"}),
    )
    .await;
    assert_eq!(status, 200, "{response}");
    let call = &response["output"][0];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["call_id"], "toolu_1");
    assert_eq!(call["name"], "look");
    assert_eq!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(),
        json!({"q": 1})
    );
    assert_eq!(
        mock.last_request().unwrap().body["tool_choice"],
        json!({"type": "any"})
    );
    let (status, response) = post(
        &gateway,
        &key,
        json!({"model": "claude", "tools": tools, "input": [
            {"role": "user", "content": "look"},
            {"type": "function_call", "call_id": "toolu_1", "name": "look", "arguments": "{\"q\":1}"},
            {"type": "function_call_output", "call_id": "toolu_1", "output": "a cat"}]}),
    )
    .await;
    assert_eq!(status, 200, "{response}");
    let seen = mock.last_request().unwrap();
    let messages = &seen.body["messages"];
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(messages[2]["content"][0]["tool_use_id"], "toolu_1");

    // Streamed: Responses events from Anthropic's stream, charged with Anthropic's usage.
    let before = spend(&gateway, &key).await;
    let (status, headers, text) = send(
        &gateway,
        reqwest::Method::POST,
        "/v1/responses",
        &key,
        Some(json!({"model": "claude", "input": "hi", "stream": true})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "text/event-stream");
    let events = events(&text);
    assert_eq!(events[0].0, "response.created");
    assert_eq!(streamed_text(&events), ANSWER);
    let (last, completed) = events.last().unwrap();
    assert_eq!(last, "response.completed");
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        ANSWER
    );
    assert_eq!(completed["response"]["usage"]["input_tokens"], 5);
    assert_eq!(completed["response"]["usage"]["output_tokens"], 7);
    let after = spend_reaches(&gateway, &key, before + COST).await;
    assert!((after - before - COST).abs() < 1e-9, "{before} → {after}");

    // Translated responses are stored by the gateway (see responses_stored.rs); an id it never
    // issued is OpenAI's "not found", and OpenAI's built-in tools are refused in its shape.
    let path = format!("/v1/responses/{id}");
    let (status, _, text) = send(&gateway, reqwest::Method::GET, &path, &key, None).await;
    assert_eq!(status, 200, "{text}");
    let (status, error) = post(
        &gateway,
        &key,
        json!({"model": "claude", "input": "hi", "previous_response_id": "resp_never_issued"}),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["param"], "previous_response_id");
    let (status, error) = post(
        &gateway,
        &key,
        json!({"model": "claude", "input": "hi", "tools": [{"type": "web_search"}]}),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["param"], "tools[0]");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_come_back_in_openais_shape() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&mock, dir.path());
    mock.push(Script {
        status: Some(429),
        ..Script::default()
    });
    let (status, error) = post(&gateway, MASTER, json!({"model": "gpt", "input": "hi"})).await;
    assert_eq!(status, 429, "{error}");
    assert_eq!(error["error"]["code"], "429");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("litellm.RateLimitError"),
        "{error}"
    );
    let (status, error) = post(&gateway, MASTER, json!({"model": "nope", "input": "hi"})).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["param"], "model");
    let (status, error) = post(
        &gateway,
        "sk-not-a-key",
        json!({"model": "gpt", "input": "hi"}),
    )
    .await;
    assert_eq!(status, 401, "{error}");
    assert!(error["error"]["message"].is_string(), "{error}");
    // An upstream that breaks off mid-stream: the client sees an error event, not a cut.
    mock.push(Script {
        stream: Some(vec![
            json!({"type": "response.created", "sequence_number": 0,
                "response": {"id": "resp_cut", "object": "response", "status": "in_progress", "output": []}})
            .to_string(),
            json!({"type": "response.output_text.delta", "sequence_number": 1, "item_id": "m",
                "output_index": 0, "content_index": 0, "delta": "Hel"})
            .to_string(),
        ]),
        ..Script::default()
    });
    let (status, _, text) = send(
        &gateway,
        reqwest::Method::POST,
        "/v1/responses",
        MASTER,
        Some(json!({"model": "gpt", "input": "hi", "stream": true})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let events = events(&text);
    assert_eq!(events.last().unwrap().0, "error", "{text}");
}
