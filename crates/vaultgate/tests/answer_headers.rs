//! The headers LiteLLM clients read off an answer, end to end against the real binary: the
//! request's cost and the key's spend (`x-litellm-response-cost`, `x-litellm-key-spend`), the
//! deployment's base URL without credentials (`x-litellm-model-api-base`), the key's own rate
//! limits (`x-ratelimit-*`, as LiteLLM's parallel-request limiter reports them) and the
//! provider's headers (`llm_provider-*`, its rate limits under OpenAI's names when the key has
//! none). Streams send their headers before the usage exists: no cost, the spend before them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-answer-headers-7c21";
/// The mock's usage is 5 prompt and 7 completion tokens: at these prices, 0.05 + 0.14 USD.
const COST: f64 = 5.0 * 0.01 + 7.0 * 0.02;
const TOKENS: u64 = 12;
/// In the mocked deployment's `api_base`: must never reach a client.
const BASE_SECRET: &str = "s3cret-in-the-base";

fn gateway(mock: &MockUpstream, dir: &std::path::Path) -> Gateway {
    let config = format!(
        r#"
model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-a-upstream, api_base: '{}/v1', api_key: sk-provider}}
    model_info: {{id: gpt-a-1, input_cost_per_token: 0.01, output_cost_per_token: 0.02}}
  - model_name: offline
    litellm_params: {{model: openai/offline, mock_response: hi, api_key: sk-provider,
      api_base: 'https://gateway:{BASE_SECRET}@llm.example.com/openai/?api-key={BASE_SECRET}#{BASE_SECRET}'}}
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

fn chat(gateway: &Gateway, key: &str, model: &str, stream: bool) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(key)
        .json(&json!({"model": model, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}))
}

/// A whole answer's status and headers (its body read).
async fn answer(request: reqwest::RequestBuilder) -> (u16, HeaderMap) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    response.bytes().await.unwrap();
    (status, headers)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

fn float(headers: &HeaderMap, name: &str) -> f64 {
    header(headers, name)
        .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
        .parse()
        .unwrap()
}

/// The provider's own headers on each answer of the mock.
fn provider_headers() -> Script {
    Script {
        headers: vec![
            ("x-ratelimit-remaining-requests", "4999".into()),
            ("x-ratelimit-reset-requests", "12ms".into()),
            ("openai-processing-ms", "42".into()),
            ("set-cookie", "__cf_bm=provider-session".into()),
        ],
        ..Script::default()
    }
}

