//! Gemini's API: OpenAI chat → `generateContent` bodies, recorded answers and SSE streams
//! (`tests/fixtures/gemini/`) fed in every chunking, and Google's errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};
use vaultgate_core::Error;
use vaultgate_providers::gemini::{self, GeminiStream};
use vaultgate_providers::{TranslateOptions, TranslateStream};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/gemini/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn request(body: Value) -> Value {
    gemini::chat_request(&object(body), &TranslateOptions::default()).unwrap()
}

/// Stream payloads with the random ids and `created` replaced; tool call ids keep their
/// thought signature after the marker.
fn run(input: &[u8], size: usize) -> Vec<Value> {
    let mut stream = GeminiStream::new("flash", true);
    let mut frames: Vec<Bytes> = Vec::new();
    for piece in input.chunks(size) {
        frames.extend(stream.push(piece));
    }
    frames.extend(stream.finish());
    assert!(stream.is_done());
    frames
        .iter()
        .map(|frame| {
            let text = std::str::from_utf8(frame).unwrap();
            let payload = text
                .strip_prefix("data: ")
                .and_then(|t| t.strip_suffix("\n\n"))
                .unwrap();
            if payload == "[DONE]" {
                return json!("[DONE]");
            }
            let mut value: Value = serde_json::from_str(payload).unwrap();
            value["id"] = json!("ID");
            value["created"] = json!(0);
            if let Some(id) = value.pointer_mut("/choices/0/delta/tool_calls/0/id") {
                let (head, signature) = id.as_str().unwrap().split_once("__thought__").unwrap();
                assert!(head.starts_with("call_"));
                *id = json!(format!("CALL__thought__{signature}"));
            }
            value
        })
        .collect()
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "ID", "object": "chat.completion.chunk", "created": 0, "model": "flash",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

fn usage_chunk(usage: Value) -> Value {
    json!({"id": "ID", "object": "chat.completion.chunk", "created": 0, "model": "flash",
        "choices": [], "usage": usage})
}

#[test]
fn a_text_stream_in_any_chunking() {
    let input = fixture("stream_text.sse");
    let expected = vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "The capital"}), Value::Null),
        chunk(json!({"content": " of France is"}), Value::Null),
        chunk(json!({"content": " Paris."}), Value::Null),
        chunk(json!({}), json!("stop")),
        usage_chunk(
            json!({"prompt_tokens": 8, "completion_tokens": 7, "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0}}),
        ),
        json!("[DONE]"),
    ];
    for size in [input.len(), 1, 2, 7, 100] {
        assert_eq!(run(&input, size), expected, "chunks of {size}");
    }
}

#[test]
fn thoughts_and_a_function_call_with_its_signature() {
    let frames = run(&fixture("stream_thinking_tool.sse"), 13);
    assert_eq!(
        frames[1],
        chunk(
            json!({"reasoning_content": "**Looking up the weather**\nThe user asks for Paris."}),
            Value::Null
        )
    );
    assert_eq!(
        frames[2],
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "CALL__thought__CikB0e2Kb3J8AZmNy1bM0cWxM2s=",
                "type": "function", "function": {"name": "get_weather",
                "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}}]}),
            Value::Null
        )
    );
    assert_eq!(frames[3], chunk(json!({}), json!("tool_calls")));
    // Thinking tokens are billed as output.
    assert_eq!(frames[4]["usage"]["completion_tokens"], 76);
    assert_eq!(
        frames[4]["usage"]["completion_tokens_details"]["reasoning_tokens"],
        56
    );
}

#[test]
fn the_signature_goes_back_with_the_call_in_the_next_turn() {
    let body = request(json!({"messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1__thought__SIG", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1__thought__SIG", "content": "{\"temp\": 18}"},
        {"role": "tool", "tool_call_id": "call_1__thought__SIG", "content": "sunny"},
    ]}));
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": "SIG"}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
            ]},
        ])
    );
}

