//! Bedrock deployments without long-term keys in the config: a role assumed through STS
//! (`aws_role_name`), a web identity token (EKS's IRSA), a shared credentials file. STS is a
//! real moto server; the mock Bedrock verifies each SigV4 signature against the keys moto
//! holds now (its STS sessions), so a request passes only if signed with what STS issued.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_mock_upstream::bedrock::{AwsKey, AwsKeys};
use vaultgate_testkit::Gateway;
use vaultgate_testkit::moto::Moto;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-bedrock-roles-71c3";
const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const BASE_SECRET: &str = "base-secret-for-sts-0c1d/+never-logged";

fn config(mock: &MockUpstream, params: &str) -> String {
    format!(
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: bedrock/{MODEL}\n      aws_bedrock_runtime_endpoint: {}\n      aws_region_name: eu-west-3\n{params}router_settings:\n  num_retries: 0\ngeneral_settings:\n  master_key: os.environ/TEST_MASTER_KEY\n",
        mock.url()
    )
}

async fn chat(gateway: &Gateway) -> (u16, Value) {
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]});
    gateway
        .post_json("/v1/chat/completions", MASTER, &body)
        .await
        .unwrap()
}

/// The readiness line of the `claude` deployment's credentials, and the instance's status.
async fn credentials_readiness(gateway: &Gateway) -> (Value, String) {
    let (_, ready) = gateway.get_json("/health/readiness", MASTER).await.unwrap();
    let line = ready["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model_name"] == "claude")
        .cloned()
        .unwrap_or_else(|| panic!("no credentials line: {ready}"));
    (line, ready.to_string())
}

/// The first answer once the background fetch had its chance (bounded).
async fn first_answer(gateway: &Gateway) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = chat(gateway).await;
        if answer.0 != 503 || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The STS session moto issued to the last Bedrock request's signer.
