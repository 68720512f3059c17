//! Hostile upstreams: a stream that stalls after its first chunk is ended by the stream idle
//! timeout (`stream_timeout`) with a final SSE error event, its upstream call is cancelled and
//! the key's parallel slot is free again; bodies no upstream should see (invalid UTF-8, nesting
//! 100,000 deep) are refused without reaching it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-hostile-upstream-7c1e";
/// Far above the 1 s stream timeout of the config, so a slow machine cannot fail the test.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

fn gateway(mock: &MockUpstream, dir: &std::path::Path) -> Gateway {
    let config = format!(
        r#"
model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-a-upstream, api_base: '{}/v1', api_key: sk-provider, stream_timeout: 1}}
general_settings:
  master_key: {MASTER}
  database_url: "sqlite://{}/keys.db"
"#,
        mock.url(),
        dir.display()
    );
    Gateway::builder(BIN, &config).dir(dir).start().unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_stalled_after_its_first_chunk_ends_with_an_error_event_and_frees_its_slot() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&mock, dir.path());
    let generated: Value = client()
        .post(format!("{}/key/generate", gw.url))
        .bearer_auth(MASTER)
        .json(&json!({"max_parallel_requests": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = generated["key"].as_str().unwrap().to_owned();
    let first =
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "one "}}]});
    let second = json!({"choices": [{"index": 0, "delta": {"content": "two"}}]});
    mock.push(Script {
        stream: Some(vec![first.to_string(), second.to_string(), "[DONE]".into()]),
        chunk_delay: Duration::from_secs(3600),
        ..Script::default()
    });
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-a", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response
        .text()
        .await
        .expect("the stalled stream was not ended (or was cut instead of ended)");
    assert!(body.contains("one "), "{body}");
    assert!(!body.contains("two"), "{body}");
    let last = body.trim_end().rsplit("\n\n").next().unwrap();
    let error: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "408", "{body}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stream_timeout"),
        "{body}"
    );

    let mut cancelled = false;
    for _ in 0..100 {
        if mock.streams_cancelled() == 1 {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cancelled, "the stalled upstream call was not cancelled");
    // The one parallel slot of the key is free again.
    let next = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 200, "{}", next.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_and_deeply_nested_json_are_refused_and_never_forwarded() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&mock, dir.path());
    let mut latin1 = br#"{"model":"gpt-a","messages":[{"role":"user","content":"caf"#.to_vec();
    latin1.extend_from_slice(b"\xe9\"}]}");
    let deep = format!(
        r#"{{"model":"gpt-a","messages":[{{"role":"user","content":{}1{}}}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for (body, problem) in [(latin1, "UTF-8"), (deep.into_bytes(), "deeper than 128")] {
        for route in ["/v1/chat/completions", "/v1/messages"] {
            let response = client()
                .post(format!("{}{route}", gw.url))
                .bearer_auth(MASTER)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{route}");
            let answer: Value = response.json().await.unwrap();
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(problem), "{route}: {answer}");
        }
    }
    assert!(mock.requests().is_empty(), "{:?}", mock.requests());
    // The gateway still serves.
    let ok = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(MASTER)
        .json(&json!({"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
