//! Golden tests of the OpenAI ⇄ Bedrock Converse translation, the ConverseStream translation
//! (frames encoded by the mock's own event-stream encoder, fed in odd-sized pieces), error
//! mapping and the signed request. Fixtures live in `tests/fixtures/bedrock/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};
use vaultgate_core::Error;
use vaultgate_providers::bedrock::{
    self, ConverseOptions, ResolvedAws, StreamTranslator, chat_to_converse_request,
    converse_response_to_chat, map_error, stream_opened_with_error,
};
use vaultgate_providers::{Deployment, Resolved, TranslateStream};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/bedrock/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn chat_requests_become_converse_requests() {
    let mut failures = Vec::new();
    for case in fixture("chat_to_converse.json").as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let options = ConverseOptions {
            default_max_tokens: case
                .pointer("/options/default_max_tokens")
                .and_then(Value::as_u64),
            drop_params: case.pointer("/options/drop_params") == Some(&json!(true)),
        };
        let result = chat_to_converse_request(case["openai"].as_object().unwrap(), &options);
        match (result, case.get("error")) {
            (Ok(out), None) if out == case["converse"] => {}
            (Ok(out), None) => {
                failures.push(format!("{name}:\n got {out}\nwant {}", case["converse"]))
            }
            (Err(Error::BadRequest { message, param }), Some(expected)) => {
                if param.as_deref() != expected["param"].as_str() {
                    failures.push(format!("{name}: param {param:?}"));
                }
                for needle in expected["message_contains"].as_array().unwrap() {
                    if !message.contains(needle.as_str().unwrap()) {
                        failures.push(format!("{name}: {message:?} lacks {needle}"));
                    }
                }
            }
            (other, _) => failures.push(format!("{name}: unexpected {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn converse_answers_become_chat_completions() {
    for case in fixture("converse_to_chat.json").as_array().unwrap() {
        let mut out = converse_response_to_chat(&case["converse"], "public");
        assert!(out["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert!(out["created"].as_u64().unwrap() > 0);
        let object = out.as_object_mut().unwrap();
        object.remove("id");
        object.remove("created");
        assert_eq!(out, case["chat"], "{}", case["name"]);
    }
}

/// The event-stream bytes of a fixture's events, as the mock sends them.
fn stream_bytes(name: &str) -> Vec<u8> {
    fixture(name)
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|event| vaultgate_mock_upstream::bedrock::frame(&event.to_string()).to_vec())
        .collect()
}

/// What a client reads of the translated stream: each frame's choice (or usage, or error).
fn translate(bytes: &[u8], piece: usize) -> Vec<Value> {
    let mut translator = StreamTranslator::new("public", true);
    let mut frames = Vec::new();
    for chunk in bytes.chunks(piece) {
        frames.extend(translator.push(chunk));
    }
    frames.extend(translator.finish());
    assert!(translator.is_done());
    frames
        .iter()
        .map(|frame| {
            let text = std::str::from_utf8(frame).unwrap();
            let data = text.strip_prefix("data: ").unwrap().trim_end();
            if data == "[DONE]" {
                return json!("[DONE]");
            }
            let chunk: Value = serde_json::from_str(data).unwrap();
            if chunk.get("error").is_some() {
                return chunk;
            }
            assert_eq!(chunk["model"], "public");
            assert_eq!(chunk["object"], "chat.completion.chunk");
            match chunk["choices"].as_array().unwrap().as_slice() {
                [] => json!({"usage": chunk["usage"]}),
                [choice] => {
                    json!({"delta": choice["delta"], "finish_reason": choice["finish_reason"]})
                }
                _ => panic!("more than one choice: {chunk}"),
            }
        })
        .collect()
}

#[test]
fn streams_translate_however_the_bytes_are_cut() {
    for (events, expected) in [
        (
            "stream_tool_use.events.json",
            "stream_tool_use.expected.json",
        ),
        (
            "stream_exception.events.json",
            "stream_exception.expected.json",
        ),
    ] {
        let bytes = stream_bytes(events);
        for piece in [1, 7, 64, bytes.len()] {
            assert_eq!(
                Value::Array(translate(&bytes, piece)),
                fixture(expected),
                "{events} in pieces of {piece}"
            );
        }
    }
}

#[test]
fn a_cut_or_corrupt_stream_ends_with_an_error_frame() {
    let bytes = stream_bytes("stream_tool_use.events.json");
    let cut = translate(&bytes[..bytes.len() / 2], 5);
    assert_eq!(cut.last(), Some(&json!("[DONE]")));
    assert!(
        cut[cut.len() - 2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before")
    );

    let mut corrupt = bytes.clone();
    corrupt[20] ^= 0xff;
    let out = translate(&corrupt, 1000);
    assert!(
        out[out.len() - 2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed")
    );
}

#[test]
fn a_stream_opening_with_an_exception_is_an_error_before_any_byte() {
    let frame = vaultgate_mock_upstream::bedrock::frame(
        &json!({"throttlingException": {"message": "slow down"}}).to_string(),
    );
    let error = stream_opened_with_error(&frame).unwrap();
    assert_eq!(error.status(), StatusCode::TOO_MANY_REQUESTS);
    let first = vaultgate_mock_upstream::bedrock::frame(&json!({"messageStart": {}}).to_string());
    assert!(stream_opened_with_error(&first).is_none());
}

#[test]
fn bedrock_errors_get_their_status_and_openai_shape() {
    for (status, kind, message, expected, openai_type) in [
        (
            400,
            "ThrottlingException",
            "Too many requests",
            429,
            "rate_limit_error",
        ),
        (
            400,
            "ValidationException",
            "Input is too long for requested model.",
            400,
            "invalid_request_error",
        ),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            403,
            "permission_error",
        ),
        (
            403,
            "ExpiredTokenException",
            "The security token included in the request is expired",
            403,
            "permission_error",
        ),
        (408, "ModelTimeoutException", "timed out", 504, "api_error"),
        (424, "ModelErrorException", "model failed", 502, "api_error"),
        (
            503,
            "ServiceUnavailableException",
            "unavailable",
            503,
            "api_error",
        ),
        (
            404,
            "ResourceNotFoundException",
            "no such model",
            404,
            "invalid_request_error",
        ),
    ] {
        let mut headers = HeaderMap::new();
        let header = format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/");
        headers.insert("x-amzn-errortype", HeaderValue::from_str(&header).unwrap());
        let body = json!({ "message": message }).to_string();
        let error = map_error(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            body.as_bytes(),
        );
        assert_eq!(error.status().as_u16(), expected, "{kind}");
        let Error::Upstream { body, .. } = &error else {
            panic!("{error:?}")
        };
        let body: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["error"]["type"], openai_type, "{kind}");
        assert_eq!(
            body["error"]["message"],
            format!("bedrock {kind}: {message}")
        );
    }
    // Without the header, the body's __type names it; without either, the status stands.
    let body = br#"{"__type":"com.amazon.coral#ThrottlingException","message":"x"}"#;
    assert_eq!(
        map_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), body).status(),
        429
    );
    let html = b"<html>bad gateway</html>";
    let error = map_error(StatusCode::BAD_GATEWAY, &HeaderMap::new(), html);
    assert_eq!(error.status(), 502);
}

fn deployment(params: &str) -> Deployment {
    let config = vaultgate_config::Config::parse(&format!(
        "model_list:\n  - model_name: claude\n    litellm_params: {params}\n"
    ))
    .unwrap();
    Deployment::from_config(0, &config.model_list[0], None, None).unwrap()
}

#[test]
fn requests_are_signed_for_bedrock_in_the_region() {
    let deployment = deployment(
        "{model: bedrock/anthropic.claude-3-haiku-20240307-v1:0, aws_access_key_id: os.environ/K, aws_secret_access_key: os.environ/S}",
    );
    let resolved = Resolved {
        aws: ResolvedAws {
            region: Some("eu-central-1"),
            access_key_id: Some("AKIDEXAMPLE"),
            secret_access_key: Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: Some("token-1"),
            ..Default::default()
        },
        ..Default::default()
    };
    let request = bedrock::build_request(
        &deployment,
        &resolved,
        b"{}".to_vec(),
        true,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(
        request.uri().to_string(),
        "https://bedrock-runtime.eu-central-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    );
    let headers = request.headers();
    let authorization = headers["authorization"].to_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{authorization}"
    );
    assert!(
        authorization.contains("/eu-central-1/bedrock/aws4_request"),
        "{authorization}"
    );
    assert!(headers["authorization"].is_sensitive());
    assert!(headers["x-amz-security-token"].is_sensitive());
    assert_eq!(headers["accept"], bedrock::EVENT_STREAM);
    // Nothing of the secret in any printed form of the request.
    assert!(!format!("{request:?}").contains("wJalrXUtnFEMI"));
}

#[test]
fn keys_without_their_pair_are_a_clear_error() {
    let deployment = deployment("{model: bedrock/anthropic.claude-v2}");
    let resolved = Resolved {
        aws: ResolvedAws {
            access_key_id: Some("AKIDEXAMPLE"),
            ..Default::default()
        },
        ..Default::default()
    };
    // No keys, role or profile configured: the default chain's, not fetched in this test.
    let error =
        bedrock::build_request(&deployment, &resolved, Vec::new(), false, SystemTime::now())
            .unwrap_err();
    assert!(error.to_string().contains("no AWS credentials"), "{error}");
}
