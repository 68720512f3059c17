//! LiteLLM's request-level params end to end: the real binary reads the ones it implements
//! (per-request fallbacks, num_retries, timeout, mock_response, the mock_testing switches,
//! drop_params / additional_drop_params) and sends none of them upstream. The mock upstream
//! refuses any of them as a strict provider would, and the recorded bodies are checked whole.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-params-81d2";

fn start(mock: &MockUpstream) -> Gateway {
    let base = mock.url();
    let config = format!(
        "model_list:
  - model_name: primary
    litellm_params: {{model: openai/primary-up, api_base: '{base}/v1', api_key: k}}
    model_info: {{id: primary-1}}
  - model_name: backup
    litellm_params: {{model: openai/backup-up, api_base: '{base}/v1', api_key: k}}
    model_info: {{id: backup-1}}
  - model_name: strict
    litellm_params: {{model: openai/strict-up, api_base: '{base}/v1', api_key: k, additional_drop_params: [temperature]}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-up, api_base: '{base}', api_key: k}}
general_settings:
  master_key: {MASTER}
"
    );
    Gateway::builder(BIN, &config).start().unwrap()
}

async fn post(
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
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

fn messages() -> Value {
    json!([{"role": "user", "content": "hi"}])
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The top-level member names the upstream received, sorted.
fn sent_keys(mock: &MockUpstream) -> Vec<String> {
    let body = mock.last_request().unwrap().body;
    let mut keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn litellm_params_are_honoured_and_never_reach_the_provider() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&mock);

    // Every kind of LiteLLM-only param, on a plain and on a streaming request.
    for stream in [false, true] {
        mock.clear();
        let (status, _, body) = post(
            &gateway,
            "/v1/chat/completions",
            json!({
                "model": "primary", "messages": messages(), "temperature": 0.3, "stream": stream,
                "metadata": {"tags": ["a"], "trace_user_id": "u"}, "tags": ["b"],
                "litellm_trace_id": "t-1", "litellm_session_id": "s-1", "caching": true,
                "cache": {"no-cache": true}, "guardrails": ["g"], "num_retries": 1,
                "timeout": 30, "request_timeout": 30, "fallbacks": ["backup"],
                "disable_fallbacks": false, "mock_testing_rate_limit_error": false,
                "drop_params": false, "additional_drop_params": [],
            }),
        )
        .await;
        assert_eq!(status, 200, "stream={stream}: {body}");
        assert_eq!(mock.requests().len(), 1);
        // The master key tracks no spend, so no `stream_options` is added either.
        assert_eq!(
            sent_keys(&mock),
            ["messages", "model", "stream", "temperature"],
            "stream={stream}"
        );
    }

    // Client-side credentials are refused before anything is sent.
    mock.clear();
    for name in ["api_base", "base_url", "api_key", "user_config"] {
        let (status, _, body) = post(
            &gateway,
            "/v1/chat/completions",
            json!({"model": "primary", "messages": messages(), name: "http://elsewhere"}),
        )
        .await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error"]["param"], name, "{body}");
    }
    assert!(mock.requests().is_empty());

    // A wrongly typed router param is the client's error, named.
    let (status, _, body) = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "primary", "messages": messages(), "num_retries": "many"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "num_retries");
}

#[tokio::test(flavor = "multi_thread")]
async fn per_request_routing_mocks_and_drops() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&mock);

    // mock_response answers without calling the upstream.
    let (status, headers, body) = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "primary", "messages": messages(), "mock_response": "mocked hello"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "mocked hello");
    assert_eq!(header(&headers, "x-litellm-model-id"), "primary-1");
    assert!(mock.requests().is_empty());

    // LiteLLM's error names as mock_response fail as that error (no retry asked: one attempt).
    let (status, _, body) = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "primary", "messages": messages(), "mock_response": "litellm.RateLimitError", "num_retries": 0}),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(mock.requests().is_empty());

    // Per-request fallbacks with mock_testing_fallbacks: the requested group fails without a
    // call, the client's fallback serves.
    let (status, headers, body) = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "primary", "messages": messages(), "fallbacks": ["backup"], "mock_testing_fallbacks": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-litellm-model-id"), "backup-1");
    assert_eq!(header(&headers, "x-litellm-attempted-fallbacks"), "1");
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(mock.last_request().unwrap().body["model"], "backup-up");

    // Per-request num_retries: two upstream failures, the third attempt serves.
    mock.clear();
    mock.push(Script {
        status: Some(500),
        ..Script::default()
    });
    mock.push(Script {
        status: Some(500),
        ..Script::default()
    });
    let (status, headers, body) = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "primary", "messages": messages(), "num_retries": 2}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-litellm-attempted-retries"), "2");
    assert_eq!(header(&headers, "x-litellm-max-retries"), "2");
    assert_eq!(mock.requests().len(), 3);

    // Per-request timeout bounds the attempt and is reported back.
    let (status, headers, body) = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "primary", "messages": messages(), "timeout": 7.5}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-litellm-timeout"), "7.5");

    // The deployment's additional_drop_params, and the request's own.
    mock.clear();
    let (status, _, body) = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "strict", "messages": messages(), "temperature": 0.1, "seed": 4, "additional_drop_params": ["seed"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sent_keys(&mock), ["messages", "model"]);

    // Anthropic's own `metadata` passes on /v1/messages; LiteLLM's params do not.
    mock.clear();
    let (status, _, body) = post(
        &gateway,
        "/v1/messages",
        json!({"model": "claude", "max_tokens": 16, "messages": messages(), "metadata": {"user_id": "u-1"}, "tags": ["x"], "num_retries": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sent_keys(&mock),
        ["max_tokens", "messages", "metadata", "model"]
    );
    assert_eq!(
        mock.last_request().unwrap().body["metadata"]["user_id"],
        "u-1"
    );
}
