//! `vertex_ai/` with gcloud's user credentials and application default credentials, end to
//! end through the real binary: the mock plays Google's token endpoint (it checks the test
//! user's client and refresh token, and service-account JWTs), the metadata server (only with
//! `Metadata-Flavor: Google`) and Vertex AI (it takes only tokens it issued). Each source's
//! token reaches Vertex; readiness names the source, and goes `degraded` naming the deployment
//! while its token has expired and the token endpoint fails, and back when it answers again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_mock_upstream::google::{
    METADATA_PROJECT, TEST_CLIENT_SECRET, TEST_PRIVATE_KEY, TEST_REFRESH_TOKEN,
    authorized_user_json, service_account_json,
};
use vaultgate_testkit::{Gateway, GatewayBuilder};

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-vertex-adc-7e21";
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// A Vertex deployment `name` with `params` (none: application default credentials) and an
/// OpenAI one (`other`) on the same mock.
fn config(url: &str, models: &[(&str, &str)]) -> String {
    let mut text = String::from("model_list:\n");
    for (name, params) in models {
        text.push_str(&format!(
            "  - model_name: {name}\n    litellm_params:\n      model: vertex_ai/gemini-2.0-flash\n      api_base: '{url}'\n{params}"
        ));
    }
    text.push_str(&format!(
        "  - model_name: other\n    litellm_params: {{model: openai/gpt-x, api_base: '{url}/v1', api_key: sk-up}}\nrouter_settings: {{num_retries: 0}}\ngeneral_settings:\n  master_key: {MASTER}\n"
    ));
    text
}

/// A gateway that sees no Google credentials of the machine: an empty gcloud directory and
/// the metadata server at `metadata` (a host:port).
fn isolated(config: &str, gcloud: &Path, metadata: &str) -> GatewayBuilder {
    Gateway::builder(BIN, config)
        .env("CLOUDSDK_CONFIG", &gcloud.display().to_string())
        .env("HOME", &gcloud.display().to_string())
        .env("GCE_METADATA_HOST", metadata)
        .env("GOOGLE_APPLICATION_CREDENTIALS", "")
        .env("VERTEXAI_CREDENTIALS", "")
        .env("GOOGLE_CLOUD_PROJECT", "")
        .env("GCLOUD_PROJECT", "")
}

async fn chat(gateway: &Gateway, model: &str) -> (u16, Value) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    gateway
        .post_json("/v1/chat/completions", MASTER, &body)
        .await
        .unwrap()
}

async fn readiness(gateway: &Gateway) -> Value {
    let (_, ready) = gateway.get_json("/health/readiness", MASTER).await.unwrap();
    ready
}

fn credentials_of<'a>(readiness: &'a Value, model: &str) -> &'a Value {
    readiness["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model_name"] == model)
        .unwrap_or_else(|| panic!("{model} not in {readiness}"))
}

