use super::*;
use serde_json::{Map, json};
use vaultgate_config::Config;

fn deployment(yaml: &str) -> Deployment {
    let config = Config::parse(yaml).unwrap();
    Deployment::from_config(0, &config.model_list[0], None, None).unwrap()
}

fn body(json: &str) -> ChatBody {
    ChatBody::parse(Bytes::copy_from_slice(json.as_bytes())).unwrap()
}

/// The upstream URL `build_request` gives a minimal request, or its error.
fn upstream_url(d: &Deployment, resolved: &Resolved<'_>, endpoint: Endpoint) -> Result<String> {
    build_request(d, resolved, endpoint, &body(r#"{"model":"m"}"#), false)
        .map(|request| request.uri().to_string())
}

#[test]
fn timeouts_past_durations_range_are_config_errors() {
    // 1e30 s passes as a finite, positive number but is past what a `Duration` holds: building
    // the deployment panicked.
    let config = Config::parse(
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, timeout: 1.0e30}\n",
    )
    .unwrap();
    let error = Deployment::from_config(0, &config.model_list[0], None, None)
        .err()
        .unwrap();
    assert!(
        error
            .to_string()
            .contains("timeout must be a non-negative number"),
        "{error}"
    );
    // The router's defaults (`request_timeout`, `router_settings.timeout`) are not checked by
    // the config parser: a negative one comes here too.
    let config =
        Config::parse("model_list:\n  - model_name: m\n    litellm_params: {model: openai/m}\n")
            .unwrap();
    let entry = &config.model_list[0];
    assert!(Deployment::from_config(0, entry, Some(-1.0), None).is_err());
    assert!(Deployment::from_config(0, entry, None, Some(f64::NAN)).is_err());
    assert!(Deployment::from_config(0, entry, Some(1e300), None).is_err());
    let fine = Deployment::from_config(0, entry, Some(2.5), Some(1.0)).unwrap();
    assert_eq!(fine.timeout, std::time::Duration::from_millis(2500));
}

#[test]
fn azure_url_and_header() {
    let d = deployment(
        "model_list:\n  - model_name: gpt\n    litellm_params: {model: azure/dep-1, api_base: 'https://x.openai.azure.com/', api_key: k}\n",
    );
    let resolved = Resolved {
        api_base: Some("https://x.openai.azure.com/"),
        api_key: Some("azure-key"),
        api_version: Some("2024-02-01"),
        ..Resolved::default()
    };
    let request = build_request(
        &d,
        &resolved,
        Endpoint::Embeddings,
        &body(r#"{"model":"gpt","input":"hi"}"#),
        true,
    )
    .unwrap();
    assert_eq!(
        request.uri(),
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
    let resolved = Resolved {
        api_base: Some("http://127.0.0.1:9/v1/"),
        api_key: Some("k"),
        ..Resolved::default()
    };
    let request = build_request(
        &d,
        &resolved,
        Endpoint::ChatCompletions,
        &body(r#"{"model":"public","stream":true,"messages":[]}"#),
        true,
    )
    .unwrap();
    assert_eq!(request.uri(), "http://127.0.0.1:9/v1/chat/completions");
    assert_eq!(request.headers()["authorization"], "Bearer k");
    assert!(request.headers()["authorization"].is_sensitive());
    let sent: Value = serde_json::from_slice(request.body()).unwrap();
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
        let err = ChatBody::parse(Bytes::from(input)).err().unwrap();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains(needle), "{input}: {err}");
    }
}

#[test]
fn bodies_with_invalid_utf8_or_nesting_too_deep_are_400_naming_the_problem() {
    let mut latin1 = br#"{"model":"m","messages":[{"role":"user","content":"caf"#.to_vec();
    latin1.extend_from_slice(b"\xe9\"}]}");
    let deep = |levels: usize| {
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":{}1{}}}]}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    for (input, needle) in [
        (latin1, "not valid UTF-8 (at byte 54)"),
        (deep(100_000).into_bytes(), "deeper than 128 levels"),
        (deep(126).into_bytes(), "deeper than 128 levels"),
    ] {
        let err = ChatBody::parse(Bytes::from(input)).err().unwrap();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains(needle), "{err}");
    }
    // 128 levels in all (the body, `messages`, a message, 125 arrays) are fine, and so are
    // brackets and escaped quotes inside strings.
    ChatBody::parse(Bytes::from(deep(125))).unwrap();
    let brackets = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"\"{}\\"}}]}}"#,
        "[{".repeat(200)
    );
    ChatBody::parse(Bytes::from(brackets)).unwrap();
}

