//! What the health and metrics routes show to whom: anyone learns whether the gateway is
//! ready; the details and the metrics take the master key or the metrics key, unless opened.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-exposure-2b7d";
const METRICS_KEY: &str = "metrics-token-exposure-81f3";
const MODELS: &str =
    "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, mock_response: hi}\n";

fn start(extra_general: &str, litellm_settings: &str) -> Gateway {
    let config = format!(
        "{MODELS}{litellm_settings}general_settings:\n  master_key: {MASTER}\n  metrics_key: os.environ/METRICS_TOKEN\n{extra_general}"
    );
    Gateway::builder(BIN, &config)
        .env("METRICS_TOKEN", METRICS_KEY)
        .start()
        .unwrap()
}

async fn get(gateway: &Gateway, path: &str, key: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", gateway.url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn fields(body: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(body).unwrap();
    value.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_readiness_details_take_an_operator_key() {
    let gateway = start("", "");
    let (status, body) = get(&gateway, "/metrics", None).await;
    assert_eq!(status, 401, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["type"], "auth_error");
    assert_eq!(get(&gateway, "/metrics", Some("sk-wrong")).await.0, 401);
    for key in [MASTER, METRICS_KEY] {
        let (status, body) = get(&gateway, "/metrics", Some(key)).await;
        assert_eq!(status, 200);
        assert!(
            body.contains("# TYPE") || body.is_empty() || body.contains("vaultgate_"),
            "{body}"
        );
    }

    let (status, body) = get(&gateway, "/health/readiness", None).await;
    assert_eq!(status, 200);
    assert_eq!(fields(&body), ["status"], "{body}");
    for key in [MASTER, METRICS_KEY] {
        let (_, body) = get(&gateway, "/health/readiness", Some(key)).await;
        let fields = fields(&body);
        assert!(
            fields.contains(&"vault".to_owned()) && fields.contains(&"db".to_owned()),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn litellm_and_vaultgate_switches_open_them() {
    let gateway = start(
        "  public_readiness_details: true\n",
        "litellm_settings: {require_auth_for_metrics_endpoint: false}\n",
    );
    assert_eq!(get(&gateway, "/metrics", None).await.0, 200);
    let (_, body) = get(&gateway, "/health/readiness", None).await;
    assert!(fields(&body).contains(&"vault".to_owned()), "{body}");
}
