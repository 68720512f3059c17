//! Golden tests of the OpenAI ⇄ Anthropic Messages translation (non-streaming), error mapping and
//! upstream headers. Fixtures live in `tests/fixtures/anthropic/*.json`, one case per entry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use http::StatusCode;
use serde_json::{Value, json};
use vaultgate_core::Error;
use vaultgate_providers::anthropic::{
    DEFAULT_ANTHROPIC_VERSION, TranslateOptions, chat_response_to_messages,
    chat_to_messages_request, map_error, messages_response_to_chat, messages_to_chat_request,
    messages_url, upstream_headers,
};

const UPSTREAM_MODEL: &str = "claude-sonnet-4-5-20250929";

fn fixture(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(!cases.is_empty(), "{path} has no cases");
    cases
}

fn name(case: &Value) -> &str {
    case["name"].as_str().unwrap()
}

/// Checks an expected `{"param", "message_contains"?}` against a translation error.
fn check_error(case: &Value, expected: &Value, result: Result<Value, Error>) -> Result<(), String> {
    let err = match result {
        Ok(out) => return Err(format!("{}: expected an error, got {out}", name(case))),
        Err(err) => err,
    };
    let Error::BadRequest { message, param } = &err else {
        return Err(format!("{}: expected BadRequest, got {err:?}", name(case)));
    };
    if err.status() != StatusCode::BAD_REQUEST {
        return Err(format!("{}: status {}", name(case), err.status()));
    }
    if param.as_deref() != expected["param"].as_str() {
        return Err(format!(
            "{}: param {param:?}, expected {}",
            name(case),
            expected["param"]
        ));
    }
    for needle in expected["message_contains"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let needle = needle.as_str().unwrap();
        if !message.contains(needle) {
            return Err(format!(
                "{}: message {message:?} lacks {needle:?}",
                name(case)
            ));
        }
    }
    // The OpenAI-shaped body names the param too, which is what clients read.
    let body: Value = serde_json::from_slice(&err.to_body()).unwrap();
    if body["error"]["param"] != expected["param"] {
        return Err(format!("{}: body {body}", name(case)));
    }
    Ok(())
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} golden case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn chat_to_messages_golden() {
    let cases = fixture("chat_to_messages.json");
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for case in &cases {
        let opts = match case.get("options") {
            Some(o) => TranslateOptions {
                default_max_tokens: o["default_max_tokens"].as_u64().unwrap(),
                drop_params: o["drop_params"].as_bool().unwrap(),
            },
            None => TranslateOptions::default(),
        };
        let body = case["openai"].as_object().unwrap();
        let result = chat_to_messages_request(body, UPSTREAM_MODEL, &opts);
        if let Some(expected) = case.get("error") {
            if let Err(failure) = check_error(case, expected, result) {
                failures.push(failure);
            }
            continue;
        }
        match result {
            Ok(out) if out == case["anthropic"] => {}
            Ok(out) => failures.push(format!(
                "{}:\n  got      {out}\n  expected {}",
                name(case),
                case["anthropic"]
            )),
            Err(err) => failures.push(format!("{}: unexpected error {err:?}", name(case))),
        }
    }
    report(failures);
}

#[test]
fn every_unsupported_param_is_rejected_unless_drop_params() {
    let cases = fixture("chat_to_messages.json");
    let unsupported: Vec<&Value> = cases
        .iter()
        .filter(|c| name(c).starts_with("unsupported_") && c.get("error").is_some())
        .collect();
    assert!(unsupported.len() >= 8);
    for case in unsupported {
        let body = case["openai"].as_object().unwrap();
        let param = case["error"]["param"].as_str().unwrap();
        let opts = TranslateOptions {
            drop_params: true,
            ..TranslateOptions::default()
        };
        let out = chat_to_messages_request(body, UPSTREAM_MODEL, &opts)
            .unwrap_or_else(|e| panic!("{}: {e:?}", name(case)));
        assert!(
            out.get(param).is_none(),
            "{}: {param} leaked upstream: {out}",
            name(case)
        );
        assert_eq!(
            out["messages"],
            json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
        );
    }
}