#[test]
fn mock_stream_ends_with_usage_then_done() {
    let request = body(r#"{"model":"m","messages":[{"role":"user","content":"hello there"}]}"#);
    let (frames, usage) = mock::stream(
        Endpoint::ChatCompletions,
        "m",
        "one two three",
        request.fields().unwrap(),
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

/// What the upstream should get: the client's JSON with `model` replaced and, when asked, the
/// usage chunk asked for (a non-object `stream_options` left alone).
fn patched_copy(text: &str, model: &str, include_usage: bool) -> Value {
    let mut fields: Map<String, Value> = serde_json::from_str(text).unwrap();
    fields.insert("model".into(), Value::String(model.into()));
    if include_usage {
        let options = fields
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(options) = options {
            options.insert("include_usage".into(), Value::Bool(true));
        }
    }
    Value::Object(fields)
}

#[test]
fn upstream_body_is_the_clients_json_with_the_model_spliced_in() {
    let bodies = [
        r#"{"model":"public","messages":[{"role":"user","content":"hi \"there\" \u00e9"}]}"#,
        r#"{"messages":[],"model":"public","stream":true}"#,
        r#"{"model":"public","stream":true,"stream_options":{"include_usage":false,"x":1}}"#,
        r#"{"model":"public","stream":true,"stream_options":{"a":1,"z":[1,2,{"k":null}]}}"#,
        r#"{"model":"public","stream":true,"stream_options":null,"temperature":0.5}"#,
        r#"{"stream_options":{"x":1},"stream":true,"model":"public"}"#,
        r#"{"model":"public","a":1,"mode":"m","modelx":2,"stream_optionsz":3,"zz":{}}"#,
        r#"{"model":"public"}"#,
        r#" { "input" : ["a","b"] , "model" : "public" , "user":"u" } "#,
        r#"{"mod\u0065l":"public","messages":[]}"#,
    ];
    for text in bodies {
        let request = body(text);
        assert_eq!(request.model, "public");
        for include_usage in [false, true] {
            let sent = request.upstream_body("real \"model\"", include_usage);
            let sent: Value = serde_json::from_slice(&sent)
                .unwrap_or_else(|e| panic!("{text}: {e}: {}", String::from_utf8_lossy(&sent)));
            assert_eq!(
                sent,
                patched_copy(text, "real \"model\"", include_usage),
                "{text} include_usage={include_usage}"
            );
        }
    }
}

#[test]
fn upstream_body_keeps_the_clients_bytes() {
    // Numbers, escapes and member order pass as sent; only the model changes.
    let text = r#"{"temperature":0.50,"seed":12345678901234567890123,"model":"public","messages":[{"role":"user","content":"caf\u00e9"}]}"#;
    let sent = body(text).upstream_body("gpt-4o", false);
    assert_eq!(
        String::from_utf8(sent).unwrap(),
        text.replace(r#""model":"public""#, r#""model":"gpt-4o""#)
    );
    // The usage chunk asked for inside the client's `stream_options`: its other values pass as
    // sent too (they were parsed and written again, and a long number came out another).
    let text = r#"{"model":"public","stream":true,"stream_options":{"x":[1e400,44444444444444444444444444444444444444444444444],"include_usage":false}}"#;
    let sent = body(text).upstream_body("gpt-4o", true);
    assert_eq!(
        String::from_utf8(sent).unwrap(),
        r#"{"model":"gpt-4o","stream":true,"stream_options":{"x":[1e400,44444444444444444444444444444444444444444444444],"include_usage":true}}"#
    );
    assert!(
        body(r#"{"model":"m","stream_options":{ "x":1e400, "include_usage" : true }}"#)
            .include_usage
    );
}

#[test]
fn translated_bodies_get_a_model() {
    for (fields, expected) in [
        (
            json!({"messages": [], "n": 1}),
            json!({"model": "m", "messages": [], "n": 1}),
        ),
        (json!({}), json!({"model": "m"})),
    ] {
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        let request = ChatBody::from_fields(fields, "public".into()).unwrap();
        assert_eq!(request.model, "public");
        let sent: Value = serde_json::from_slice(&request.upstream_body("m", false)).unwrap();
        assert_eq!(sent, expected);
        let sent: Value = serde_json::from_slice(&request.upstream_body("m", true)).unwrap();
        let mut expected = expected.clone();
        expected["stream_options"] = json!({"include_usage": true});
        assert_eq!(sent, expected);
    }
}

#[test]
fn read_up_front_fields() {
    let request = body(r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#);
    assert!(request.stream && request.include_usage);
    let request = body(r#"{"model":"m","stream":"yes","stream_options":[true]}"#);
    assert!(!request.stream && !request.include_usage);
    assert_eq!(request.fields().unwrap()["stream"], "yes");
    for duplicated in [
        r#"{"model":"a","model":"b"}"#,
        r#"{"model":"a","stream":true,"stream":false}"#,
        r#"{"model":"a","stream_options":{},"stream_options":null}"#,
    ] {
        let error = ChatBody::parse(Bytes::from(duplicated)).err().unwrap();
        assert_eq!(error.status(), http::StatusCode::BAD_REQUEST);
        assert!(error.to_string().contains("more than once"), "{error}");
    }
}

#[test]
fn cached_upstream_urls_follow_a_changed_base() {
    let d = deployment(
        "model_list:\n  - model_name: public\n    litellm_params: {model: openai/real-model}\n",
    );
    let url = |base: &'static str, endpoint: Endpoint| {
        let resolved = Resolved {
            api_base: Some(base),
            ..Resolved::default()
        };
        upstream_url(&d, &resolved, endpoint).unwrap()
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
    // Not an http(s) URL: a configuration error naming the deployment.
    for base in ["not a url", "ftp://a.test/v1"] {
        let resolved = Resolved {
            api_base: Some(base),
            ..Resolved::default()
        };
        let error = upstream_url(&d, &resolved, Endpoint::ChatCompletions)
            .err()
            .unwrap();
        assert!(error.to_string().contains("api_base"), "{error}");
    }
}

#[test]
fn cached_azure_urls_follow_a_changed_api_version() {
    let d = deployment(
        "model_list:\n  - model_name: gpt\n    litellm_params: {model: azure/dep-1, api_base: 'https://x.openai.azure.com/', api_key: k}\n",
    );
    for version in ["2024-02-01", "2024-10-21", "2024-02-01"] {
        let resolved = Resolved {
            api_base: Some("https://x.openai.azure.com/"),
            api_version: Some(version),
            ..Resolved::default()
        };
        assert_eq!(
            upstream_url(&d, &resolved, Endpoint::ChatCompletions).unwrap(),
            format!(
                "https://x.openai.azure.com/openai/deployments/dep-1/chat/completions?api-version={version}"
            )
        );
    }
}

#[test]
fn anthropic_messages_urls() {
    let d = deployment(
        "model_list:\n  - model_name: claude\n    litellm_params: {model: anthropic/claude-x}\n",
    );
    let url = |base: Option<&str>| {
        let resolved = Resolved {
            api_base: base,
            ..Resolved::default()
        };
        anthropic_messages_url(&d, &resolved).map(|uri| uri.to_string())
    };
    for _ in 0..2 {
        assert_eq!(url(None).unwrap(), "https://api.anthropic.com/v1/messages");
    }
    assert_eq!(
        url(Some("http://127.0.0.1:9/v1")).unwrap(),
        "http://127.0.0.1:9/v1/messages"
    );
    let error = url(Some("not a url")).err().unwrap();
    assert!(error.to_string().contains("api_base"), "{error}");
}

#[test]
fn anthropic_request_headers() {
    let d = deployment(
        "model_list:\n  - model_name: claude\n    litellm_params: {model: anthropic/claude-x}\n",
    );
    let version = HeaderName::from_static("anthropic-version");
    let beta = HeaderName::from_static("anthropic-beta");
    let team = HeaderName::from_static("x-team");
    let client = [
        (version.clone(), HeaderValue::from_static("2023-01-01")),
        (beta.clone(), HeaderValue::from_static("tools-1")),
    ];
    let build = |extra: Vec<(&HeaderName, &str)>| {
        let resolved = Resolved {
            api_key: Some("sk-ant-secret"),
            extra_headers: extra,
            ..Resolved::default()
        };
        build_anthropic_request(&d, &resolved, Bytes::from_static(b"{}"), &client)
    };

    // The client's protocol headers pass when the deployment does not set them.
    let request = build(vec![(&team, "blue")]).unwrap();
    let headers = request.headers();
    assert_eq!(headers["x-api-key"], "sk-ant-secret");
    assert!(headers["x-api-key"].is_sensitive());
    assert_eq!(headers["anthropic-version"], "2023-01-01");
    assert_eq!(headers["anthropic-beta"], "tools-1");
    assert_eq!(headers["x-team"], "blue");
    assert_eq!(request.uri(), "https://api.anthropic.com/v1/messages");

    // The deployment's own headers win over the client's.
    let request = build(vec![(&version, "2024-10-22"), (&beta, "none")]).unwrap();
    assert_eq!(request.headers()["anthropic-version"], "2024-10-22");
    assert_eq!(request.headers()["anthropic-beta"], "none");

    // A value that cannot be a header is a config error naming the header, not the value.
    let error = build(vec![(&team, "bad\nvalue")]).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("x-team") && !text.contains("bad"), "{text}");
}

#[test]
fn without_removes_members_and_keeps_the_rest_as_sent() {
    let drop = |name: &str| matches!(name, "tags" | "metadata" | "a");
    for (text, expected) in [
        (
            r#"{"tags":[1],"model":"m","n":1.50}"#,
            r#"{"model":"m","n":1.50}"#,
        ),
        (
            r#" { "metadata" : {"x":"}"} , "model":"m" } "#,
            r#"{"model":"m"}"#,
        ),
        (
            r#"{"model":"m","tags":[],"metadata":{}}"#,
            r#"{"model":"m"}"#,
        ),
        (
            r#"{"a":1,"model":"m","t\u0061gs":2,"b":"c,\"d"}"#,
            r#"{"model":"m","b":"c,\"d"}"#,
        ),
        (r#"{"model":"m","b":2}"#, ""),
    ] {
        let request = body(text);
        match request.without(drop).unwrap() {
            Some(stripped) => {
                assert_eq!(stripped.model, "m");
                assert_eq!(
                    String::from_utf8(stripped.upstream_body("m", false)).unwrap(),
                    expected,
                    "{text}"
                );
            }
            None => assert_eq!(expected, "", "{text}"),
        }
    }
    // `model` is never dropped.
    assert!(
        body(r#"{"model":"m"}"#)
            .without(|_| true)
            .unwrap()
            .is_none()
    );
}

#[test]
fn proxy_params_are_split_off() {
    let request = body(r#"{"model":"m","metadata":{"k":1},"litellm_x":true,"user":"u","n":2}"#);
    assert!(request.has_proxy_params());
    let (request, params) = request.take_proxy_params(&[]).unwrap();
    assert_eq!(
        String::from_utf8(request.upstream_body("up", false)).unwrap(),
        r#"{"model":"up","user":"u","n":2}"#
    );
    assert_eq!(
        Value::Object(params),
        json!({"metadata": {"k": 1}, "litellm_x": true})
    );
    assert_eq!(request.user.as_deref(), Some("u"));
    let plain = body(r#"{"model":"m","n":2}"#);
    assert!(!plain.has_proxy_params());
}

#[test]
fn the_api_base_header_leaves_credentials_out() {
    let d = deployment(
        "model_list:\n  - model_name: gpt\n    litellm_params: {model: openai/gpt-4o, api_key: k}\n",
    );
    let header = |base: &str| {
        d.api_base_header(base)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        header("https://user:pw@llm.example.com/v1/?api-key=pw#pw").as_deref(),
        Some("https://llm.example.com/v1")
    );
    assert_eq!(
        header("http://127.0.0.1:8080/v1").as_deref(),
        Some("http://127.0.0.1:8080/v1")
    );
    // Asked again with another base (a refreshed secret), the header follows it.
    assert_eq!(
        header("https://api.openai.com/v1").as_deref(),
        Some("https://api.openai.com/v1")
    );
    assert_eq!(header("not a url"), None);
}
