//! The failure side of the foundation: each error with its status and OpenAI shape, no secret
//! in trace logs, and bad configs stopping the start with a clear message.

use std::time::Duration;

use serde_json::json;
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

use super::{BIN, MASTER, PROVIDER_KEY, client, config, error_of, post, start};

#[tokio::test(flavor = "multi_thread")]
async fn errors_have_the_right_status_and_openai_shape() {
    let mock = MockUpstream::start().await.unwrap();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let models = format!(
        "  - model_name: unreachable\n    litellm_params: {{model: openai/x, api_base: 'http://{closed}/v1'}}\n"
    );
    let gateway = start(&config(&mock.url(), &models));
    let url = |path: &str| format!("{}{path}", gateway.url);

    // 400: bad JSON, missing model, unknown model.
    let response = client()
        .post(url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("JSON"));
    let (status, body) =
        error_of(post(&gateway, "/v1/chat/completions", json!({"messages": []})).await).await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("model"))
    );
    let (status, body) =
        error_of(post(&gateway, "/v1/chat/completions", json!({"model": "nope"})).await).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model=nope")
    );

    // 401: no key, bad key (Bearer, api-key and x-api-key are all read).
    let response = client()
        .post(url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await.0, 401);
    for header in ["authorization", "api-key", "x-api-key"] {
        let value = if header == "authorization" {
            "Bearer sk-wrong".to_owned()
        } else {
            "sk-wrong".to_owned()
        };
        let response = client()
            .post(url("/v1/chat/completions"))
            .header(header, value)
            .json(&json!({"model": "gpt-test"}))
            .send()
            .await
            .unwrap();
        let (status, body) = error_of(response).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["type"], "auth_error");
        assert!(!body.to_string().contains("sk-wrong"));
    }
    let response = client()
        .post(url("/v1/chat/completions"))
        .header("x-api-key", MASTER)
        .json(&json!({"model": "gpt-test", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // 413 over max_request_size_mb (0.01 MB), declared or streamed.
    let big = "x".repeat(20_000);
    let (status, body) = error_of(
        post(
            &gateway,
            "/v1/chat/completions",
            json!({"model": "gpt-test", "pad": big}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "413");
    let chunks =
        futures_util::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1000])));
    let response = client()
        .post(url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await.0, 413);

    // 502 unreachable upstream, 408 timeout (LiteLLM's).
    let (status, body) = error_of(
        post(
            &gateway,
            "/v1/chat/completions",
            json!({"model": "unreachable", "messages": []}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["type"], "upstream_error");
    mock.push(Script {
        delay: Duration::from_secs(4),
        ..Script::default()
    });
    let (status, body) = error_of(
        post(
            &gateway,
            "/v1/chat/completions",
            json!({"model": "gpt-test", "messages": []}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 408);
    assert_eq!(body["error"]["code"], "408");
    assert_eq!(body["error"]["type"], "timeout");

    // Upstream 4xx and 5xx keep their status, message, type and param, in LiteLLM's shape.
    for code in [400u16, 404, 422, 500, 503] {
        let upstream_body = json!({"error": {"message": format!("upstream says {code}"), "type": "x", "param": null, "code": null}});
        mock.push(Script {
            status: Some(code),
            body: Some(upstream_body.to_string()),
            ..Script::default()
        });
        let (status, body) = error_of(
            post(
                &gateway,
                "/v1/chat/completions",
                json!({"model": "gpt-test", "messages": []}),
            )
            .await,
        )
        .await;
        let class = match code {
            400 => "BadRequestError",
            404 => "NotFoundError",
            422 => "UnprocessableEntityError",
            500 => "InternalServerError",
            _ => "ServiceUnavailableError",
        };
        let expected = json!({"error": {
            "message": format!("litellm.{class}: upstream says {code}"),
            "type": "x", "param": null, "code": code.to_string(),
        }});
        assert_eq!((status, body), (code, expected));
    }

    // Unknown routes are OpenAI-shaped 404s; the process keeps serving.
    let response = client().get(url("/v1/nope")).send().await.unwrap();
    assert_eq!(error_of(response).await.0, 404);
    let response = client()
        .get(url("/health/liveliness"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_in_trace_logs() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = Gateway::builder(BIN, &config(&mock.url(), ""))
        .env("TEST_PROVIDER_KEY", PROVIDER_KEY)
        .env("TEST_MASTER_KEY", MASTER)
        .rust_log("trace")
        .start()
        .unwrap();
    post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "gpt-test", "messages": []}),
    )
    .await;
    post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "gpt-test", "stream": true, "messages": []}),
    )
    .await
    .text()
    .await
    .unwrap();
    client()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth("sk-wrong-key-123")
        .send()
        .await
        .unwrap();
    let logs = gateway.logs();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "trace logging was not on"
    );
    for secret in [PROVIDER_KEY, MASTER, "sk-wrong-key-123"] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

#[test]
fn bad_configs_fail_at_start_with_a_clear_message() {
    let run = |config: &str| {
        let output = Gateway::builder(BIN, config).run(&["--port", "0"]).unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let message = run(
        "model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/x\n      rpm: [1]\n",
    );
    assert!(
        message.contains("line 5") && message.contains("rpm"),
        "{message}"
    );
    // An unknown provider is not a config error (see litellm_config.rs); an empty model is.
    let message = run("model_list:\n  - model_name: x\n    litellm_params: {model: ''}\n");
    assert!(message.contains("model_list[0]"), "{message}");
    let message = run(
        "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, api_key: os.environ/VAULTGATE_TEST_UNSET_KEY}\ngeneral_settings: {allow_unauthenticated: true}\n",
    );
    assert!(
        message.contains("VAULTGATE_TEST_UNSET_KEY") && message.contains("model_list[0]"),
        "{message}"
    );
    let output = std::process::Command::new(BIN)
        .args(["--config", "/nonexistent/config.yaml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/config.yaml"));
}
