//! Spend logs end to end: the real binary on SQLite and the local PostgreSQL, the mock upstream;
//! one row per model request (successes, streams, upstream failures, refusals) with LiteLLM's
//! fields, `/spend/logs` filters and who may see which rows, `/spend/tags`, and no raw key
//! anywhere in the rows or the database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vaultgate_mock_upstream::Script;
use vaultgate_testkit::Gateway;
use vaultgate_testkit::postgres::PgSchema;

#[path = "spend_logs/aggregates.rs"]
mod aggregates;
mod plane;

use aggregates::{global_aggregates, litellm_metrics};
use plane::{As, BIN, Env, MASTER, bad, ok};

/// gpt-a's price in the test config (0.01 per prompt and 0.02 per completion token) for the
/// mock upstream's usage (5 prompt, 7 completion tokens).
const GPT_A_COST: f64 = 5.0 * 0.01 + 7.0 * 0.02;

fn sha256(text: &str) -> String {
    vaultgate_keys::hash_key(text)
}

/// A chat request with the headers and fields a LiteLLM client may send.
async fn chat(gateway: &Gateway, key: &str, request_id: &str, body: Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(key)
        .header("x-request-id", request_id)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `/spend/logs` as `caller` until it lists `count` rows (bounded wait for the batch writer).
async fn rows(caller: &As<'_>, query: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = caller.get(&format!("/spend/logs{query}")).await;
        ok(status, &body);
        let list = body.as_array().cloned().unwrap();
        if list.len() >= count || Instant::now() > deadline {
            assert_eq!(list.len(), count, "{query}: {body:#}");
            return list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn by_id<'a>(rows: &'a [Value], id: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["request_id"] == id)
        .unwrap_or_else(|| panic!("no row {id} in {rows:#?}"))
}

fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let days = i64::try_from(secs / 86_400).unwrap();
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

struct Keys {
    one: String,
    one_hash: String,
    two: String,
    two_hash: String,
}

/// A team with a budget, an internal user in it with a budgeted, tagged key, and a plain key.
async fn setup(admin: &As<'_>) -> Keys {
    let (s, b) = admin.post("/user/new", json!({"user_id": "u1"})).await;
    ok(s, &b);
    let (s, b) = admin
        .post(
            "/team/new",
            json!({"team_id": "t1", "team_alias": "eng", "max_budget": 100}),
        )
        .await;
    ok(s, &b);
    let (s, b) = admin
        .post(
            "/team/member_add",
            json!({"team_id": "t1", "member": {"role": "user", "user_id": "u1"}}),
        )
        .await;
    ok(s, &b);
    let (s, one) = admin
        .post(
            "/key/generate",
            json!({"user_id": "u1", "team_id": "t1", "key_alias": "k-one", "max_budget": 10,
                   "tags": ["team-eng"]}),
        )
        .await;
    ok(s, &one);
    let (s, two) = admin
        .post("/key/generate", json!({"key_alias": "k-two"}))
        .await;
    ok(s, &two);
    let one_key = one["key"].as_str().unwrap().to_owned();
    let two_key = two["key"].as_str().unwrap().to_owned();
    assert_eq!(one["token"].as_str().unwrap(), sha256(&one_key));
    Keys {
        one_hash: sha256(&one_key),
        one: one_key,
        two_hash: sha256(&two_key),
        two: two_key,
    }
}

async fn spend_logs(database_url: &str, env: &Env) -> Keys {
    let gateway = env.gateway(database_url);
    let admin = As::new(&gateway, MASTER);
    let keys = setup(&admin).await;

    // Four requests of key one: tagged with metadata, a stream, an upstream failure, a refusal.
    let (s, b) = chat(
        &gateway,
        &keys.one,
        "req-tagged",
        json!({"model": "gpt-a", "user": "cust-1", "tags": ["prod", "a"],
               "metadata": {"spend_logs_metadata": {"job": "j1"}, "note": "not for logs"},
               "messages": [{"role": "user", "content": "a secret prompt"}]}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = chat(
        &gateway,
        &keys.one,
        "req-stream",
        json!({"model": "gpt-a", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    for _ in 0..5 {
        env.mock.push(Script {
            status: Some(500),
            ..Script::default()
        });
    }
    let (s, b) = chat(
        &gateway,
        &keys.one,
        "req-upstream-500",
        json!({"model": "gpt-b", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert!(s >= 500, "{s} {b}");
    env.mock.clear_scripts();
    let (s, b) = chat(
        &gateway,
        &keys.one,
        "req-unknown-model",
        json!({"model": "gpt-nope", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    // Key two: one request, and one of the master key.
    let (s, b) = chat(
        &gateway,
        &keys.two,
        "req-two",
        json!({"model": "gpt-b", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = chat(
        &gateway,
        MASTER,
        "req-master",
        json!({"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(s, 200, "{b}");

    let all = rows(&admin, "", 6).await;
    let tagged = by_id(&all, "req-tagged");
    assert_eq!(tagged["call_type"], "acompletion");
    assert_eq!(tagged["api_key"], keys.one_hash.as_str());
    assert!(
        (tagged["spend"].as_f64().unwrap() - GPT_A_COST).abs() < 1e-9,
        "{tagged}"
    );
    assert_eq!(tagged["prompt_tokens"], 5);
    assert_eq!(tagged["completion_tokens"], 7);
    assert_eq!(tagged["total_tokens"], 12);
    assert_eq!(tagged["model"], "gpt-a-upstream");
    assert_eq!(tagged["model_group"], "gpt-a");
    assert!(!tagged["model_id"].as_str().unwrap().is_empty());
    assert_eq!(tagged["custom_llm_provider"], "openai");
    assert_eq!(
        tagged["api_base"],
        format!("{}/v1", env.mock.url()).as_str()
    );
    assert_eq!(tagged["user"], "u1");
    assert_eq!(tagged["team_id"], "t1");
    assert_eq!(tagged["end_user"], "cust-1");
    assert_eq!(tagged["status"], "success");
    assert_eq!(tagged["cache_hit"], "False");
    assert_eq!(tagged["request_tags"], json!(["prod", "a", "team-eng"]));
    assert_eq!(
        tagged["metadata"]["spend_logs_metadata"],
        json!({"job": "j1"})
    );
    assert_eq!(tagged["metadata"]["user_api_key_alias"], "k-one");
    assert_eq!(tagged["metadata"]["user_api_key_team_alias"], "eng");
    assert_eq!(
        tagged["messages"],
        json!({}),
        "bodies stay out without store_prompts_in_spend_logs"
    );
    assert!(!tagged.to_string().contains("a secret prompt"));
    assert!(!tagged.to_string().contains("not for logs"));
    assert!(tagged["startTime"].as_str().unwrap() <= tagged["endTime"].as_str().unwrap());

    let stream = by_id(&all, "req-stream");
    assert_eq!(stream["status"], "success");
    assert_eq!(
        stream["total_tokens"], 12,
        "a stream logs the upstream's usage"
    );

    let failed = by_id(&all, "req-upstream-500");
    assert_eq!(failed["status"], "failure");
    assert_eq!(failed["model_group"], "gpt-b");
    assert_eq!(failed["spend"], 0.0);
    let info = &failed["metadata"]["error_information"];
    assert_eq!(info["error_class"], "InternalServerError", "{failed}");
    assert_eq!(info["error_code"], "500");

    let refused = by_id(&all, "req-unknown-model");
    assert_eq!(refused["status"], "failure");
    assert_eq!(refused["model_group"], "gpt-nope");
    assert_eq!(refused["model_id"], "");
    assert_eq!(
        refused["metadata"]["error_information"]["error_class"],
        "BadRequestError"
    );

    let master = by_id(&all, "req-master");
    assert_eq!(
        master["api_key"], "litellm_proxy_master_key",
        "not even the master key's hash is stored"
    );

    // Filters: a key raw or hashed, a user, a team, a request id, a page.
    for query in [
        format!("?api_key={}", keys.one),
        format!("?api_key={}", keys.one_hash),
    ] {
        let list = rows(&admin, &query, 4).await;
        assert!(list.iter().all(|r| r["api_key"] == keys.one_hash.as_str()));
    }
    rows(&admin, "?user_id=u1", 4).await;
    rows(&admin, "?team_id=t1", 4).await;
    let one = rows(&admin, "?request_id=req-two", 1).await;
    assert_eq!(one[0]["api_key"], keys.two_hash.as_str());
    rows(&admin, "?page_size=2", 2).await;
    rows(&admin, "?page_size=5&page=2", 1).await;
    rows(&admin, "?end_user=cust-1", 1).await;
    let (s, b) = admin.get("/spend/logs?page_size=0").await;
    bad(s, &b, 400, "page_size");
    let (s, b) = admin.get("/spend/logs?start_date=yesterday").await;
    bad(s, &b, 400, "start_date");

    // A date range summarizes per day, as LiteLLM does (summarize=false lists the rows).
    let day = today();
    let (s, summary) = admin
        .get(&format!("/spend/logs?start_date={day}&end_date={day}"))
        .await;
    ok(s, &summary);
    let entry = &summary[0];
    assert_eq!(entry["startTime"], day.as_str(), "{summary}");
    assert!(
        (entry["spend"].as_f64().unwrap() - 3.0 * GPT_A_COST).abs() < 1e-9,
        "{summary}"
    );
    assert!((entry[&keys.one_hash].as_f64().unwrap() - 2.0 * GPT_A_COST).abs() < 1e-9);
    assert!((entry["users"]["u1"].as_f64().unwrap() - 2.0 * GPT_A_COST).abs() < 1e-9);
    assert!((entry["models"]["gpt-a-upstream"].as_f64().unwrap() - 3.0 * GPT_A_COST).abs() < 1e-9);
    let (s, listed) = admin
        .get(&format!(
            "/spend/logs?start_date={day}&end_date={day}&summarize=false&api_key={}",
            keys.two
        ))
        .await;
    ok(s, &listed);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // Who sees what: an internal user their own user's rows whatever they ask; a key without a
    // user only its own rows.
    let user_one = As::new(&gateway, &keys.one);
    let list = rows(&user_one, "?user_id=someone-else", 4).await;
    assert!(list.iter().all(|r| r["user"] == "u1"));
    let plain = As::new(&gateway, &keys.two);
    let list = rows(&plain, "", 1).await;
    assert_eq!(list[0]["request_id"], "req-two");
    let (s, b) = user_one.get("/spend/tags").await;
    assert_eq!(s, 401, "{b}");

    // Tags: the request's and the key's.
    let (s, tags) = admin.get("/spend/tags").await;
    ok(s, &tags);
    let tag = |name: &str| {
        tags.as_array()
            .unwrap()
            .iter()
            .find(|t| t["individual_request_tag"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no tag {name} in {tags}"))
    };
    assert_eq!(tag("prod")["log_count"], 1);
    assert!((tag("prod")["total_spend"].as_f64().unwrap() - GPT_A_COST).abs() < 1e-9);
    assert_eq!(tag("team-eng")["log_count"], 4, "{tags}");

    global_aggregates(&admin, &user_one, &keys, &day).await;
    litellm_metrics(&gateway, &keys).await;

    // No raw key in any row.
    let (_, everything) = admin.get("/spend/logs?page_size=1000").await;
    let text = everything.to_string();
    for secret in [keys.one.as_str(), keys.two.as_str(), MASTER] {
        assert!(!text.contains(secret), "a raw key is in the spend logs");
    }
    keys
}

/// Every byte of the SQLite files (database and write-ahead log).
fn sqlite_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("plane.db") {
            all.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn spend_logs_on_sqlite() {
    let env = Env::new().await;
    let keys = spend_logs(&env.sqlite_url(), &env).await;
    let bytes = sqlite_bytes(env.dir.path());
    assert!(contains(&bytes, &keys.one_hash), "the rows are in the file");
    for secret in [keys.one.as_str(), keys.two.as_str(), MASTER] {
        assert!(
            !contains(&bytes, secret),
            "a raw key is in the database file"
        );
    }
}

#[tokio::test]
async fn spend_logs_on_postgres() {
    let env = Env::new().await;
    let schema = PgSchema::create().unwrap();
    let keys = spend_logs(&schema.url, &env).await;
    let dump = std::process::Command::new("psql")
        .arg(&schema.url)
        .args(["-At", "-c", "SELECT request_logs::text FROM request_logs"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains(&keys.one_hash), "{text}");
    for secret in [keys.one.as_str(), keys.two.as_str(), MASTER] {
        assert!(!text.contains(secret), "a raw key is in the database");
    }
}

/// `disable_spend_logs: true` keeps no rows (spend totals still count); a retention that is no
/// duration stops the start, naming the setting.
#[tokio::test]
async fn spend_logs_can_be_turned_off_and_bad_retention_stops_the_start() {
    let env = Env::new().await;
    let config = plane::config(&env.mock.url(), &env.sqlite_url())
        + "  disable_spend_logs: true\n  maximum_spend_logs_retention_period: 30d\n";
    let gateway = Gateway::builder(BIN, &config)
        .env("E2E_PROVIDER_KEY", "sk-provider-teams")
        .dir(env.dir.path())
        .start()
        .unwrap();
    let admin = As::new(&gateway, MASTER);
    let (s, key) = admin.post("/key/generate", json!({})).await;
    ok(s, &key);
    let raw = key["key"].as_str().unwrap();
    let (s, b) = chat(
        &gateway,
        raw,
        "req-off",
        json!({"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    // Spend reaches the store on the writers' shared tick: once it shows, rows would have too.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, daily) = admin.get(&format!("/admin/spend/daily?key={raw}")).await;
        ok(s, &daily);
        let written = !daily["keys"][0]["days"].as_array().unwrap().is_empty();
        assert!(
            written || Instant::now() < deadline,
            "spend never written: {daily}"
        );
        if written {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, list) = admin.get("/spend/logs").await;
    ok(s, &list);
    assert_eq!(list, json!([]));
    drop(gateway);

    let config = plane::config(&env.mock.url(), &env.sqlite_url())
        + "  maximum_spend_logs_retention_period: soon\n";
    let failed = Gateway::builder(BIN, &config)
        .env("E2E_PROVIDER_KEY", "sk-provider-teams")
        .dir(env.dir.path())
        .start()
        .err()
        .expect("a bad retention must stop the start");
    assert!(
        failed.contains("maximum_spend_logs_retention_period must be a duration"),
        "{failed}"
    );
}
