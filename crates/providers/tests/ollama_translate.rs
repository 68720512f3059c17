//! Ollama's native API: request translation, recorded answers and JSON-lines streams
//! (`tests/fixtures/ollama/`) fed in every chunking, and error mapping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};
use vaultgate_core::Error;
use vaultgate_providers::ollama::{self, OllamaStream, Route};
use vaultgate_providers::{TranslateOptions, TranslateStream};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/ollama/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

/// The payloads of emitted SSE frames, with random ids and `created` replaced.
fn payloads(frames: &[Bytes]) -> Vec<Value> {
    frames
        .iter()
        .map(|frame| {
            let text = std::str::from_utf8(frame).unwrap();
            let payload = text
                .strip_prefix("data: ")
                .and_then(|t| t.strip_suffix("\n\n"))
                .unwrap_or_else(|| panic!("not one SSE frame: {text:?}"));
            if payload == "[DONE]" {
                return json!("[DONE]");
            }
            let mut value: Value = serde_json::from_str(payload).unwrap();
            value["id"] = json!("ID");
            value["created"] = json!(0);
            if let Some(call) = value.pointer_mut("/choices/0/delta/tool_calls/0/id") {
                assert!(call.as_str().unwrap().starts_with("call-"));
                *call = json!("CALL");
            }
            value
        })
        .collect()
}

fn run(route: Route, input: &[u8], sizes: &[usize]) -> Vec<Value> {
    let mut stream = OllamaStream::new(route, "local", true);
    let mut frames = Vec::new();
    let mut rest = input;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at((*size).min(rest.len()));
        frames.extend(stream.push(head));
        rest = tail;
    }
    frames.extend(stream.finish());
    assert!(stream.is_done());
    payloads(&frames)
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "ID", "object": "chat.completion.chunk", "created": 0, "model": "local",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

#[test]
fn a_chat_stream_with_thinking_and_a_tool_call_in_any_chunking() {
    let input = fixture("chat_stream_tool.jsonl");
    let expected = vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"reasoning_content": "The user wants"}), Value::Null),
        chunk(json!({"reasoning_content": " the weather."}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "CALL", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "ID", "object": "chat.completion.chunk", "created": 0, "model": "local",
            "choices": [], "usage": {"prompt_tokens": 187, "completion_tokens": 29, "total_tokens": 216}}),
        json!("[DONE]"),
    ];
    for sizes in [vec![input.len()], vec![1], vec![7, 3], vec![64]] {
        assert_eq!(run(Route::Chat, &input, &sizes), expected, "{sizes:?}");
    }
    // CRLF line ends read the same.
    let crlf = String::from_utf8(input.clone())
        .unwrap()
        .replace('\n', "\r\n");
    assert_eq!(run(Route::Chat, crlf.as_bytes(), &[5]), expected);
}

#[test]
fn a_generate_stream_for_chat_and_for_completions() {
    let input = fixture("generate_stream.jsonl");
    let chat = run(Route::GenerateFromChat, &input, &[11]);
    let text: String = chat
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(text, "The sky is blue.");
    assert_eq!(
        chat[chat.len() - 3]["choices"][0]["finish_reason"],
        "length"
    );

    let completion = run(Route::Generate, &input, &[3]);
    assert!(
        completion[..completion.len() - 1]
            .iter()
            .all(|c| c["object"] == "text_completion")
    );
    let text: String = completion
        .iter()
        .filter_map(|c| c.pointer("/choices/0/text").and_then(Value::as_str))
        .collect();
    assert_eq!(text, "The sky is blue.");
    assert_eq!(
        completion[completion.len() - 2]["usage"],
        json!({"prompt_tokens": 26, "completion_tokens": 3, "total_tokens": 29})
    );
}

