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

/// What `build_request` sent before it wrote the body without copying the request.
fn copied_and_serialised(fields: &Map<String, Value>, model: &str, include_usage: bool) -> Vec<u8> {
    let mut fields = fields.clone();
    fields.insert("model".into(), Value::String(model.into()));
    if include_usage {
        let options = fields
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(options) = options {
            options.insert("include_usage".into(), Value::Bool(true));
        }
    }
    serde_json::to_vec(&fields).unwrap()
}

#[test]
fn upstream_body_is_byte_for_byte_the_patched_copy() {
    let bodies = [
        r#"{"model":"public","messages":[{"role":"user","content":"hi \"there\" \u00e9"}]}"#,
        r#"{"messages":[],"model":"public","stream":true}"#,
        r#"{"model":"public","stream":true,"stream_options":{"include_usage":false,"x":1}}"#,
        r#"{"model":"public","stream":true,"stream_options":{"a":1,"z":[1,2,{"k":null}]}}"#,
        r#"{"model":"public","stream":true,"stream_options":null,"temperature":0.5}"#,
        r#"{"model":"public","a":1,"mode":"m","modelx":2,"stream_optionsz":3,"zz":{}}"#,
        r#"{"model":"public"}"#,
        r#"{"input":["a","b"],"model":"public","user":"u"}"#,
    ];
    for text in bodies {
        let fields = body(text).fields;
        for include_usage in [false, true] {
            assert_eq!(
                String::from_utf8(upstream_body(&fields, "real-model", include_usage).unwrap())
                    .unwrap(),
                String::from_utf8(copied_and_serialised(&fields, "real-model", include_usage))
                    .unwrap(),
                "{text} include_usage={include_usage}"
            );
        }
    }
    // A body without `model` (translated requests) gets one, in its place.
    let mut fields = Map::new();
    fields.insert("messages".into(), Value::Array(vec![]));
    fields.insert("n".into(), Value::from(1));
    for include_usage in [false, true] {
        assert_eq!(
            upstream_body(&fields, "m", include_usage).unwrap(),
            copied_and_serialised(&fields, "m", include_usage)
        );
    }
}

#[test]
fn cached_upstream_urls_follow_a_changed_base() {
    let d = deployment(
        "model_list:\n  - model_name: public\n    litellm_params: {model: openai/real-model}\n",
    );
    let client = reqwest::Client::new();
    let url = |base: &'static str, endpoint: Endpoint| {
        let resolved = Resolved {
            api_base: Some(base),
            ..Resolved::default()
        };
        build_request(
            &client,
            &d,
            &resolved,
            endpoint,
            &body(r#"{"model":"public"}"#),
            false,
        )
        .unwrap()
        .build()
        .unwrap()
        .url()
        .to_string()
    };
    for _ in 0..2 {
        assert_eq!(
            url("http://a.test/v1", Endpoint::ChatCompletions),
            "http://a.test/v1/chat/completions"
        );
        assert_eq!(
            url("http://a.test/v1", Endpoint::Embeddings),
            "http://a.test/v1/embeddings"
        );
    }
    assert_eq!(
        url("http://b.test/v1/", Endpoint::ChatCompletions),
        "http://b.test/v1/chat/completions"
    );
    // Not a URL: the error comes when the request is built, as before.
    let resolved = Resolved {
        api_base: Some("not a url"),
        ..Resolved::default()
    };
    assert!(
        build_request(
            &client,
            &d,
            &resolved,
            Endpoint::ChatCompletions,
            &body(r#"{"model":"public"}"#),
            false
        )
        .unwrap()
        .build()
        .is_err()
    );
}

#[test]
fn cached_azure_urls_follow_a_changed_api_version() {
    let d = deployment(
        "model_list:\n  - model_name: gpt\n    litellm_params: {model: azure/dep-1, api_base: 'https://x.openai.azure.com/', api_key: k}\n",
    );
    let client = reqwest::Client::new();
    for version in ["2024-02-01", "2024-10-21", "2024-02-01"] {
        let resolved = Resolved {
            api_base: Some("https://x.openai.azure.com/"),
            api_version: Some(version),
            ..Resolved::default()
        };
        let request = build_request(
            &client,
            &d,
            &resolved,
            Endpoint::ChatCompletions,
            &body(r#"{"model":"gpt"}"#),
            false,
        )
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(
            request.url().as_str(),
            format!(
                "https://x.openai.azure.com/openai/deployments/dep-1/chat/completions?api-version={version}"
            )
        );
    }
}
