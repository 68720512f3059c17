//! Streams are charged for what they delivered, end to end: an upstream that sends no usage, and a
//! client that hangs up mid-stream (the upstream call is cancelled, the parallel slot freed, the
//! part it got charged).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-stream-charges-41d2";

fn gateway(mock: &MockUpstream, dir: &std::path::Path) -> Gateway {
    let config = format!(
        r#"
model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-a-upstream, api_base: '{}/v1', api_key: sk-provider}}
    model_info: {{input_cost_per_token: 0.01, output_cost_per_token: 0.02}}
general_settings:
  master_key: {MASTER}
  database_url: "sqlite://{}/keys.db"
"#,
        mock.url(),
        dir.display()
    );
    Gateway::builder(BIN, &config).dir(dir).start().unwrap()
}

async fn generate(gateway: &Gateway, body: Value) -> String {
    let response: Value = reqwest::Client::new()
        .post(format!("{}/key/generate", gateway.url))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["key"].as_str().unwrap().to_owned()
}

async fn spend(gateway: &Gateway, key: &str) -> f64 {
    let info: Value = reqwest::Client::new()
        .get(format!("{}/key/info?key={key}", gateway.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    info["info"]["spend"].as_f64().unwrap()
}

fn stream_request(gateway: &Gateway, key: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-a", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
}

/// Content chunks of five bytes each, then the end (no usage chunk unless asked).
fn frames(words: usize, with_usage: bool) -> Vec<String> {
    let mut frames = vec![
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
            .to_string(),
    ];
    for _ in 0..words {
        frames.push(json!({"choices": [{"index": 0, "delta": {"content": "word "}}]}).to_string());
    }
    frames
        .push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).to_string());
    if with_usage {
        frames.push(
            json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 10}})
                .to_string(),
        );
    }
    frames.push("[DONE]".into());
    frames
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_whose_upstream_sends_no_usage_are_charged_and_stop_at_the_budget() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&mock, dir.path());
    // One stream: 7 prompt tokens (2 bytes of text + 3 per message + 3) at 0.01 and 7
    // completion tokens (25 bytes in 5 chunks) at 0.02: 0.21 USD. The budget is two streams'.
    let key = generate(&gw, json!({"max_budget": 0.42})).await;
    let mut served = 0;
    let mut refused = None;
    for _ in 0..20 {
        mock.push(Script {
            stream: Some(frames(5, false)),
            ..Script::default()
        });
        let response = stream_request(&gw, &key).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        if status == 200 {
            assert!(body.contains("word"), "{body}");
            served += 1;
        } else {
            refused = Some((status, body));
            break;
        }
    }
    let (status, body) = refused.expect("every stream was served: streams cost nothing");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("budget_exceeded"), "{body}");
    assert!(served <= 3, "{served} streams on a budget of two");
    let spent = spend(&gw, &key).await;
    assert!(spent >= 0.42 - 1e-9, "spent {spent}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_hangs_up_mid_stream_pays_for_what_it_got_and_frees_its_slot() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&mock, dir.path());
    let key = generate(&gw, json!({"max_parallel_requests": 1})).await;
    mock.push(Script {
        stream: Some(frames(10, true)),
        chunk_delay: Duration::from_millis(300),
        ..Script::default()
    });
    let response = stream_request(&gw, &key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while seen.matches("word").count() < 3 {
        let chunk = body.next().await.expect("the stream ended early").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body); // the client hangs up after three words

    let mut cancelled = false;
    for _ in 0..100 {
        if mock.streams_cancelled() == 1 {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        cancelled,
        "the upstream stream went on after the client left"
    );
    // The slot is free: the next request of a one-at-a-time key is served.
    let next = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 200, "{}", next.text().await.unwrap());
    // Charged for the part it got (the upstream's usage chunk never came): at least the prompt
    // estimate and three words, on top of the second (complete, 0.19) request.
    let spent = spend(&gw, &key).await;
    assert!(
        spent >= 0.19 + 7.0 * 0.01 + 3.0 * 0.02 - 1e-9,
        "spent {spent}"
    );
}
