//! Responses translated for a non-OpenAI deployment (Anthropic here, via the recording mock)
//! are stored in the key database as OpenAI stores its own: `previous_response_id` continues
//! the conversation (the mock receives the earlier turns as messages, or as input items on an
//! OpenAI deployment), `GET`, `…/input_items` and `DELETE` answer in OpenAI's shapes, only the
//! key that made a response sees it, and `store: false` keeps nothing. On SQLite (with a
//! restart) and on PostgreSQL (with a second instance on the same database).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;
use vaultgate_testkit::postgres::PgSchema;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-stored-responses-41d0";
const ANTHROPIC_KEY: &str = "sk-ant-provider-stored-9a7e";
const ANSWER: &str = "Hello from the mock upstream.";

fn start(mock: &MockUpstream, dir: &std::path::Path, database_url: &str) -> Gateway {
    start_with(mock, dir, database_url, "").unwrap()
}

/// The gateway, with `general` appended to its `general_settings`.
fn start_with(
    mock: &MockUpstream,
    dir: &std::path::Path,
    database_url: &str,
    general: &str,
) -> Result<Gateway, String> {
    let upstream = mock.url();
    let config = format!(
        r#"
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{upstream}/v1', api_key: sk-openai-provider-stored}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: '{upstream}', api_key: os.environ/TEST_ANTHROPIC_KEY}}
    model_info: {{id: claude-main}}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER}
  database_url: "{database_url}"
{general}"#
    );
    Gateway::builder(BIN, &config)
        .env("TEST_ANTHROPIC_KEY", ANTHROPIC_KEY)
        .dir(dir)
        .start()
}

async fn send(
    gateway: &Gateway,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", gateway.url))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn call(
    gateway: &Gateway,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, text) = send(gateway, method, path, key, body).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!(text)),
    )
}

async fn create(gateway: &Gateway, key: &str, body: Value) -> (u16, Value) {
    call(gateway, Method::POST, "/v1/responses", key, Some(body)).await
}

async fn get(gateway: &Gateway, key: &str, path: &str) -> (u16, Value) {
    call(gateway, Method::GET, path, key, None).await
}