#[test]
fn a_stream_that_stops_early_or_errors_ends_with_an_error_frame() {
    let input = fixture("chat_stream_tool.jsonl");
    // Two whole lines, then the connection ends.
    let second_newline = input
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .map(|(i, _)| i + 1)
        .unwrap();
    let frames = run(Route::Chat, &input[..second_newline], &[9]);
    assert!(
        frames[frames.len() - 2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before")
    );
    assert_eq!(frames.last(), Some(&json!("[DONE]")));

    let frames = run(
        Route::Chat,
        b"{\"error\":\"an unknown error was encountered\"}\n",
        &[4],
    );
    assert_eq!(
        frames[0]["error"]["message"],
        "an unknown error was encountered"
    );
    // A line cut in the middle is a malformed one.
    let frames = run(Route::Chat, &input[..input.len() / 2], &[100]);
    assert!(
        frames[frames.len() - 2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed")
    );
}

#[test]
fn a_recorded_chat_answer_becomes_a_chat_completion() {
    let answer: Value = serde_json::from_slice(&fixture("chat_answer.json")).unwrap();
    let chat = ollama::chat_answer(&answer, "local");
    assert_eq!(chat["object"], "chat.completion");
    assert_eq!(chat["model"], "local");
    assert_eq!(
        chat["choices"][0]["message"],
        json!({"role": "assistant", "content": "Paris is the capital of France."})
    );
    assert_eq!(chat["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        chat["usage"],
        json!({"prompt_tokens": 26, "completion_tokens": 8, "total_tokens": 34})
    );
}

#[test]
fn chat_requests_become_api_chat_bodies() {
    let opts = TranslateOptions::default();
    let body = object(json!({
        "model": "public", "stream": true, "max_completion_tokens": 99, "seed": 7,
        "frequency_penalty": 1.1, "stop": "END", "num_ctx": 8192, "keep_alive": "5m",
        "reasoning_effort": "low", "n": 1,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "messages": [
            {"role": "developer", "content": "Answer in JSON."},
            {"role": "user", "content": [{"type": "text", "text": "Look: "},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]},
        ],
    }));
    let native = ollama::request(Route::Chat, &body, "llava:13b", &opts).unwrap();
    assert_eq!(
        native,
        json!({
            "model": "llava:13b",
            "format": {"type": "object"},
            "think": true,
            "keep_alive": "5m",
            "messages": [
                {"role": "system", "content": "Answer in JSON."},
                {"role": "user", "content": "Look: ", "images": ["/9j/4AAQ"]},
            ],
            "options": {"num_predict": 99, "seed": 7, "repeat_penalty": 1.1, "stop": ["END"], "num_ctx": 8192},
            "stream": true,
        })
    );
}

#[test]
fn what_ollama_cannot_take_is_refused_or_dropped() {
    let opts = TranslateOptions::default();
    let refuse = |body: Value, route: Route| match ollama::request(route, &object(body), "m", &opts)
    {
        Err(Error::BadRequest { param, message }) => (param.unwrap_or_default(), message),
        other => panic!("{other:?}"),
    };
    let (param, message) = refuse(
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}]}),
        Route::Chat,
    );
    assert_eq!(param, "messages[0].content[0].image_url.url");
    assert!(message.contains("base64"), "{message}");
    let (param, _) = refuse(
        json!({"logit_bias": {"1": 2}, "messages": [{"role": "user", "content": "x"}]}),
        Route::Chat,
    );
    assert_eq!(param, "logit_bias");
    // `ollama/` has no tools (LiteLLM's `ollama_chat/` does).
    let (param, _) = refuse(
        json!({"tools": [], "messages": [{"role": "user", "content": "x"}]}),
        Route::GenerateFromChat,
    );
    assert_eq!(param, "tools");
    let dropping = TranslateOptions {
        drop_params: true,
        ..TranslateOptions::default()
    };
    let native = ollama::request(
        Route::Chat,
        &object(json!({"logit_bias": {"1": 2}, "messages": [{"role": "user", "content": "x"}]})),
        "m",
        &dropping,
    )
    .unwrap();
    assert!(native.get("logit_bias").is_none());
}

#[test]
fn ollama_errors_keep_their_status_in_openai_shape() {
    for (status, body, message) in [
        (
            404,
            &b"{\"error\":\"model 'x' not found\"}"[..],
            "model 'x' not found",
        ),
        (500, &b"<html>oops</html>"[..], "<html>oops</html>"),
        (503, &b""[..], "ollama answered 503"),
    ] {
        let status = StatusCode::from_u16(status).unwrap();
        let Error::Upstream {
            status: got, body, ..
        } = ollama::map_error(status, body)
        else {
            panic!("not an upstream error");
        };
        assert_eq!(got, status);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["message"], message);
        assert_eq!(body["error"]["code"], status.as_u16().to_string());
    }
}