async fn signing_session(mock: &MockUpstream, moto: &Moto) -> Value {
    let last = mock.last_request().unwrap();
    let verified = last.signature.unwrap().expect("signature verified");
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", moto.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data["sts"]["AssumedRole"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["access_key_id"] == verified.access_key_id.as_str())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "signed with {} that STS never issued",
                verified.access_key_id
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_is_assumed_with_the_deployments_keys_and_its_session_signs() {
    let moto = Moto::start().unwrap();
    let mock = MockUpstream::start().await.unwrap();
    mock.set_aws_keys(AwsKeys::Moto(moto.url()));
    let params = format!(
        "      aws_access_key_id: os.environ/BASE_KEY_ID\n      aws_secret_access_key: os.environ/BASE_SECRET\n      aws_role_name: arn:aws:iam::123456789012:role/bedrock-caller\n      aws_session_name: gateway-eu\n      aws_external_id: ext-42\n      aws_sts_endpoint: {}\n",
        moto.url()
    );
    let gateway = Gateway::builder(BIN, &config(&mock, &params))
        .env("TEST_MASTER_KEY", MASTER)
        .env("BASE_KEY_ID", "AKIABASEKEY0000001")
        .env("BASE_SECRET", BASE_SECRET)
        .rust_log("trace")
        .start()
        .unwrap();
    let (status, body) = first_answer(&gateway).await;
    assert_eq!(status, 200, "{body}\n{}", gateway.logs());
    let session = signing_session(&mock, &moto).await;
    assert_eq!(
        session["role_arn"],
        "arn:aws:iam::123456789012:role/bedrock-caller"
    );
    assert_eq!(session["session_name"], "gateway-eu");
    assert_eq!(session["external_id"], "ext-42");
    // Temporary credentials carry their session token.
    assert!(
        mock.last_request()
            .unwrap()
            .header("x-amz-security-token")
            .is_some()
    );
    let logs = gateway.logs();
    let secret = session["secret_access_key"].as_str().unwrap();
    assert!(
        !logs.contains(BASE_SECRET) && !logs.contains(secret),
        "a secret reached the logs"
    );
    // Readiness: the source, the time left and the last refresh, no secret.
    let (line, shown) = credentials_readiness(&gateway).await;
    assert_eq!(line["provider"], "bedrock");
    assert_eq!(line["source"], "assume_role");
    assert_eq!(line["status"], "ok");
    assert!(line["expires_in_secs"].as_i64().unwrap() > 0, "{line}");
    assert!(line["refreshed_secs_ago"].as_i64().unwrap() >= 0, "{line}");
    assert_eq!(line["last_error"], Value::Null);
    let session_token = session["session_token"].as_str().unwrap_or("no token");
    for secret in [BASE_SECRET, secret, session_token] {
        assert!(!shown.contains(secret), "readiness shows a secret");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_identity_token_file_is_exchanged_for_credentials() {
    let moto = Moto::start().unwrap();
    let mock = MockUpstream::start().await.unwrap();
    mock.set_aws_keys(AwsKeys::Moto(moto.url()));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2ln\n",
    )
    .unwrap();
    let gateway = Gateway::builder(BIN, &config(&mock, ""))
        .env("TEST_MASTER_KEY", MASTER)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap())
        .env(
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/irsa-gateway",
        )
        .env("AWS_ROLE_SESSION_NAME", "pod-7")
        .env("AWS_ENDPOINT_URL_STS", &moto.url())
        .start()
        .unwrap();
    let (status, body) = first_answer(&gateway).await;
    assert_eq!(status, 200, "{body}\n{}", gateway.logs());
    let session = signing_session(&mock, &moto).await;
    assert_eq!(
        session["role_arn"],
        "arn:aws:iam::123456789012:role/irsa-gateway"
    );
    assert_eq!(session["session_name"], "pod-7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_credentials_file_profile_signs() {
    let mock = MockUpstream::start().await.unwrap();
    mock.set_aws_keys(AwsKeys::Static(vec![AwsKey {
        access_key_id: "AKIAPROFILEKEY00001".into(),
        secret_access_key: "profile-secret-9e8d".into(),
        session_token: None,
    }]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        "[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = wrong\n\n[bedrock]\naws_access_key_id = AKIAPROFILEKEY00001\naws_secret_access_key = profile-secret-9e8d\n",
    )
    .unwrap();
    let gateway = Gateway::builder(BIN, &config(&mock, "      aws_profile_name: bedrock\n"))
        .env("TEST_MASTER_KEY", MASTER)
        .env("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap())
        .start()
        .unwrap();
    let (status, body) = first_answer(&gateway).await;
    assert_eq!(status, 200, "{body}\n{}", gateway.logs());
    let verified = mock.last_request().unwrap().signature.unwrap().unwrap();
    assert_eq!(verified.access_key_id, "AKIAPROFILEKEY00001");
    // The default chain's step that served, keys that do not expire.
    let (line, shown) = credentials_readiness(&gateway).await;
    assert_eq!(line["source"], "shared_file", "{line}");
    assert_eq!(line["status"], "ok");
    assert_eq!(line["expires_in_secs"], Value::Null);
    assert!(!shown.contains("profile-secret-9e8d"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_unreachable_is_a_503_that_says_why_and_calls_no_one() {
    let mock = MockUpstream::start().await.unwrap();
    let closed = vaultgate_testkit::openbao::free_port().unwrap();
    let params = format!(
        "      aws_access_key_id: os.environ/BASE_KEY_ID\n      aws_secret_access_key: os.environ/BASE_SECRET\n      aws_role_name: arn:aws:iam::123456789012:role/bedrock-caller\n      aws_sts_endpoint: http://127.0.0.1:{closed}\n"
    );
    let gateway = Gateway::builder(BIN, &config(&mock, &params))
        .env("TEST_MASTER_KEY", MASTER)
        .env("BASE_KEY_ID", "AKIABASEKEY0000001")
        .env("BASE_SECRET", BASE_SECRET)
        .start()
        .unwrap();
    // Give the first fetch time to fail.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = chat(&gateway).await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no AWS credentials"), "{message}");
    assert!(message.contains("STS unreachable"), "{message}");
    assert!(!message.contains(BASE_SECRET));
    assert_eq!(mock.requests().len(), 0, "nothing reached Bedrock");
    // Readiness is degraded and names the deployment.
    let (line, shown) = credentials_readiness(&gateway).await;
    assert!(shown.contains(r#""status":"degraded""#), "{shown}");
    assert_eq!(line["deployment"], "claude-0");
    assert_eq!(line["status"], "unavailable");
    assert!(
        line["last_error"]
            .as_str()
            .unwrap()
            .contains("STS unreachable"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_degraded_while_no_credentials_can_be_fetched_and_recovers_when_they_can() {
    let moto = Moto::start().unwrap();
    let mock = MockUpstream::start().await.unwrap();
    mock.set_aws_keys(AwsKeys::Moto(moto.url()));
    let dir = tempfile::tempdir().unwrap();
    // The platform has not written the web identity token yet.
    let token_file = dir.path().join("token");
    let gateway = Gateway::builder(BIN, &config(&mock, ""))
        .env("TEST_MASTER_KEY", MASTER)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap())
        .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa-late")
        .env("AWS_ENDPOINT_URL_STS", &moto.url())
        .start()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let (line, shown) = credentials_readiness(&gateway).await;
        if line["status"] == "unavailable" {
            assert!(shown.contains(r#""status":"degraded""#), "{shown}");
            break line;
        }
        assert!(Instant::now() < deadline, "{line}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(line["deployment"], "claude-0");
    let error = line["last_error"].as_str().unwrap();
    assert!(error.contains("AWS_WEB_IDENTITY_TOKEN_FILE"), "{error}");
    assert_eq!(chat(&gateway).await.0, 503);

    // The token appears: the next retry (backoff) gets credentials and readiness recovers.
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJsYXRlIn0.c2ln\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let line = loop {
        let (line, shown) = credentials_readiness(&gateway).await;
        if line["status"] == "ok" {
            assert!(shown.contains(r#""status":"healthy""#), "{shown}");
            break line;
        }
        assert!(Instant::now() < deadline, "{line}\n{}", gateway.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(line["source"], "web_identity");
    assert_eq!(line["last_error"], Value::Null);
    let (status, body) = chat(&gateway).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        signing_session(&mock, &moto).await["role_arn"],
        "arn:aws:iam::123456789012:role/irsa-late"
    );
}
