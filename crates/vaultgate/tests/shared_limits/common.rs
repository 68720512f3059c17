//! Two gateway instances on one PostgreSQL schema and a Redis of the test's own, and the calls
//! the shared-limits tests make.
#![allow(dead_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;
use vaultgate_testkit::postgres::PgSchema;
use vaultgate_testkit::redis::RedisServer;

pub const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
pub const MASTER: &str = "sk-master-shared-limits-7d2a";

/// `redis`: the `router_settings` lines naming Redis (empty: none in the file).
pub fn config(upstream: &str, database_url: &str, redis: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-a-upstream, api_base: '{upstream}/v1', api_key: sk-provider}}
general_settings:
  master_key: {MASTER}
  database_url: "{database_url}"
router_settings:
  num_retries: 0
{redis}
"#
    )
}

pub struct Pair {
    pub redis: Option<RedisServer>,
    pub schema: PgSchema,
    pub mock: MockUpstream,
    pub a: Gateway,
    pub b: Gateway,
}

impl Pair {
    /// Instance `a` names Redis in its file (`os.environ/…`), instance `b` through `REDIS_HOST`
    /// and `REDIS_PORT`: both ways of LiteLLM's settings.
    pub async fn start() -> Self {
        let redis = RedisServer::start().unwrap();
        let schema = PgSchema::create().unwrap();
        let mock = MockUpstream::start().await.unwrap();
        let a = Self::instance_a(&mock, &schema, &redis);
        let b = Self::instance_b(&mock, &schema, &redis);
        Self {
            redis: Some(redis),
            schema,
            mock,
            a,
            b,
        }
    }

    pub async fn start_without_redis() -> Self {
        let schema = PgSchema::create().unwrap();
        let mock = MockUpstream::start().await.unwrap();
        let start = || {
            Gateway::builder(BIN, &config(&mock.url(), &schema.url, ""))
                .start()
                .unwrap()
        };
        let (a, b) = (start(), start());
        Self {
            redis: None,
            schema,
            mock,
            a,
            b,
        }
    }

    pub fn instance_a(mock: &MockUpstream, schema: &PgSchema, redis: &RedisServer) -> Gateway {
        let redis_lines = "  redis_url: os.environ/E2E_REDIS_URL";
        Gateway::builder(BIN, &config(&mock.url(), &schema.url, redis_lines))
            .env("E2E_REDIS_URL", &redis.url())
            .start()
            .unwrap()
    }

    pub fn instance_b(mock: &MockUpstream, schema: &PgSchema, redis: &RedisServer) -> Gateway {
        Gateway::builder(BIN, &config(&mock.url(), &schema.url, ""))
            .env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", &redis.port().to_string())
            .start()
            .unwrap()
    }

    pub fn redis(&self) -> &RedisServer {
        self.redis.as_ref().unwrap()
    }

    /// Waits (at most ~20 s) until Redis's clock is early enough in its minute that the
    /// test's requests fall in one rpm window.
    pub fn wait_for_minute_room(&self) {
        let deadline = Instant::now() + Duration::from_secs(25);
        while Instant::now() < deadline {
            let time = self.redis().cli(&["TIME"]).unwrap();
            let seconds: u64 = time.lines().next().unwrap().trim().parse().unwrap();
            if seconds % 60 < 40 {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("Redis's clock did not leave the end of its minute");
    }
}

/// Like [`Pair::wait_for_minute_room`] on this machine's clock (the per-instance windows).
pub fn wait_for_local_minute_room() {
    let deadline = Instant::now() + Duration::from_secs(25);
    while Instant::now() < deadline {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if seconds % 60 < 40 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the clock did not leave the end of its minute");
}

/// A new virtual key with `limits`, made on `gateway`.
pub async fn key(gateway: &Gateway, limits: Value) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/key/generate", gateway.url))
        .bearer_auth(MASTER)
        .json(&limits)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["key"].as_str().unwrap().to_owned()
}

pub async fn chat(gateway: &Gateway, key: &str) -> reqwest::Response {
    chat_with(&reqwest::Client::new(), gateway, key, false)
        .await
        .unwrap()
}

/// A chat request on `client` (`stream`: asks for SSE; the answer's headers come with the first
/// chunk, after admission).
pub async fn chat_with(
    client: &reqwest::Client,
    gateway: &Gateway,
    key: &str,
    stream: bool,
) -> reqwest::Result<reqwest::Response> {
    let mut request = client
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-a", "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}));
    if !stream {
        request = request.timeout(Duration::from_secs(30));
    }
    request.send().await
}

/// Polls the operator's readiness (at most `within`) until `done` holds; the last answer.
pub async fn readiness_until(
    gateway: &Gateway,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let answer = readiness(gateway).await;
        if done(&answer) {
            return answer;
        }
        if Instant::now() > deadline {
            panic!("readiness did not get there within {within:?}: {answer}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of an unlabelled series in the gateway's `/metrics` (0 when absent).
pub async fn metric(gateway: &Gateway, name: &str) -> f64 {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", gateway.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// The operator's view of `/health/readiness`.
pub async fn readiness(gateway: &Gateway) -> Value {
    reqwest::Client::new()
        .get(format!("{}/health/readiness", gateway.url))
        .bearer_auth(MASTER)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