#[test]
fn chat_requests_become_generate_content_bodies() {
    let body = request(json!({
        "model": "public", "stream": true, "temperature": 0.3, "top_p": 0.9, "max_tokens": 256,
        "stop": ["END"], "seed": 3, "n": 1, "user": "u-1", "reasoning_effort": "low",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "gs://bucket/photo.webp"}}]},
            {"role": "assistant", "content": "A photo."},
            {"role": "user", "content": "Thanks"},
        ],
    }));
    assert_eq!(
        body,
        json!({
            "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use metric."}]},
            "contents": [
                {"role": "user", "parts": [
                    {"text": "What is this?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                    {"fileData": {"mimeType": "image/webp", "fileUri": "gs://bucket/photo.webp"}}]},
                {"role": "model", "parts": [{"text": "A photo."}]},
                {"role": "user", "parts": [{"text": "Thanks"}]},
            ],
            "generationConfig": {
                "temperature": 0.3, "topP": 0.9, "maxOutputTokens": 256, "stopSequences": ["END"],
                "seed": 3, "candidateCount": 1,
                "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true},
                "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"},
            },
            "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather.",
                "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
        })
    );
}

#[test]
fn what_gemini_cannot_take_is_refused_naming_it() {
    let refuse =
        |body: Value| match gemini::chat_request(&object(body), &TranslateOptions::default()) {
            Err(Error::BadRequest { param, .. }) => param.unwrap_or_default(),
            other => panic!("{other:?}"),
        };
    assert_eq!(
        refuse(json!({"logit_bias": {"1": 1}, "messages": [{"role": "user", "content": "x"}]})),
        "logit_bias"
    );
    assert_eq!(
        refuse(json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]})),
        "messages[0].tool_call_id"
    );
    assert_eq!(refuse(json!({"messages": []})), "messages");
    assert_eq!(
        refuse(json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]})),
        "messages[0].content[0]"
    );
}

#[test]
fn a_recorded_answer_with_thoughts_a_call_and_cached_tokens() {
    let answer: Value = serde_json::from_slice(&fixture("answer_tool.json")).unwrap();
    let chat = gemini::generate_answer(&answer, "pro");
    assert_eq!(chat["id"], "chatcmpl-aB3taPqLOaWfnvgP4JuS6Ak");
    assert_eq!(chat["model"], "pro");
    let choice = &chat["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Checking the weather.");
    assert_eq!(choice["message"]["reasoning_content"], "Let me check.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert!(
        call["id"]
            .as_str()
            .unwrap()
            .ends_with("__thought__CiQB0e2Kb1sig")
    );
    assert!(call.get("index").is_none());
    assert_eq!(
        chat["usage"],
        json!({"prompt_tokens": 40, "completion_tokens": 50, "total_tokens": 90,
            "prompt_tokens_details": {"cached_tokens": 16},
            "completion_tokens_details": {"reasoning_tokens": 38}})
    );
}

#[test]
fn blocked_and_truncated_answers_say_so() {
    let blocked = gemini::generate_answer(
        &json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9}}),
        "m",
    );
    assert_eq!(blocked["choices"][0]["finish_reason"], "content_filter");
    let long = gemini::generate_answer(
        &json!({"candidates": [{"content": {"parts": [{"text": "Once"}]}, "finishReason": "MAX_TOKENS"}]}),
        "m",
    );
    assert_eq!(long["choices"][0]["finish_reason"], "length");

    // A stream that ends without a finish reason was cut.
    let input = fixture("stream_text.sse");
    let first_event = input.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let frames = run(&input[..first_event], 5);
    assert!(
        frames[frames.len() - 2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before")
    );
}

#[test]
fn googles_errors_keep_their_status_in_openai_shape() {
    let Error::Upstream { status, body, .. } =
        gemini::map_error(StatusCode::BAD_REQUEST, &fixture("error_invalid_key.json"))
    else {
        panic!("not an upstream error");
    };
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["error"]["message"],
        "API key not valid. Please pass a valid API key."
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
    // Vertex sometimes wraps the error in a list.
    let Error::Upstream { body, .. } = gemini::map_error(
        StatusCode::TOO_MANY_REQUESTS,
        br#"[{"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}]"#,
    ) else {
        panic!("not an upstream error");
    };
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["message"], "Resource exhausted");
    assert_eq!(body["error"]["type"], "rate_limit_error");
}

#[test]
fn embeddings_go_in_one_batch() {
    let body = gemini::embed_request(
        &object(json!({"input": ["a", "b"], "dimensions": 256})),
        "models/text-embedding-004",
    )
    .unwrap();
    assert_eq!(
        body,
        json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 256},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 256},
        ]})
    );
    let answer = gemini::embed_answer(
        &json!({"embeddings": [{"values": [0.1]}, {"values": [0.2]}]}),
        "emb",
    );
    assert_eq!(
        answer["data"][1],
        json!({"object": "embedding", "index": 1, "embedding": [0.2]})
    );
}