#[test]
fn default_options_are_4096_tokens_and_strict() {
    let opts = TranslateOptions::default();
    assert_eq!(opts.default_max_tokens, 4096);
    assert!(!opts.drop_params);
}

/// `created` must be a real timestamp; it is then zeroed so the rest compares exactly.
fn normalize_created(mut value: Value) -> Value {
    let created = value["created"].as_u64().expect("created is a number");
    assert!(
        created > 1_700_000_000,
        "created {created} is not a current timestamp"
    );
    value["created"] = json!(0);
    value
}

#[test]
fn messages_to_chat_golden() {
    let mut failures = Vec::new();
    for case in fixture("messages_to_chat.json") {
        let out = normalize_created(messages_response_to_chat(&case["anthropic"], "my-claude"));
        if out != case["openai"] {
            failures.push(format!(
                "{}:\n  got      {out}\n  expected {}",
                name(&case),
                case["openai"]
            ));
        }
    }
    report(failures);
}

#[test]
fn tool_arguments_are_a_json_string_that_round_trips() {
    let resp = json!({"id": "m", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {"b": [1, {"c": "ü\"q"}], "a": null}}
    ], "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 1}});
    let out = messages_response_to_chat(&resp, "x");
    let arguments = out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    let parsed: Value = serde_json::from_str(arguments).unwrap();
    assert_eq!(parsed, resp["content"][0]["input"]);
}