fn minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_carry_cost_spend_base_and_the_key_s_rate_limits() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway(&mock, dir.path());
    let key = generate(
        &gateway,
        json!({"rpm_limit": 10, "tpm_limit": 1000, "max_budget": 5}),
    )
    .await;
    let started = minute();

    mock.push(provider_headers());
    let (status, first) = answer(chat(&gateway, &key, "gpt-a", false)).await;
    assert_eq!(status, 200, "{}", gateway.logs());
    assert!((float(&first, "x-litellm-response-cost") - COST).abs() < 1e-12);
    assert!((float(&first, "x-litellm-key-spend") - COST).abs() < 1e-12);
    assert_eq!(header(&first, "x-litellm-key-max-budget"), Some("5.0"));
    assert_eq!(header(&first, "x-litellm-key-rpm-limit"), Some("10"));
    assert_eq!(header(&first, "x-litellm-key-tpm-limit"), Some("1000"));
    let base = format!("{}/v1", mock.url());
    assert_eq!(
        header(&first, "x-litellm-model-api-base"),
        Some(base.as_str())
    );
    // The key's limits replace the provider's; the provider's own headers follow prefixed.
    assert_eq!(header(&first, "x-ratelimit-limit-requests"), Some("10"));
    assert_eq!(header(&first, "x-ratelimit-limit-tokens"), Some("1000"));
    assert_eq!(header(&first, "x-ratelimit-reset-requests"), Some("12ms"));
    assert_eq!(
        header(&first, "llm_provider-x-ratelimit-remaining-requests"),
        Some("4999")
    );
    assert_eq!(
        header(&first, "llm_provider-openai-processing-ms"),
        Some("42")
    );
    assert_eq!(header(&first, "llm_provider-set-cookie"), None);
    assert_eq!(header(&first, "set-cookie"), None);

    mock.push(provider_headers());
    let (_, second) = answer(chat(&gateway, &key, "gpt-a", false)).await;
    assert!((float(&second, "x-litellm-key-spend") - 2.0 * COST).abs() < 1e-12);

    // A stream's headers leave before its usage: no cost, the spend so far, its request
    // counted, its tokens not yet.
    let response = chat(&gateway, &key, "gpt-a", true).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let streamed = response.headers().clone();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        chunk.unwrap();
    }
    assert_eq!(header(&streamed, "x-litellm-response-cost"), None);
    assert!((float(&streamed, "x-litellm-key-spend") - 2.0 * COST).abs() < 1e-12);
    assert_eq!(
        header(&streamed, "x-litellm-model-api-base"),
        Some(base.as_str())
    );
    let (_, after) = answer(chat(&gateway, &key, "gpt-a", false)).await;
    assert!((float(&after, "x-litellm-key-spend") - 4.0 * COST).abs() < 1e-12);

    // Counts start again each minute: exact only when no minute began in between.
    if minute() == started {
        let remaining = |h: &HeaderMap, name: &str| header(h, name).unwrap().to_owned();
        assert_eq!(remaining(&first, "x-ratelimit-remaining-requests"), "9");
        assert_eq!(
            remaining(&first, "x-ratelimit-remaining-tokens"),
            (1000 - TOKENS).to_string()
        );
        assert_eq!(remaining(&second, "x-ratelimit-remaining-requests"), "8");
        assert_eq!(
            remaining(&second, "x-ratelimit-remaining-tokens"),
            (1000 - 2 * TOKENS).to_string()
        );
        assert_eq!(remaining(&streamed, "x-ratelimit-remaining-requests"), "7");
        assert_eq!(
            remaining(&streamed, "x-ratelimit-remaining-tokens"),
            (1000 - 2 * TOKENS).to_string()
        );
        assert_eq!(remaining(&after, "x-ratelimit-remaining-requests"), "6");
        assert_eq!(
            remaining(&after, "x-ratelimit-remaining-tokens"),
            (1000 - 4 * TOKENS).to_string()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_key_limits_the_provider_s_rate_limits_pass_and_bases_hide_credentials() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway(&mock, dir.path());

    // The master key has no limits and no spend of its own: the provider's rate limits stand.
    mock.push(provider_headers());
    let (status, headers) = answer(chat(&gateway, MASTER, "gpt-a", false)).await;
    assert_eq!(status, 200, "{}", gateway.logs());
    assert_eq!(
        header(&headers, "x-ratelimit-remaining-requests"),
        Some("4999")
    );
    assert!((float(&headers, "x-litellm-response-cost") - COST).abs() < 1e-12);
    assert_eq!(header(&headers, "x-litellm-key-spend"), None);

    // A key without rpm/tpm limits: its spend, no limits of its own.
    let key = generate(&gateway, json!({})).await;
    mock.push(provider_headers());
    let (_, headers) = answer(chat(&gateway, &key, "gpt-a", false)).await;
    assert_eq!(
        header(&headers, "x-ratelimit-remaining-requests"),
        Some("4999")
    );
    assert_eq!(header(&headers, "x-ratelimit-limit-requests"), None);
    assert!((float(&headers, "x-litellm-key-spend") - COST).abs() < 1e-12);

    // No user name, password, query or fragment of the configured base reaches the client.
    let (status, headers) = answer(chat(&gateway, &key, "offline", false)).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "x-litellm-model-api-base"),
        Some("https://llm.example.com/openai")
    );
    let all = format!("{headers:?}");
    assert!(!all.contains(BASE_SECRET), "{all}");
    // A mock answer prices like any other (an unknown model costs 0).
    assert_eq!(header(&headers, "x-litellm-response-cost"), Some("0.0"));
}
