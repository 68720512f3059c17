//! Golden tests of the OpenAI SSE → Anthropic SSE translation used for Anthropic-native clients
//! (`POST /v1/messages`, `stream: true`) served by OpenAI deployments.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use serde_json::{Value, json};
use vaultgate_providers::anthropic::MessagesStreamTranslator;

fn golden() -> (Vec<u8>, Vec<Value>, (u64, u64)) {
    let dir = format!("{}/tests/fixtures/anthropic", env!("CARGO_MANIFEST_DIR"));
    let input = std::fs::read(format!("{dir}/native_stream_tool_use.sse")).unwrap();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/native_stream_tool_use.expected.json")).unwrap(),
    )
    .unwrap();
    let usage = &expected["usage"];
    (
        input,
        expected["events"].as_array().unwrap().clone(),
        (usage[0].as_u64().unwrap(), usage[1].as_u64().unwrap()),
    )
}

/// Checks each frame is exactly `event: <name>\ndata: <json>\n\n` with the name equal to the
/// JSON `type`, and returns `{"event", "data"}` objects.
fn parse(frames: &[Bytes]) -> Vec<Value> {
    frames
        .iter()
        .map(|frame| {
            let text = std::str::from_utf8(frame).unwrap();
            let body = text
                .strip_suffix("\n\n")
                .unwrap_or_else(|| panic!("{text:?}"));
            let (event_line, data_line) = body.split_once('\n').unwrap();
            let name = event_line.strip_prefix("event: ").unwrap();
            let data: Value =
                serde_json::from_str(data_line.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name, "{text:?}");
            json!({"event": name, "data": data})
        })
        .collect()
}

fn run(input: &[u8], size: usize) -> (Vec<Value>, MessagesStreamTranslator) {
    let mut t = MessagesStreamTranslator::new("claude-alias");
    let mut out = Vec::new();
    for chunk in input.chunks(size.max(1)) {
        out.extend(t.push(chunk));
    }
    out.extend(t.finish());
    (parse(&out), t)
}

#[test]
fn golden_in_any_chunking() {
    let (input, expected, usage) = golden();
    for size in [input.len(), 1, 2, 3, 7, 31, 256] {
        let (got, t) = run(&input, size);
        assert_eq!(got, expected, "chunks of {size}");
        assert_eq!(t.usage(), Some(usage));
        assert!(t.is_done());
    }
    for at in 0..=input.len() {
        let mut t = MessagesStreamTranslator::new("claude-alias");
        let mut out = t.push(&input[..at]);
        out.extend(t.push(&input[at..]));
        out.extend(t.finish());
        assert_eq!(parse(&out), expected, "split at {at}");
    }
}

#[test]
fn missing_done_after_finish_reason_still_closes() {
    let (input, expected, _) = golden();
    let text = String::from_utf8(input).unwrap();
    let cut = text.strip_suffix("data: [DONE]\n\n").unwrap();
    let (got, _) = run(cut.as_bytes(), 5);
    assert_eq!(got, expected);
}

#[test]
fn truncated_stream_ends_with_an_error_event() {
    let (input, _, _) = golden();
    let text = String::from_utf8(input).unwrap();
    let cut = &text[..text.find("get_time").unwrap()];
    let (got, _) = run(cut.as_bytes(), 9);
    let last = got.last().unwrap();
    assert_eq!(last["event"], "error");
    assert_eq!(last["data"]["error"]["type"], "api_error");
    assert!(got.iter().all(|e| e["event"] != "message_stop"));
}

#[test]
fn upstream_error_chunk_becomes_an_anthropic_error_event() {
    let input = b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n\
data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_error\",\"param\":null,\"code\":\"429\"}}\n\n\
data: [DONE]\n\n";
    let (got, t) = run(input, 4);
    let events: Vec<&Value> = got.iter().map(|e| &e["event"]).collect();
    assert_eq!(
        events,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
        .map(|s| json!(s))
        .iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(
        got[3]["data"],
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}})
    );
    assert!(t.is_done());
    assert_eq!(t.usage(), None);
}

#[test]
fn text_only_stream_without_usage() {
    let input = b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Once\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n\
data: [DONE]\n\n";
    let (got, _) = run(input, 1);
    let names: Vec<&str> = got.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(got[4]["data"]["delta"]["stop_reason"], "max_tokens");
    assert_eq!(
        got[4]["data"]["usage"],
        json!({"input_tokens": 0, "output_tokens": 0})
    );
}