async fn generate(gateway: &Gateway) -> String {
    let (status, body) = call(
        gateway,
        Method::POST,
        "/key/generate",
        MASTER,
        Some(json!({"models": ["claude", "gpt"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["key"].as_str().unwrap().to_owned()
}

/// The (role, text) of each message the mock received (Anthropic's shape).
fn turns(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(text) => text.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<String>(),
                other => panic!("content {other}"),
            };
            (m["role"].as_str().unwrap().to_owned(), text)
        })
        .collect()
}

fn turn(role: &str, text: &str) -> (String, String) {
    (role.to_owned(), text.to_owned())
}

/// The `response.completed` event's response of a Responses stream.
fn completed(text: &str) -> Value {
    let data = text
        .split_terminator("\n\n")
        .filter(|event| event.starts_with("event: response.completed"))
        .find_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .unwrap_or_else(|| panic!("no response.completed in {text}"));
    serde_json::from_str::<Value>(data).unwrap()["response"].clone()
}

/// Creates, continues, lists, isolates and deletes stored responses; returns the first
/// response (kept) and the key that made it.
async fn stored_responses(gateway: &Gateway, mock: &MockUpstream) -> (Value, String) {
    let ann = generate(gateway).await;
    let other = generate(gateway).await;

    let (status, first) = create(
        gateway,
        &ann,
        json!({"model": "claude", "instructions": "Be brief.", "input": "Hi, I am Ann."}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["store"], true);
    assert_eq!(first["previous_response_id"], Value::Null);
    let first_id = first["id"].as_str().unwrap();

    // A follow-up gets the earlier turn as chat history; instructions are not carried over.
    let (status, second) = create(
        gateway,
        &ann,
        json!({"model": "claude", "previous_response_id": first_id,
            "input": [{"role": "user", "content": "What is my name?"}]}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let seen = mock.last_request().unwrap().body;
    assert_eq!(
        turns(&seen),
        [
            turn("user", "Hi, I am Ann."),
            turn("assistant", ANSWER),
            turn("user", "What is my name?"),
        ]
    );
    assert!(seen.get("system").is_none(), "{seen}");
    assert_eq!(second["previous_response_id"], first_id);
    let second_id = second["id"].as_str().unwrap();
    assert_ne!(second_id, first_id);

    // Continued on OpenAI, which knows nothing of the id: the conversation goes in the input.
    let (status, on_openai) = create(
        gateway,
        &ann,
        json!({"model": "gpt", "previous_response_id": first_id, "input": "Next?"}),
    )
    .await;
    assert_eq!(status, 200, "{on_openai}");
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/v1/responses");
    assert!(
        seen.body.get("previous_response_id").is_none(),
        "{}",
        seen.body
    );
    assert_eq!(
        seen.body["input"],
        json!([
            {"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "Hi, I am Ann."}]},
            {"type": "message", "role": "assistant", "content": first["output"][0]["content"]},
            {"role": "user", "content": "Next?"},
        ])
    );

    // A streamed third turn continues the whole chain, and is stored as it completes.
    let (status, text) = send(
        gateway,
        Method::POST,
        "/v1/responses",
        &ann,
        Some(json!({"model": "claude", "previous_response_id": second_id,
            "input": "And again?", "stream": true})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let streamed = completed(&text);
    assert_eq!(
        turns(&mock.last_request().unwrap().body),
        [
            turn("user", "Hi, I am Ann."),
            turn("assistant", ANSWER),
            turn("user", "What is my name?"),
            turn("assistant", ANSWER),
            turn("user", "And again?"),
        ]
    );
    let streamed_id = streamed["id"].as_str().unwrap();
    let (status, found) = get(gateway, &ann, &format!("/v1/responses/{streamed_id}")).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found, streamed);
    assert_eq!(found["output"][0]["content"][0]["text"], ANSWER);
    assert_eq!(found["store"], true);

    // GET answers the response object as it was; input_items lists this turn's input only.
    let (status, found) = get(gateway, &ann, &format!("/v1/responses/{second_id}")).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found, second);
    let (status, items) = get(
        gateway,
        &ann,
        &format!("/v1/responses/{second_id}/input_items"),
    )
    .await;
    assert_eq!(status, 200, "{items}");
    assert_eq!(items["object"], "list");
    assert_eq!(items["has_more"], false);
    let data = items["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{items}");
    assert_eq!(data[0]["type"], "message");
    assert_eq!(data[0]["role"], "user");
    assert_eq!(
        data[0]["content"],
        json!([{"type": "input_text", "text": "What is my name?"}])
    );
    assert_eq!(items["first_id"], data[0]["id"]);
    let (status, items) = get(
        gateway,
        &ann,
        &format!("/v1/responses/{second_id}/input_items?limit=0"),
    )
    .await;
    assert_eq!(status, 400, "{items}");
    assert_eq!(items["error"]["param"], "limit");

    // Another key: the response does not exist for it, whatever it tries.
    let path = format!("/v1/responses/{second_id}");
    let (status, error) = get(gateway, &other, &path).await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let (status, _) = get(gateway, &other, &format!("{path}/input_items")).await;
    assert_eq!(status, 404);
    let (status, _) = call(gateway, Method::DELETE, &path, &other, None).await;
    assert_eq!(status, 404);
    let (status, error) = create(
        gateway,
        &other,
        json!({"model": "claude", "input": "hi", "previous_response_id": second_id}),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["param"], "previous_response_id");
    assert_eq!(
        error["error"]["message"],
        format!("Previous response with id '{second_id}' not found.")
    );

    // store: false keeps nothing.
    let (status, unkept) = create(
        gateway,
        &ann,
        json!({"model": "claude", "input": "forget this", "store": false}),
    )
    .await;
    assert_eq!(status, 200, "{unkept}");
    assert_eq!(unkept["store"], false);
    let unkept_id = unkept["id"].as_str().unwrap();
    let (status, _) = get(gateway, &ann, &format!("/v1/responses/{unkept_id}")).await;
    assert_eq!(status, 404);
    let (status, error) = create(
        gateway,
        &ann,
        json!({"model": "claude", "input": "hi", "previous_response_id": unkept_id}),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["param"], "previous_response_id");

    // DELETE answers OpenAI's deletion object; then the response is gone.
    let (status, deleted) = call(gateway, Method::DELETE, &path, &ann, None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted,
        json!({"id": second_id, "object": "response", "deleted": true})
    );
    let (status, error) = get(gateway, &ann, &path).await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(
        error["error"]["message"],
        format!("Response with id '{second_id}' not found.")
    );
    let (status, _) = call(gateway, Method::DELETE, &path, &ann, None).await;
    assert_eq!(status, 404);
    // The master key may read any key's response.
    let (status, _) = get(gateway, MASTER, &format!("/v1/responses/{first_id}")).await;
    assert_eq!(status, 200);
    (first, ann)
}

#[tokio::test(flavor = "multi_thread")]
async fn translated_responses_are_stored_in_sqlite_and_outlive_a_restart() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/keys.db", dir.path().display());
    let gateway = start(&mock, dir.path(), &url);
    let (first, key) = stored_responses(&gateway, &mock).await;
    gateway.stop();

    // Written at shutdown at the latest, and read back from the database.
    let gateway = start(&mock, dir.path(), &url);
    let path = format!("/v1/responses/{}", first["id"].as_str().unwrap());
    let (status, found) = get(&gateway, &key, &path).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found, first);
    let bytes = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name()?.to_str()?.to_owned();
            name.starts_with("keys.db")
                .then(|| std::fs::read(&path).unwrap())
        })
        .flatten()
        .collect::<Vec<u8>>();
    assert!(
        !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
        "the raw key is in the database"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn translated_responses_are_stored_in_postgres_for_every_instance() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema = PgSchema::create().unwrap();
    let gateway = start(&mock, dir.path(), &schema.url);
    let (first, key) = stored_responses(&gateway, &mock).await;

    // Another instance on the same database finds it once the writer stored it.
    let other_dir = tempfile::tempdir().unwrap();
    let replica = start(&mock, other_dir.path(), &schema.url);
    let path = format!("/v1/responses/{}", first["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let (status, found) = get(&replica, &key, &path).await;
        if status == 200 || Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(found, first);
    // A follow-up there continues the conversation.
    let (status, next) = create(
        &replica,
        &key,
        json!({"model": "claude", "previous_response_id": first["id"], "input": "Still there?"}),
    )
    .await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(
        turns(&mock.last_request().unwrap().body),
        [
            turn("user", "Hi, I am Ann."),
            turn("assistant", ANSWER),
            turn("user", "Still there?"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_responses_expire_after_the_retention_period() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/keys.db", dir.path().display());
    let failed = start_with(
        &mock,
        dir.path(),
        &url,
        "  responses_retention_period: soon\n",
    )
    .err()
    .expect("a bad retention must stop the start");
    assert!(
        failed.contains("responses_retention_period must be a duration"),
        "{failed}"
    );

    let gateway = start_with(
        &mock,
        dir.path(),
        &url,
        "  responses_retention_period: 1s\n",
    )
    .unwrap();
    let key = generate(&gateway).await;
    let (status, response) =
        create(&gateway, &key, json!({"model": "claude", "input": "hi"})).await;
    assert_eq!(status, 200, "{response}");
    let path = format!("/v1/responses/{}", response["id"].as_str().unwrap());
    let (status, _) = get(&gateway, &key, &path).await;
    assert_eq!(status, 200);
    // Older than the retention period: gone, whether or not the hourly deletion ran.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, _) = get(&gateway, &key, &path).await;
    assert_eq!(status, 404);
}
