//! Routing end to end: the real binary in front of several recording mock upstreams.
//! Retries, fallbacks, cooldowns, timeouts and weighted choice are judged by counting the
//! requests each mock received, never by timing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-routing-5c1e";
const PROVIDER_KEY: &str = "sk-provider-routing-77aa";

/// One `model_list` entry for an OpenAI-compatible deployment at `base` (extra flow-map fields
/// go in `params`, e.g. `"weight: 3"`).
fn deployment(model_name: &str, id: &str, base: &str, params: &str) -> String {
    let params = if params.is_empty() {
        String::new()
    } else {
        format!(", {params}")
    };
    format!(
        "  - model_name: {model_name}\n    litellm_params: {{model: openai/{id}-upstream, api_base: '{base}/v1', api_key: os.environ/TEST_PROVIDER_KEY{params}}}\n    model_info: {{id: {id}}}\n"
    )
}

fn start(models: &[String], router_settings: &str) -> Gateway {
    let config = format!(
        "model_list:\n{}router_settings:\n{router_settings}\ngeneral_settings:\n  master_key: os.environ/TEST_MASTER_KEY\n",
        models.concat()
    );
    Gateway::builder(BIN, &config)
        .env("TEST_PROVIDER_KEY", PROVIDER_KEY)
        .env("TEST_MASTER_KEY", MASTER)
        .start()
        .unwrap()
}

/// An address nothing listens on (connect refused).
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