/// Readiness once `done` holds (bounded: the background refresher's pace, not a timing).
async fn readiness_when(gateway: &Gateway, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = readiness(gateway).await;
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{now}\n{}", gateway.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The last Vertex call (the refresher's token requests may come after it): its project and
/// its token.
fn vertex_call(mock: &MockUpstream) -> (String, String) {
    let requests = mock.requests();
    let (seen, project) = requests
        .iter()
        .rev()
        .find_map(|r| {
            let rest = r.uri.strip_prefix("/v1/projects/")?;
            Some((r, rest.split('/').next()?.to_owned()))
        })
        .expect("no Vertex call");
    (project, seen.header("authorization").unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn gcloud_user_credentials_inline_in_a_file_or_found_by_adc_are_refreshed_into_tokens() {
    let mock = MockUpstream::start().await.unwrap();
    mock.enable_google_auth(Duration::from_secs(3600));
    let token_uri = format!("{}/token", mock.url());
    let gcloud = tempfile::tempdir().unwrap();
    // What `gcloud auth application-default login` writes (with our token endpoint).
    std::fs::write(
        gcloud.path().join("application_default_credentials.json"),
        authorized_user_json(Some(&token_uri), TEST_REFRESH_TOKEN, "gcloud-quota"),
    )
    .unwrap();
    let files = tempfile::tempdir().unwrap();
    let user_file = files.path().join("user.json");
    std::fs::write(
        &user_file,
        authorized_user_json(Some(&token_uri), TEST_REFRESH_TOKEN, "file-quota"),
    )
    .unwrap();
    let config = config(
        &mock.url(),
        &[
            ("inline", "      vertex_credentials: os.environ/USER_JSON\n"),
            (
                "in-file",
                &format!("      vertex_credentials: {}\n", user_file.display()),
            ),
            ("adc", "      vertex_project: named-project\n"),
        ],
    );
    let gateway = isolated(&config, gcloud.path(), "127.0.0.1:9")
        .env(
            "USER_JSON",
            &authorized_user_json(Some(&token_uri), TEST_REFRESH_TOKEN, "inline-quota"),
        )
        .rust_log("trace")
        .start()
        .unwrap();

    let mut tokens = Vec::new();
    for (model, project) in [
        ("inline", "inline-quota"),
        ("in-file", "file-quota"),
        ("adc", "named-project"),
    ] {
        let (status, body) = chat(&gateway, model).await;
        assert_eq!(status, 200, "{model}: {body}\n{}", gateway.logs());
        let (seen_project, token) = vertex_call(&mock);
        // The user's quota project is the project unless the deployment names one.
        assert_eq!(seen_project, project);
        assert!(token.starts_with("Bearer ya29.user-"), "{token}");
        tokens.push(token);
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "one token per credential: {tokens:?}");
    assert_eq!(mock.count("/token"), 3, "each fetched once, at start");
    assert_eq!(mock.count(METADATA_TOKEN_PATH), 0);

    let ready = readiness(&gateway).await;
    assert_eq!(ready["status"], "healthy", "{ready}");
    let adc = credentials_of(&ready, "adc");
    assert_eq!(adc["source"], "application_default");
    assert_eq!(adc["status"], "ok");
    assert!(
        adc["detail"]
            .as_str()
            .unwrap()
            .contains("application_default_credentials.json"),
        "{adc}"
    );
    assert!(adc["expires_in_secs"].as_i64().unwrap() > 3000, "{adc}");
    assert!(adc["refreshed_secs_ago"].as_i64().unwrap() >= 0, "{adc}");
    assert_eq!(
        credentials_of(&ready, "inline")["source"],
        "authorized_user"
    );
    assert_eq!(credentials_of(&ready, "in-file")["source"], "key_file");
    let shown = ready.to_string();
    let logs = gateway.logs();
    for secret in [TEST_REFRESH_TOKEN, TEST_CLIENT_SECRET] {
        assert!(!shown.contains(secret), "readiness shows a secret");
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    assert!(!logs.contains(tokens[0].trim_start_matches("Bearer ")));

    // `vaultgate check` says where each will get its token, without a value.
    let output = isolated(&config, gcloud.path(), "127.0.0.1:9")
        .env("USER_JSON", "{}")
        .run(&["check"])
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ok   credentials adc: application default credentials from")
            && stdout.contains("ok   credentials inline: vertex_credentials"),
        "{stdout}"
    );
    assert!(!stdout.contains(TEST_REFRESH_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn google_application_credentials_names_the_file_before_gcloud_and_the_metadata_server() {
    let mock = MockUpstream::start().await.unwrap();
    mock.enable_google_auth(Duration::from_secs(3600));
    let token_uri = format!("{}/token", mock.url());
    let gcloud = tempfile::tempdir().unwrap();
    std::fs::write(
        gcloud.path().join("application_default_credentials.json"),
        authorized_user_json(Some(&token_uri), "1//not-the-file-named", "gcloud-quota"),
    )
    .unwrap();
    let key_file = gcloud.path().join("service-account.json");
    std::fs::write(
        &key_file,
        service_account_json(&token_uri, TEST_PRIVATE_KEY, "sa-project"),
    )
    .unwrap();
    let config = config(&mock.url(), &[("adc", "")]);
    let gateway = isolated(&config, gcloud.path(), &mock.addr.to_string())
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &key_file.display().to_string(),
        )
        .start()
        .unwrap();
    let (status, body) = chat(&gateway, "adc").await;
    assert_eq!(status, 200, "{body}\n{}", gateway.logs());
    // The service account's JWT was exchanged (the mock verified its signature).
    assert_eq!(
        vertex_call(&mock),
        ("sa-project".to_owned(), "Bearer ya29.mock-1".to_owned())
    );
    assert_eq!(mock.count(METADATA_TOKEN_PATH), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metadata_server_serves_when_no_file_is_found_and_readiness_follows_its_failures() {
    let mock = MockUpstream::start().await.unwrap();
    // Tokens of 12 s: replaced after 8 s, unusable after 10 s.
    mock.enable_google_auth(Duration::from_secs(12));
    let gcloud = tempfile::tempdir().unwrap();
    let config = config(&mock.url(), &[("adc", "")]);
    let gateway = isolated(&config, gcloud.path(), &mock.addr.to_string())
        .start()
        .unwrap();
    let ready = readiness_when(&gateway, |r| credentials_of(r, "adc")["status"] == "ok").await;
    let adc = credentials_of(&ready, "adc");
    assert_eq!(adc["source"], "application_default");
    assert!(
        adc["detail"].as_str().unwrap().contains("metadata server"),
        "{adc}"
    );
    let (status, body) = chat(&gateway, "adc").await;
    assert_eq!(status, 200, "{body}\n{}", gateway.logs());
    // The project is the metadata server's too.
    let (project, first) = vertex_call(&mock);
    assert_eq!(project, METADATA_PROJECT);
    assert!(first.starts_with("Bearer ya29.metadata-"), "{first}");
    let asked = mock
        .requests()
        .into_iter()
        .find(|r| r.uri.starts_with(METADATA_TOKEN_PATH))
        .unwrap();
    assert_eq!(asked.header("metadata-flavor"), Some("Google"));
    assert!(
        asked
            .uri
            .contains("scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform"),
        "{}",
        asked.uri
    );

    // The metadata server fails: once the token has expired, readiness is degraded and names
    // the deployment; its requests get a clear 503, the other deployment serves.
    mock.fail_google_tokens(true);
    let ready = readiness_when(&gateway, |r| r["status"] == "degraded").await;
    let adc = credentials_of(&ready, "adc");
    assert_eq!(adc["status"], "unavailable", "{ready}");
    assert_eq!(adc["deployment"], "adc-0");
    assert!(adc["expires_in_secs"].as_i64().unwrap() < 10, "{adc}");
    let error = adc["last_error"].as_str().unwrap();
    assert!(
        error.contains("500") && error.contains("metadata server"),
        "{error}"
    );
    let (status, body) = chat(&gateway, "adc").await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("no Google access token"), "{message}");
    assert_eq!(chat(&gateway, "other").await.0, 200);

    // It answers again: readiness recovers and requests carry the new token.
    mock.fail_google_tokens(false);
    readiness_when(&gateway, |r| r["status"] == "healthy").await;
    let (status, body) = chat(&gateway, "adc").await;
    assert_eq!(status, 200, "{body}\n{}", gateway.logs());
    let (_, token) = vertex_call(&mock);
    assert!(
        token.starts_with("Bearer ya29.metadata-") && token != first,
        "{token}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_any_credentials_the_gateway_starts_degraded_and_refuses_with_a_503() {
    let mock = MockUpstream::start().await.unwrap();
    let gcloud = tempfile::tempdir().unwrap();
    // Nothing listens there (a port just freed).
    let closed = format!(
        "127.0.0.1:{}",
        vaultgate_testkit::openbao::free_port().unwrap()
    );
    let config = config(&mock.url(), &[("adc", "      vertex_project: p\n")]);
    let output = isolated(&config, gcloud.path(), &closed)
        .run(&["check"])
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("warn credentials adc: no vertex_credentials")
            && stdout.contains(&format!("metadata server at {closed}")),
        "{stdout}"
    );
    let gateway = isolated(&config, gcloud.path(), &closed).start().unwrap();
    let ready = readiness_when(&gateway, |r| r["status"] == "degraded").await;
    let adc = credentials_of(&ready, "adc");
    assert_eq!(adc["status"], "unavailable");
    let error = adc["last_error"].as_str().unwrap();
    assert!(
        error.contains("no application default credentials")
            && error.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{error}"
    );
    let (status, body) = chat(&gateway, "adc").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(mock.count("/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"), 0);
    assert_eq!(chat(&gateway, "other").await.0, 200);
    // Never open: without the master key, no model.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&json!({"model": "adc", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        gateway
            .logs()
            .contains("refreshing a Vertex AI access token failed"),
        "{}",
        gateway.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_token_is_refreshed_before_it_expires_and_the_new_one_is_used() {
    let mock = MockUpstream::start().await.unwrap();
    // Tokens of 12 s are due for replacement after 8 s.
    mock.enable_google_auth(Duration::from_secs(12));
    let gcloud = tempfile::tempdir().unwrap();
    std::fs::write(
        gcloud.path().join("application_default_credentials.json"),
        authorized_user_json(
            Some(&format!("{}/token", mock.url())),
            TEST_REFRESH_TOKEN,
            "q",
        ),
    )
    .unwrap();
    let config = config(&mock.url(), &[("adc", "")]);
    let gateway = isolated(&config, gcloud.path(), "127.0.0.1:9")
        .start()
        .unwrap();
    let (status, body) = chat(&gateway, "adc").await;
    assert_eq!(status, 200, "{body}\n{}", gateway.logs());
    let (_, first) = vertex_call(&mock);
    let deadline = Instant::now() + Duration::from_secs(60);
    while mock.count("/token") < 2 {
        assert!(Instant::now() < deadline, "no refresh: {}", gateway.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Past the first token's lifetime (the mock refuses it then), the refreshed one serves.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, body) = chat(&gateway, "adc").await;
    assert_eq!(status, 200, "{body}\n{}", gateway.logs());
    let (_, token) = vertex_call(&mock);
    assert!(
        token.starts_with("Bearer ya29.user-") && token != first,
        "{token}"
    );
}
