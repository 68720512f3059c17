//! Upstreams that hang, while the load runs on a healthy one: before headers (plain and
//! streamed requests) and mid-stream. Each hung call ends with LiteLLM's 408 (a JSON error, or
//! a final SSE error event once the stream has begun) soon after the deployment's timeout, the
//! key's parallel slots are free again for the next call, and the load never fails.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

use crate::common::{BIN, MASTER, admin};
use crate::load::{Load, assert_all_answered, eventually};

/// The hostile deployment's `timeout` and `stream_timeout`, in seconds.
const TIMEOUT_SECS: u64 = 1;
/// What a hung call may take beyond its timeout on a loaded machine (a hang is 3,600 s).
const SLACK: Duration = Duration::from_secs(10);
const HANG: Duration = Duration::from_secs(3600);
/// The hostile key's `max_parallel_requests`: every round uses both slots.
const SLOTS: usize = 2;

fn config(healthy: &str, hostile: &str, dir: &std::path::Path) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-a-upstream, api_base: '{healthy}/v1', api_key: sk-provider}}
  - model_name: hangs
    litellm_params: {{model: openai/hangs, api_base: '{hostile}/v1', api_key: sk-provider, timeout: {TIMEOUT_SECS}, stream_timeout: {TIMEOUT_SECS}}}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER}
  database_url: "sqlite://{}/keys.db"
"#,
        dir.display()
    )
}

/// One call to the hanging deployment: status, body, and how long it took.
async fn call(gateway: &Gateway, key: &str, stream: bool) -> (u16, String, Duration) {
    let started = Instant::now();
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(key)
        .json(&json!({"model": "hangs", "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("no answer to a hung call");
    let status = response.status().as_u16();
    let body = response.text().await.expect("a hung call's body was cut");
    (status, body, started.elapsed())
}

/// `SLOTS` calls at once, each scripted with `script` upstream.
async fn round(
    gateway: &Gateway,
    hostile: &MockUpstream,
    key: &str,
    stream: bool,
    script: &Script,
) -> Vec<(u16, String, Duration)> {
    for _ in 0..SLOTS {
        hostile.push(script.clone());
    }
    let calls = (0..SLOTS).map(|_| call(gateway, key, stream));
    futures_util::future::join_all(calls).await
}

/// The LiteLLM timeout error `{"error": {"code": "408", "type": "timeout", …}}`.
fn assert_timeout_error(error: &Value, what: &str) {
    assert_eq!(error["error"]["code"], "408", "{what}: {error}");
    assert_eq!(error["error"]["type"], "timeout", "{what}: {error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {error}"
    );
}

fn assert_in_time(took: Duration, what: &str) {
    assert!(
        took < Duration::from_secs(TIMEOUT_SECS) + SLACK,
        "{what} took {took:?} with a {TIMEOUT_SECS} s timeout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hung_upstreams_time_out_free_their_slots_and_the_rest_keeps_serving() {
    let healthy = MockUpstream::start().await.unwrap();
    let hostile = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::builder(BIN, &config(&healthy.url(), &hostile.url(), dir.path()))
        .dir(dir.path())
        .start()
        .unwrap();
    let new_key = async |limits: Value| {
        let (status, body) = admin(&gateway, "/key/generate", limits).await;
        assert_eq!(status, 200, "{body}");
        body["key"].as_str().unwrap().to_owned()
    };
    let load_key = new_key(json!({})).await;
    let key = new_key(json!({"max_parallel_requests": SLOTS})).await;
    let load = Load::chat(&gateway.url, &load_key, "gpt-a", 4);
    load.flowing(50).await;

    let before_headers = Script {
        delay: HANG,
        ..Script::default()
    };
    for stream in [false, true] {
        let what = format!("hung before headers (stream: {stream})");
        for (status, body, took) in round(&gateway, &hostile, &key, stream, &before_headers).await {
            assert_eq!(status, 408, "{what}: {body}");
            assert_timeout_error(&serde_json::from_str(&body).unwrap(), &what);
            assert_in_time(took, &what);
        }
    }

    let first =
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "one "}}]});
    let mid_stream = Script {
        stream: Some(vec![first.to_string(), first.to_string(), "[DONE]".into()]),
        chunk_delay: HANG,
        ..Script::default()
    };
    let cancelled = hostile.streams_cancelled();
    let what = "hung mid-stream";
    for (status, body, took) in round(&gateway, &hostile, &key, true, &mid_stream).await {
        assert_eq!(status, 200, "{what}: {body}");
        assert!(body.contains("one "), "{what}: {body}");
        let last = body.trim_end().rsplit("\n\n").next().unwrap();
        let event = last.strip_prefix("data: ").unwrap_or(last);
        assert_timeout_error(&serde_json::from_str(event).unwrap(), what);
        assert_in_time(took, what);
    }
    eventually("the stalled upstream calls cancelled", async || {
        hostile.streams_cancelled() == cancelled + SLOTS
    })
    .await;

    // Both slots are free again: the next round is served, not refused with a 429.
    for (status, body, _) in round(&gateway, &hostile, &key, false, &Script::default()).await {
        assert_eq!(status, 200, "after the hung calls: {body}");
    }
    load.flowing(50).await;
    let outcomes = load.stop().await;
    assert_all_answered(&outcomes, "beside the hung upstream");
    eprintln!(
        "timeouts chaos: {} model requests beside 6 hung calls, all answered",
        outcomes.len()
    );
}