async fn chat(gateway: &Gateway, model: &str, stream: bool) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(MASTER)
        .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn fail(status: u16) -> Script {
    Script {
        status: Some(status),
        ..Script::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_retried_on_the_other_deployment() {
    let first = MockUpstream::start().await.unwrap();
    let second = MockUpstream::start().await.unwrap();
    let dead = closed_port();
    let gateway = start(
        &[
            deployment("m", "first", &first.url(), ""),
            deployment("m", "second", &second.url(), ""),
            deployment("d", "dead", &dead, ""),
            deployment("d", "alive", &second.url(), ""),
        ],
        "  routing_strategy: round-robin\n  num_retries: 2\n  allowed_fails: 100\n",
    );
    // Round-robin starts at the first deployment of each group, so each first try is scripted.
    first.push(fail(500));
    first.push(fail(429));
    for expected_first_status in [500, 429] {
        let response = chat(&gateway, "m", false).await;
        assert_eq!(response.status(), 200, "after a {expected_first_status}");
        assert_eq!(header(&response, "x-vaultgate-model-id"), "second");
        assert_eq!(header(&response, "x-vaultgate-attempts"), "2");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "Hello from the mock upstream."
        );
    }
    assert_eq!(first.requests().len(), 2);
    assert_eq!(second.requests().len(), 2);
    assert_eq!(
        second.last_request().unwrap().body["model"],
        "second-upstream"
    );

    // Connection refused: the other deployment answers.
    let response = chat(&gateway, "d", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-vaultgate-model-id"), "alive");
    assert_eq!(header(&response, "x-vaultgate-attempts"), "2");
    assert_eq!(second.requests().len(), 3);

    // A client error is not retried: the other deployment would answer the same.
    // (Round-robin: this is the fifth pick of the group, so `first` again.)
    first.push(fail(400));
    let response = chat(&gateway, "m", false).await;
    assert_eq!(response.status(), 400);
    assert_eq!(first.requests().len(), 3);
    assert_eq!(second.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_retries_fall_back_to_another_model_group() {
    let primary = MockUpstream::start().await.unwrap();
    let backup = MockUpstream::start().await.unwrap();
    let gateway = start(
        &[
            deployment("primary", "p", &primary.url(), ""),
            deployment("backup", "b", &backup.url(), ""),
        ],
        "  num_retries: 1\n  allowed_fails: 100\n  fallbacks: [{primary: [backup]}]\n",
    );
    primary.push(fail(503));
    primary.push(fail(500));
    let response = chat(&gateway, "primary", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-vaultgate-model-id"), "b");
    assert_eq!(header(&response, "x-vaultgate-attempts"), "3");
    assert_eq!(primary.requests().len(), 2, "one try and one retry");
    assert_eq!(backup.requests().len(), 1);
    assert_eq!(backup.last_request().unwrap().body["model"], "b-upstream");

    // The backup failing too: the client sees the last error.
    primary.push(fail(500));
    primary.push(fail(500));
    backup.push(fail(502));
    backup.push(fail(502));
    let response = chat(&gateway, "primary", false).await;
    assert_eq!(response.status(), 502);
    assert_eq!(primary.requests().len(), 4);
    assert_eq!(backup.requests().len(), 3);

    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", gateway.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("vaultgate_fallbacks_total")
                && l.contains("from=\"primary\"")
                && l.contains("to=\"backup\"")
                && l.ends_with(" 2")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn context_window_errors_fall_back_to_a_larger_model_without_retry() {
    let small = MockUpstream::start().await.unwrap();
    let large = MockUpstream::start().await.unwrap();
    let gateway = start(
        &[
            deployment("small", "s", &small.url(), ""),
            deployment("large", "l", &large.url(), ""),
        ],
        "  num_retries: 3\n  context_window_fallbacks: [{small: [large]}]\n  content_policy_fallbacks: [{small: [large]}]\n",
    );
    let too_long = json!({"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}});
    small.push(Script {
        status: Some(400),
        body: Some(too_long.to_string()),
        ..Script::default()
    });
    let response = chat(&gateway, "small", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-vaultgate-model-id"), "l");
    assert_eq!(header(&response, "x-vaultgate-attempts"), "2");
    assert_eq!(small.requests().len(), 1, "a context error is not retried");
    assert_eq!(large.requests().len(), 1);

    // A content filter refusal goes to the content policy fallback, also without retry.
    let filtered = json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", "type": null, "param": "prompt", "code": "content_filter"}});
    small.push(Script {
        status: Some(400),
        body: Some(filtered.to_string()),
        ..Script::default()
    });
    let response = chat(&gateway, "small", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-vaultgate-model-id"), "l");
    assert_eq!(small.requests().len(), 2);
    assert_eq!(large.requests().len(), 2);

    // Any other 400 is the client's: no retry, no fallback, the upstream's message, type and
    // param in LiteLLM's shape.
    let other = json!({"error": {"message": "temperature must be <= 2", "type": "invalid_request_error", "param": "temperature", "code": null}});
    small.push(Script {
        status: Some(400),
        body: Some(other.to_string()),
        ..Script::default()
    });
    let response = chat(&gateway, "small", false).await;
    assert_eq!(response.status(), 400);
    let expected = json!({"error": {"message": "litellm.BadRequestError: temperature must be <= 2", "type": "invalid_request_error", "param": "temperature", "code": "400"}});
    assert_eq!(response.json::<Value>().await.unwrap(), expected);
    assert_eq!(small.requests().len(), 3);
    assert_eq!(large.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_deployment_cools_down_and_recovers() {
    let flaky = MockUpstream::start().await.unwrap();
    let steady = MockUpstream::start().await.unwrap();
    let gateway = start(
        &[
            deployment("m", "flaky", &flaky.url(), ""),
            deployment("m", "steady", &steady.url(), ""),
        ],
        "  routing_strategy: round-robin\n  num_retries: 0\n  allowed_fails: 1\n  cooldown_time: 3\n",
    );
    flaky.push(fail(500));
    flaky.push(fail(500));
    // Turns: flaky (fail 1), steady, flaky (fail 2 > allowed_fails: cooldown), then only steady.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(chat(&gateway, "m", false).await.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 500).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        flaky.requests().len(),
        2,
        "requests reached a cooling deployment"
    );
    assert_eq!(steady.requests().len(), 8);

    // After the cooldown the deployment takes its turns again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for _ in 0..4 {
        assert_eq!(chat(&gateway, "m", false).await.status(), 200);
    }
    assert_eq!(flaky.requests().len(), 4);

    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", gateway.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l
            .starts_with("vaultgate_deployment_cooldowns_total{deployment=\"flaky\"}")
            && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_provider_key_is_the_deployment_failure_not_the_client_s() {
    let wrong_key = MockUpstream::start().await.unwrap();
    let good = MockUpstream::start().await.unwrap();
    wrong_key.require_key(Some("sk-some-other-key"));
    let gateway = start(
        &[
            deployment("m", "wrong", &wrong_key.url(), ""),
            deployment("m", "good", &good.url(), ""),
        ],
        "  routing_strategy: round-robin\n  num_retries: 1\n  allowed_fails: 0\n  cooldown_time: 600\n",
    );
    let response = chat(&gateway, "m", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-vaultgate-model-id"), "good");
    // The refusal cooled `wrong` down: it gets no more traffic.
    for _ in 0..5 {
        assert_eq!(chat(&gateway, "m", false).await.status(), 200);
    }
    assert_eq!(wrong_key.requests().len(), 1);
    assert_eq!(good.requests().len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_deployment_cools_down_the_soonest_back_is_still_tried() {
    let only = MockUpstream::start().await.unwrap();
    let gateway = start(
        &[deployment("m", "only", &only.url(), "")],
        "  allowed_fails: 0\n  cooldown_time: 600\n",
    );
    only.push(fail(500));
    assert_eq!(chat(&gateway, "m", false).await.status(), 500);
    let response = chat(&gateway, "m", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-vaultgate-model-id"), "only");
    assert_eq!(only.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_deployment_of_a_group_cools_down_it_answers_litellm_s_429() {
    let bad = MockUpstream::start().await.unwrap();
    let backup = MockUpstream::start().await.unwrap();
    let gateway = start(
        &[
            deployment("m", "m-1", &bad.url(), ""),
            deployment("m", "m-2", &bad.url(), ""),
            deployment("n", "n-1", &bad.url(), ""),
            deployment("n", "n-2", &bad.url(), ""),
            deployment("backup", "backup-1", &backup.url(), ""),
        ],
        "  num_retries: 1
  allowed_fails: 0
  cooldown_time: 600
  fallbacks: [{n: [backup]}]
",
    );
    for _ in 0..4 {
        bad.push(fail(500));
    }
    // Both deployments of m fail (and cool down); the client gets the last error.
    assert_eq!(chat(&gateway, "m", false).await.status(), 500);
    let response = chat(&gateway, "m", false).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = header(&response, "retry-after").parse().unwrap();
    assert!((599..=600).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "No deployments available for selected model, Try again in {retry_after} seconds. \
             Passed model=m."
        )),
        "{message}"
    );
    assert!(
        message.ends_with("cooldown_list=['m-1', 'm-2']"),
        "{message}"
    );
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "429");
    assert_eq!(bad.requests().len(), 2, "a cooling group calls no upstream");
    // With a fallback, a cooling group hands over to it at once.
    let response = chat(&gateway, "n", false).await;
    assert_eq!(response.status(), 200);
    let response = chat(&gateway, "n", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-litellm-model-id"), "backup-1");
    assert_eq!(header(&response, "x-litellm-attempted-fallbacks"), "1");
    assert_eq!(bad.requests().len(), 4);
    assert_eq!(backup.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_answer_408_or_move_to_another_deployment() {
    let slow = MockUpstream::start().await.unwrap();
    let fast = MockUpstream::start().await.unwrap();
    let gateway = start(
        &[
            deployment("solo", "solo", &slow.url(), "timeout: 1"),
            deployment(
                "solo-stream",
                "solo-stream",
                &slow.url(),
                "timeout: 60, stream_timeout: 1",
            ),
            deployment("m", "slow", &slow.url(), "timeout: 1"),
            deployment("m", "fast", &fast.url(), "timeout: 1"),
        ],
        "  routing_strategy: round-robin\n  num_retries: 0\n  allowed_fails: 100\n",
    );
    let stall = || Script {
        delay: Duration::from_secs(5),
        ..Script::default()
    };
    // `timeout`: whole answer.
    slow.push(stall());
    let response = chat(&gateway, "solo", false).await;
    assert_eq!(response.status(), 408);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "408");
    // `stream_timeout`: the time to the first chunk, even when `timeout` is long.
    slow.push(stall());
    let response = chat(&gateway, "solo-stream", true).await;
    assert_eq!(response.status(), 408);
    assert_eq!(slow.requests().len(), 2);
    drop(gateway);

    // With retries, a timed-out attempt moves on to the other deployment.
    let gateway = start(
        &[
            deployment("m", "slow", &slow.url(), "timeout: 1"),
            deployment("m", "fast", &fast.url(), "timeout: 1"),
        ],
        "  routing_strategy: round-robin\n  num_retries: 1\n  allowed_fails: 100\n",
    );
    slow.push(stall());
    let response = chat(&gateway, "m", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-vaultgate-model-id"), "fast");
    assert_eq!(header(&response, "x-vaultgate-attempts"), "2");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_retry_once_a_stream_has_started() {
    let cut = MockUpstream::start().await.unwrap();
    let other = MockUpstream::start().await.unwrap();
    let gateway = start(
        &[
            deployment("m", "cut", &cut.url(), ""),
            deployment("m", "other", &other.url(), ""),
        ],
        "  routing_strategy: round-robin\n  num_retries: 3\n",
    );
    let frames: Vec<String> = (0..5)
        .map(|i| json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": format!("part{i} ")}}]}).to_string())
        .collect();
    cut.push(Script {
        stream: Some(frames),
        cut_after: Some(2),
        ..Script::default()
    });
    let response = chat(&gateway, "m", true).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-vaultgate-model-id"), "cut");
    assert_eq!(header(&response, "x-vaultgate-attempts"), "1");
    let mut text = String::new();
    let mut body = response.bytes_stream();
    while let Some(Ok(chunk)) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.contains("part0") && text.contains("part1"), "{text}");
    assert!(!text.contains("part2"), "{text}");
    assert!(other.requests().is_empty(), "a started stream was retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn simple_shuffle_follows_weights() {
    let light = MockUpstream::start().await.unwrap();
    let heavy = MockUpstream::start().await.unwrap();
    let gateway = start(
        &[
            deployment("m", "light", &light.url(), "weight: 1"),
            deployment("m", "heavy", &heavy.url(), "weight: 3"),
        ],
        "  num_retries: 0\n",
    );
    const REQUESTS: usize = 200;
    for _ in 0..REQUESTS / 20 {
        let batch = (0..20).map(|_| chat(&gateway, "m", false));
        for response in futures_util::future::join_all(batch).await {
            assert_eq!(response.status(), 200);
        }
    }
    let heavy_count = heavy.requests().len();
    assert_eq!(light.requests().len() + heavy_count, REQUESTS);
    // Expected 150 (sd ≈ 6): 120..=180 is five standard deviations either side.
    assert!(
        (120..=180).contains(&heavy_count),
        "heavy got {heavy_count}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn least_busy_avoids_the_deployment_serving_a_long_stream() {
    let first = MockUpstream::start().await.unwrap();
    let second = MockUpstream::start().await.unwrap();
    let gateway = start(
        &[
            deployment("m", "first", &first.url(), ""),
            deployment("m", "second", &second.url(), ""),
        ],
        "  routing_strategy: least-busy\n",
    );
    let long_stream = || Script {
        stream: Some(
            (0..100)
                .map(|i| {
                    json!({"choices": [{"index": 0, "delta": {"content": i.to_string()}}]})
                        .to_string()
                })
                .collect(),
        ),
        chunk_delay: Duration::from_millis(200),
        ..Script::default()
    };
    first.push(long_stream());
    second.push(long_stream());
    let streaming = chat(&gateway, "m", true).await;
    assert_eq!(streaming.status(), 200);
    let busy = header(&streaming, "x-vaultgate-model-id");
    // Only the chosen deployment was to stream; the other answers normally from now on.
    first.clear_scripts();
    second.clear_scripts();
    let mut body = streaming.bytes_stream();
    body.next().await.unwrap().unwrap();
    for _ in 0..6 {
        let response = chat(&gateway, "m", false).await;
        assert_ne!(header(&response, "x-vaultgate-model-id"), busy);
    }
    let (busy_mock, idle_mock) = if busy == "first" {
        (&first, &second)
    } else {
        (&second, &first)
    };
    assert_eq!(busy_mock.requests().len(), 1);
    assert_eq!(idle_mock.requests().len(), 6);
    drop(body);
}