#[test]
fn empty_response_still_yields_a_chat_completion() {
    let out = normalize_created(messages_response_to_chat(&json!({}), "x"));
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(
        out["choices"][0]["message"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(out["usage"]["total_tokens"], 0);
}

#[test]
fn native_messages_to_chat_golden() {
    let mut failures = Vec::new();
    for case in fixture("native_messages_to_chat.json") {
        let result =
            messages_to_chat_request(case["anthropic"].as_object().unwrap()).map(Value::Object);
        if let Some(expected) = case.get("error") {
            if let Err(failure) = check_error(&case, expected, result) {
                failures.push(failure);
            }
            continue;
        }
        match result {
            Ok(out) if out == case["openai"] => {}
            Ok(out) => failures.push(format!(
                "{}:\n  got      {out}\n  expected {}",
                name(&case),
                case["openai"]
            )),
            Err(err) => failures.push(format!("{}: unexpected error {err:?}", name(&case))),
        }
    }
    report(failures);
}

#[test]
fn native_chat_to_messages_golden() {
    let mut failures = Vec::new();
    for case in fixture("native_chat_to_messages.json") {
        let out = chat_response_to_messages(&case["openai"], "claude-alias");
        if out != case["anthropic"] {
            failures.push(format!(
                "{}:\n  got      {out}\n  expected {}",
                name(&case),
                case["anthropic"]
            ));
        }
    }
    report(failures);
}

/// An Anthropic request survives Anthropic → OpenAI → Anthropic: what the gateway sends to an
/// Anthropic deployment for an Anthropic-native client keeps the conversation's meaning.
#[test]
fn native_request_round_trips_through_openai_shape() {
    let cases = fixture("native_messages_to_chat.json");
    let case = cases
        .iter()
        .find(|c| name(c) == "images_and_tool_round_trip")
        .unwrap();
    let openai = messages_to_chat_request(case["anthropic"].as_object().unwrap()).unwrap();
    let back = chat_to_messages_request(&openai, "m", &TranslateOptions::default()).unwrap();
    let tool_uses: Vec<&Value> = back["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["content"].as_array().unwrap())
        .filter(|b| b["type"] == "tool_use")
        .collect();
    assert_eq!(tool_uses.len(), 3);
    assert_eq!(tool_uses[0]["input"], json!({"city": "Oslo"}));
    assert_eq!(
        back["tool_choice"],
        json!({"type": "tool", "name": "get_time", "disable_parallel_tool_use": true})
    );
    assert_eq!(back["system"], "Be kind.\nBe brief.");
    assert_eq!(
        back["messages"][0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"})
    );
    assert_eq!(back["messages"][3]["content"][0]["type"], "tool_use");
    assert_eq!(
        back["messages"][4]["content"],
        json!([{"type": "tool_result", "tool_use_id": "toolu_3", "content": ""}])
    );
}

#[test]
fn map_error_golden() {
    let mut failures = Vec::new();
    for case in fixture("errors.json") {
        let status = StatusCode::from_u16(case["status"].as_u64().unwrap() as u16).unwrap();
        let err = map_error(status, case["body"].as_str().unwrap().as_bytes());
        let Error::Upstream {
            status: got_status,
            body,
            content_type,
        } = &err
        else {
            failures.push(format!("{}: not Upstream: {err:?}", name(&case)));
            continue;
        };
        let body: Value = serde_json::from_slice(body).unwrap();
        if got_status.as_u16() as u64 != case["expected_status"].as_u64().unwrap()
            || err.status() != *got_status
            || body != case["expected"]
            || content_type.as_ref().map(|v| v.to_str().unwrap()) != Some("application/json")
        {
            failures.push(format!(
                "{}: got {got_status} {body} {content_type:?}",
                name(&case)
            ));
        }
    }
    report(failures);
}

#[test]
fn map_error_shortens_huge_non_json_bodies() {
    let body = "é".repeat(5000);
    let Error::Upstream { body, .. } = map_error(StatusCode::BAD_GATEWAY, body.as_bytes()) else {
        panic!("not upstream");
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.chars().count() <= 513, "{}", message.len());
    assert!(message.starts_with("éé"));
}

#[test]
fn upstream_headers_carry_key_version_and_content_type() {
    let headers = upstream_headers(Some("sk-ant-test"), None).unwrap();
    assert_eq!(headers["x-api-key"], "sk-ant-test");
    assert!(
        headers["x-api-key"].is_sensitive(),
        "the key must be marked sensitive"
    );
    assert_eq!(headers["anthropic-version"], DEFAULT_ANTHROPIC_VERSION);
    assert_eq!(DEFAULT_ANTHROPIC_VERSION, "2023-06-01");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers.len(), 3);

    let headers = upstream_headers(None, Some("2024-01-01")).unwrap();
    assert!(headers.get("x-api-key").is_none());
    assert_eq!(headers["anthropic-version"], "2024-01-01");
}

#[test]
fn upstream_headers_reject_bad_key_without_echoing_it() {
    let err = upstream_headers(Some("sk-secret\nvalue"), None).unwrap_err();
    assert!(matches!(err, Error::Config(_)));
    assert!(!err.to_string().contains("sk-secret"), "{err}");
    assert!(matches!(
        upstream_headers(Some("k"), Some("bad\nversion")),
        Err(Error::Config(_))
    ));
}

#[test]
fn messages_url_accepts_the_three_spellings() {
    for base in [
        "https://api.anthropic.com",
        "https://api.anthropic.com/",
        "https://api.anthropic.com/v1",
        "https://api.anthropic.com/v1/",
        "https://api.anthropic.com/v1/messages",
    ] {
        assert_eq!(
            messages_url(base),
            "https://api.anthropic.com/v1/messages",
            "{base}"
        );
    }
    assert_eq!(
        messages_url("http://127.0.0.1:9000/proxy"),
        "http://127.0.0.1:9000/proxy/v1/messages"
    );
}

/// Numbers in a translated body read back exactly (serde_json's `float_roundtrip`). Found by
/// fuzzing: an integer past u64's range came back one unit in the last place off.
#[test]
fn numbers_survive_translation_exactly() {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]})
        .as_object()
        .unwrap()
        .clone();
    let large: Value = serde_json::from_str("1111111111111111111111").unwrap();
    body.insert("presence_penalty".into(), large);
    let out = vaultgate_providers::text_completion::chat_to_completion(
        &body,
        "davinci",
        &TranslateOptions::default(),
    )
    .unwrap();
    let back: Value = serde_json::from_slice(&serde_json::to_vec(&out).unwrap()).unwrap();
    assert_eq!(back, out);
}
