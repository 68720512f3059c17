//! The foundation end to end: the real binary in front of the recording mock upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

#[path = "proxy/errors.rs"]
mod errors;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-test-4f1d9c";
const PROVIDER_KEY: &str = "sk-provider-secret-8b2e7a";

fn config(upstream: &str, extra_models: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-test
    litellm_params:
      model: openai/real-model
      api_base: {upstream}/v1
      api_key: os.environ/TEST_PROVIDER_KEY
      timeout: 2
{extra_models}
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
  max_request_size_mb: 0.01
"#
    )
}

/// One serving thread here (`--num_workers 1`); the other suites run with the default.
fn start(config: &str) -> Gateway {
    Gateway::builder(BIN, config)
        .env("TEST_PROVIDER_KEY", PROVIDER_KEY)
        .env("TEST_MASTER_KEY", MASTER)
        .arg("--num_workers")
        .arg("1")
        .start()
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(gateway: &Gateway, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", gateway.url))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_is_forwarded_with_the_provider_key_and_upstream_model() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&config(&mock.url(), ""));
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.headers()["x-vaultgate-model-id"], "gpt-test-0");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );

    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/v1/chat/completions");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(seen.body["model"], "real-model");
    assert_eq!(seen.body["temperature"], 0.5);
    assert_eq!(seen.body["messages"][0]["content"], "hi");
    // The client's credentials never reach the upstream.
    assert!(!format!("{:?}", seen.headers).contains(MASTER));

    // The same without the /v1 prefix, and the other endpoints.
    let response = post(
        &gateway,
        "/chat/completions",
        json!({"model": "gpt-test", "messages": []}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = post(
        &gateway,
        "/v1/embeddings",
        json!({"model": "gpt-test", "input": "x"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(mock.last_request().unwrap().uri, "/v1/embeddings");
    let response = post(
        &gateway,
        "/completions",
        json!({"model": "gpt-test", "prompt": "x"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(mock.last_request().unwrap().uri, "/v1/completions");
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_pass_through_chunk_by_chunk() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&config(&mock.url(), ""));
    let frames: Vec<String> = (0..3)
        .map(|i| json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": format!("w{i} ")}}]}).to_string())
        .chain(["[DONE]".to_owned()])
        .collect();
    mock.push(Script {
        stream: Some(frames),
        chunk_delay: Duration::from_millis(700),
        ..Script::default()
    });
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "gpt-test", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    // Had the gateway buffered, the first piece would hold every frame.
    let first = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert_eq!(first.matches("data:").count(), 1, "{first}");
    assert!(first.contains("w0"));
    let mut rest = String::new();
    while let Some(chunk) = body.next().await {
        rest.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(
        rest.contains("w1") && rest.contains("w2") && rest.ends_with("data: [DONE]\n\n"),
        "{rest}"
    );
    // Nobody's spend is tracked for the master key: the upstream is not asked for usage.
    assert!(
        mock.last_request()
            .unwrap()
            .body
            .get("stream_options")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_cancels_the_upstream_stream() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&config(&mock.url(), ""));
    let frames: Vec<String> = (0..50)
        .map(|i| json!({"choices": [{"delta": {"content": i.to_string()}}]}).to_string())
        .collect();
    mock.push(Script {
        stream: Some(frames),
        chunk_delay: Duration::from_millis(200),
        ..Script::default()
    });
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "gpt-test", "stream": true, "messages": []}),
    )
    .await;
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    for _ in 0..100 {
        if mock.streams_cancelled() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the upstream stream was not cancelled after the client went away");
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_deployments_get_azure_urls_and_headers() {
    let mock = MockUpstream::start().await.unwrap();
    let models = format!(
        r#"  - model_name: azure-gpt
    litellm_params:
      model: azure/my-deployment
      api_base: {}/
      api_key: os.environ/TEST_PROVIDER_KEY
      api_version: "2024-02-01"
"#,
        mock.url()
    );
    let gateway = start(&config(&mock.url(), &models));
    for (path, upstream) in [
        ("/v1/chat/completions", "chat/completions"),
        ("/v1/embeddings", "embeddings"),
        ("/v1/completions", "completions"),
    ] {
        let response = post(
            &gateway,
            path,
            json!({"model": "azure-gpt", "messages": [], "input": "x", "prompt": "x"}),
        )
        .await;
        assert_eq!(response.status(), 200);
        let seen = mock.last_request().unwrap();
        assert_eq!(
            seen.uri,
            format!("/openai/deployments/my-deployment/{upstream}?api-version=2024-02-01")
        );
        assert_eq!(seen.header("api-key"), Some(PROVIDER_KEY));
        assert_eq!(seen.header("authorization"), None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deployments_of_one_model_take_turns() {
    let first = MockUpstream::start().await.unwrap();
    let second = MockUpstream::start().await.unwrap();
    let models = format!(
        // Strict turns are opt-in (the default is LiteLLM's random simple-shuffle).
        "  - model_name: gpt-test\n    litellm_params: {{model: openai/other, api_base: '{}/v1', api_key: os.environ/TEST_PROVIDER_KEY}}\nrouter_settings: {{routing_strategy: round-robin}}\n",
        second.url()
    );
    let gateway = start(&config(&first.url(), &models));
    let mut ids = Vec::new();
    for _ in 0..6 {
        let response = post(
            &gateway,
            "/v1/chat/completions",
            json!({"model": "gpt-test", "messages": []}),
        )
        .await;
        assert_eq!(response.status(), 200);
        ids.push(
            response.headers()["x-vaultgate-model-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(first.requests().len(), 3);
    assert_eq!(second.requests().len(), 3);
    assert_eq!(second.last_request().unwrap().body["model"], "other");
    assert!(ids.windows(2).all(|pair| pair[0] != pair[1]), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mock_response_answers_offline_streaming_too() {
    let config = r#"
model_list:
  - model_name: demo
    litellm_params: {model: openai/demo, mock_response: "Hi from vaultgate"}
general_settings: {allow_unauthenticated: true}
"#;
    let gateway = Gateway::builder(BIN, config).start().unwrap();
    let response = client()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&json!({"model": "demo", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hi from vaultgate"
    );
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let text = client()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&json!({"model": "demo", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("\"Hi \"") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    assert!(
        !text.contains("\"usage\""),
        "usage chunk shown to a client that did not ask: {text}"
    );
    assert!(gateway.logs().contains("UNAUTHENTICATED"));
}

/// The model routes are dispatched before axum's router (for speed); every other way in must
/// still answer as the router does.
#[tokio::test(flavor = "multi_thread")]
async fn model_routes_answer_on_every_path_and_refuse_other_methods() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&config(&mock.url(), ""));
    let chat = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]});
    let prompt = json!({"model": "gpt-test", "prompt": "hi"});
    let input = json!({"model": "gpt-test", "input": "hi"});
    for (path, body, upstream) in [
        ("/v1/chat/completions", &chat, "/v1/chat/completions"),
        ("/chat/completions", &chat, "/v1/chat/completions"),
        ("/v1/completions", &prompt, "/v1/completions"),
        ("/completions", &prompt, "/v1/completions"),
        ("/v1/embeddings", &input, "/v1/embeddings"),
        ("/embeddings", &input, "/v1/embeddings"),
    ] {
        let response = client()
            .post(format!("{}{path}", gateway.url))
            .bearer_auth(MASTER)
            .header("x-request-id", "req-dispatch-1")
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["x-request-id"],
            "req-dispatch-1",
            "{path}"
        );
        assert_eq!(
            response.headers()["x-litellm-call-id"],
            "req-dispatch-1",
            "{path}"
        );
        assert_eq!(mock.requests().last().unwrap().uri, upstream, "{path}");

        let response = client()
            .get(format!("{}{path}", gateway.url))
            .bearer_auth(MASTER)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "GET {path}");
        assert!(
            response.headers().contains_key("x-request-id"),
            "GET {path}"
        );
        assert_eq!(response.headers()["allow"], "POST", "GET {path}");
    }
    assert_eq!(mock.requests().len(), 6);
    // Not a model route: the router's 404, in OpenAI's shape.
    let (status, error) =
        error_of(post(&gateway, "/v1/chat/completions/", chat.clone()).await).await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(mock.requests().len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn models_health_and_metrics() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = start(&config(
        &mock.url(),
        "  - model_name: second\n    litellm_params: {model: openai/s, mock_response: ok}\n",
    ));
    let models: Value = client()
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
    assert_eq!(ids, ["gpt-test", "second"]);
    let response = client()
        .get(format!("{}/v1/models", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let readiness: Value = client()
        .get(format!("{}/health/readiness", gateway.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(readiness["status"], "healthy");
    assert_eq!(readiness["vault"]["status"], "disabled");
    assert_eq!(readiness["database"]["status"], "connected", "{readiness}");
    assert_eq!(readiness["database"]["backend"], "sqlite", "{readiness}");
    // LiteLLM's fields, as its clients read them.
    assert_eq!(readiness["db"], "connected", "{readiness}");
    assert_eq!(readiness["litellm_version"], env!("CARGO_PKG_VERSION"));
    assert!(readiness["cache"].is_null(), "{readiness}");
    assert_eq!(readiness["success_callbacks"], json!([]));
    assert_eq!(readiness["redis"]["status"], "disabled", "{readiness}");

    post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "gpt-test", "messages": []}),
    )
    .await;
    mock.push(Script {
        status: Some(500),
        ..Script::default()
    });
    post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "gpt-test", "messages": []}),
    )
    .await;
    let metrics = client()
        .get(format!("{}/metrics", gateway.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"vaultgate_requests_total{route="chat/completions",model="gpt-test",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"vaultgate_requests_total{route="chat/completions",model="gpt-test",status="500"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"vaultgate_upstream_errors_total{model="gpt-test",deployment="gpt-test-0",status="500"} 1"#), "{metrics}");
    assert!(
        metrics.contains("vaultgate_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstreams_behind_an_http_proxy_are_reached_through_it() {
    // The mock plays the proxy: a proxied request reaches it for a host that does not resolve;
    // NO_PROXY hosts are called directly.
    let mock = MockUpstream::start().await.unwrap();
    let models = format!(
        r#"  - model_name: direct
    litellm_params:
      model: openai/direct-model
      api_base: {}/v1
      api_key: os.environ/TEST_PROVIDER_KEY
"#,
        mock.url()
    );
    let gateway = Gateway::builder(BIN, &config("http://upstream.invalid", &models))
        .env("TEST_PROVIDER_KEY", PROVIDER_KEY)
        .env("TEST_MASTER_KEY", MASTER)
        .env("HTTP_PROXY", &mock.url())
        .env("NO_PROXY", "127.0.0.1")
        .start()
        .unwrap();
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});

    let response = post(&gateway, "/v1/chat/completions", chat("gpt-test")).await;
    assert_eq!(response.status(), 200);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/v1/chat/completions");
    assert_eq!(seen.header("host"), Some("upstream.invalid"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(seen.body["model"], "real-model");

    let response = post(&gateway, "/v1/chat/completions", chat("direct")).await;
    assert_eq!(response.status(), 200);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/v1/chat/completions");
    assert_ne!(seen.header("host"), Some("upstream.invalid"));
    assert_eq!(seen.body["model"], "direct-model");
}

#[tokio::test(flavor = "multi_thread")]
async fn https_upstreams_are_verified_against_the_trusted_roots() {
    // OpenBao's -dev-tls server plays an HTTPS upstream whose CA only SSL_CERT_FILE trusts.
    let bao = vaultgate_testkit::openbao::OpenBao::start_tls().unwrap();
    let ca = bao.ca_path().unwrap();
    let config = config(&bao.addr(), "");
    let chat = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]});
    let gateway = |trust: bool| {
        let mut builder = Gateway::builder(BIN, &config)
            .env("TEST_PROVIDER_KEY", PROVIDER_KEY)
            .env("TEST_MASTER_KEY", MASTER);
        if trust {
            builder = builder.env("SSL_CERT_FILE", ca.to_str().unwrap());
        }
        builder.start().unwrap()
    };

    // Trusted: the handshake succeeds and OpenBao's own refusal (no such route for this token)
    // comes back as the upstream's answer.
    let trusted = gateway(true);
    let response = post(&trusted, "/v1/chat/completions", chat.clone()).await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_client_error(), "{status}: {body}");

    // Not trusted: no request is sent; a 502 that says why.
    let untrusted = gateway(false);
    let (status, body) = error_of(post(&untrusted, "/v1/chat/completions", chat).await).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("certificate"), "{message}");
}
