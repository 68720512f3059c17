use super::*;
use vaultgate_config::Config;

fn deployment(yaml: &str) -> Deployment {
    let config = Config::parse(yaml).unwrap();
    Deployment::from_config(0, &config.model_list[0], None, None).unwrap()
}

fn body(json: &str) -> ChatBody {
    ChatBody::parse(json.as_bytes()).unwrap()
}

#[test]
fn azure_url_and_header() {
    let d = deployment(
        "model_list:\n  - model_name: gpt\n    litellm_params: {model: azure/dep-1, api_base: 'https://x.openai.azure.com/', api_key: k}\n",
    );
    let client = reqwest::Client::new();
    let resolved = Resolved {
        api_base: Some("https://x.openai.azure.com/"),
        api_key: Some("azure-key"),
        api_version: Some("2024-02-01"),
        ..Resolved::default()
    };
    let request = build_request(
        &client,
        &d,
        &resolved,
        Endpoint::Embeddings,
        &body(r#"{"model":"gpt","input":"hi"}"#),
        true,
    )
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(
        request.url().as_str(),
        "https://x.openai.azure.com/openai/deployments/dep-1/embeddings?api-version=2024-02-01"
    );
    assert_eq!(request.headers()["api-key"], "azure-key");
    assert!(request.headers().get("authorization").is_none());
}

#[test]
fn openai_body_gets_upstream_model_and_usage_option() {
    let d = deployment(
        "model_list:\n  - model_name: public\n    litellm_params: {model: openai/real-model}\n",
    );
    let client = reqwest::Client::new();
    let resolved = Resolved {
        api_base: Some("http://127.0.0.1:9/v1/"),
        api_key: Some("k"),
        ..Resolved::default()
    };
    let request = build_request(
        &client,
        &d,
        &resolved,
        Endpoint::ChatCompletions,
        &body(r#"{"model":"public","stream":true,"messages":[]}"#),
        true,
    )
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(
        request.url().as_str(),
        "http://127.0.0.1:9/v1/chat/completions"
    );
    assert_eq!(request.headers()["authorization"], "Bearer k");
    let sent: Value = serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
    assert_eq!(sent["model"], "real-model");
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[test]
fn parse_errors_are_400_naming_the_problem() {
    for (input, needle) in [
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        (r#"{"messages":[]}"#, "`model`"),
        (r#"{"model":5}"#, "`model`"),
    ] {
        let err = ChatBody::parse(input.as_bytes()).err().unwrap();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains(needle), "{input}: {err}");
    }
}

#[test]
fn mock_stream_ends_with_usage_then_done() {
    let request =
        body(r#"{"model":"m","messages":[{"role":"user","content":"hello there"}]}"#).fields;
    let (frames, usage) = mock::stream(
        Endpoint::ChatCompletions,
        "m",
        "one two three",
        &request,
        true,
    );
    assert_eq!(
        usage,
        Usage {
            prompt_tokens: 2,
            completion_tokens: 3
        }
    );
    assert_eq!(frames.last().unwrap().as_ref(), b"data: [DONE]\n\n");
    let usage_frame = std::str::from_utf8(&frames[frames.len() - 2]).unwrap();
    assert!(usage_frame.contains("\"choices\":[]") && usage_frame.contains("\"total_tokens\":5"));
}
