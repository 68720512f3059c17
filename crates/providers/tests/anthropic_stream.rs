//! Golden tests of the Anthropic SSE → OpenAI SSE stream translation. Each recorded-style stream
//! in `tests/fixtures/anthropic/stream_*.sse` is fed in many chunkings (whole, byte by byte, every
//! two-way split, fixed and pseudo-random sizes, CRLF line endings) and must always produce exactly
//! the frames of its `.expected.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use serde_json::{Value, json};
use vaultgate_providers::anthropic::StreamTranslator;

const STREAMS: [&str; 4] = [
    "stream_text",
    "stream_tool_use",
    "stream_error",
    "stream_thinking_length",
];

struct Golden {
    input: Vec<u8>,
    frames: Vec<Value>,
    usage: (u64, u64),
}

fn golden(name: &str) -> Golden {
    let dir = format!("{}/tests/fixtures/anthropic", env!("CARGO_MANIFEST_DIR"));
    let input = std::fs::read(format!("{dir}/{name}.sse")).unwrap();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/{name}.expected.json")).unwrap(),
    )
    .unwrap();
    let usage = expected["usage"].as_array().unwrap();
    Golden {
        input,
        frames: expected["frames"].as_array().unwrap().clone(),
        usage: (usage[0].as_u64().unwrap(), usage[1].as_u64().unwrap()),
    }
}

/// Checks the SSE framing of every emitted frame and returns the payloads as JSON
/// (`"[DONE]"` as a string), with `created` checked and zeroed.
fn parse_frames(frames: &[Bytes]) -> Vec<Value> {
    frames
        .iter()
        .map(|frame| {
            let text = std::str::from_utf8(frame).expect("a frame is whole UTF-8");
            let payload = text
                .strip_prefix("data: ")
                .and_then(|t| t.strip_suffix("\n\n"))
                .unwrap_or_else(|| panic!("not one SSE data frame: {text:?}"));
            assert!(
                !payload.contains('\n'),
                "frame payload spans lines: {text:?}"
            );
            if payload == "[DONE]" {
                return json!("[DONE]");
            }
            let mut value: Value = serde_json::from_str(payload).unwrap();
            if let Some(created) = value.get("created") {
                assert!(
                    created.as_u64().unwrap() > 1_700_000_000,
                    "created {created}"
                );
                value["created"] = json!(0);
            }
            value
        })
        .collect()
}

/// Feeds `input` cut into the given chunk lengths (the rest as a last chunk), then `finish`.
fn run(
    input: &[u8],
    sizes: impl IntoIterator<Item = usize>,
    include_usage: bool,
) -> (Vec<Value>, StreamTranslator) {
    let mut translator = StreamTranslator::new("my-claude", include_usage);
    let mut out = Vec::new();
    let mut rest = input;
    for size in sizes {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        out.extend(translator.push(chunk));
        rest = tail;
    }
    out.extend(translator.push(rest));
    out.extend(translator.finish());
    (parse_frames(&out), translator)
}

fn without_usage_chunk(frames: &[Value]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f.get("usage").is_none())
        .cloned()
        .collect()
}

fn check(name: &str, how: &str, golden: &Golden, got: &[Value], translator: &StreamTranslator) {
    assert_eq!(got, golden.frames.as_slice(), "{name} fed {how}");
    assert_eq!(
        translator.usage(),
        Some(golden.usage),
        "{name} fed {how}: usage"
    );
    assert!(translator.is_done(), "{name} fed {how}: not done");
}

#[test]
fn whole_input() {
    for name in STREAMS {
        let g = golden(name);
        let (got, t) = run(&g.input, [], true);
        check(name, "whole", &g, &got, &t);
    }
}

#[test]
fn byte_by_byte() {
    for name in STREAMS {
        let g = golden(name);
        let (got, t) = run(&g.input, std::iter::repeat_n(1, g.input.len()), true);
        check(name, "byte by byte", &g, &got, &t);
    }
}

#[test]
fn every_two_way_split() {
    for name in STREAMS {
        let g = golden(name);
        for at in 0..=g.input.len() {
            let (got, t) = run(&g.input, [at], true);
            check(name, &format!("split at {at}"), &g, &got, &t);
        }
    }
}

#[test]
fn fixed_and_pseudo_random_chunk_sizes() {
    for name in STREAMS {
        let g = golden(name);
        for size in [2, 3, 5, 7, 13, 64, 1000] {
            let (got, t) = run(&g.input, std::iter::repeat_n(size, g.input.len()), true);
            check(name, &format!("in chunks of {size}"), &g, &got, &t);
        }
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for seed in 0..50 {
            let sizes: Vec<usize> = (0..g.input.len())
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    (state >> 59) as usize + 1
                })
                .collect();
            let (got, t) = run(&g.input, sizes, true);
            check(name, &format!("in random chunks #{seed}"), &g, &got, &t);
        }
    }
}

#[test]
fn crlf_line_endings() {
    for name in STREAMS {
        let g = golden(name);
        let crlf = String::from_utf8(g.input.clone())
            .unwrap()
            .replace('\n', "\r\n");
        let (got, t) = run(crlf.as_bytes(), [], true);
        check(name, "with CRLF", &g, &got, &t);
        let (got, t) = run(crlf.as_bytes(), std::iter::repeat_n(1, crlf.len()), true);
        check(name, "with CRLF byte by byte", &g, &got, &t);
    }
}

#[test]
fn without_include_usage_there_is_no_usage_chunk() {
    for name in STREAMS {
        let g = golden(name);
        let (got, t) = run(&g.input, [17], false);
        assert_eq!(got, without_usage_chunk(&g.frames), "{name}");
        // Usage is still counted for spend tracking.
        assert_eq!(t.usage(), Some(g.usage), "{name}");
    }
}

#[test]
fn the_usage_chunk_has_empty_choices_and_comes_just_before_done() {
    let g = golden("stream_text");
    let n = g.frames.len();
    assert_eq!(g.frames[n - 2]["choices"], json!([]));
    assert_eq!(g.frames[n - 2]["usage"]["total_tokens"], 40);
    assert_eq!(g.frames[n - 1], json!("[DONE]"));
}

#[test]
fn input_after_done_is_ignored() {
    let g = golden("stream_text");
    let mut t = StreamTranslator::new("my-claude", true);
    let frames = t.push(&g.input);
    assert_eq!(parse_frames(&frames).last(), Some(&json!("[DONE]")));
    assert!(t.push(b"data: {\"type\":\"message_stop\"}\n\n").is_empty());
    assert!(t.finish().is_empty());
}

/// Everything up to and including the event whose JSON contains `marker`.
fn prefix_through(input: &[u8], marker: &str) -> Vec<u8> {
    let text = std::str::from_utf8(input).unwrap();
    let at = text.find(marker).unwrap();
    let end = text[at..].find("\n\n").unwrap() + at + 2;
    text.as_bytes()[..end].to_vec()
}

#[test]
fn stream_cut_before_message_delta_ends_with_an_error_then_done() {
    let g = golden("stream_text");
    let cut = prefix_through(&g.input, "wörld");
    let (got, t) = run(&cut, [], true);
    assert_eq!(&got[..3], &g.frames[..3]);
    assert_eq!(got.len(), 5, "{got:#?}");
    assert_eq!(got[3]["error"]["type"], "api_error");
    assert_eq!(got[3]["error"]["code"], "502");
    assert!(
        got[3]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before")
    );
    assert_eq!(got[4], json!("[DONE]"));
    assert_eq!(t.usage(), Some((25, 1)));
}

#[test]
fn stream_cut_after_message_delta_closes_normally() {
    let g = golden("stream_tool_use");
    let mut cut = prefix_through(&g.input, "message_delta\",");
    // Drop the final blank line too: finish() must still dispatch the last event.
    cut.truncate(cut.len() - 2);
    let (got, t) = run(&cut, [], true);
    assert_eq!(got, g.frames);
    assert_eq!(t.usage(), Some(g.usage));
}

#[test]
fn message_stop_without_message_delta_finishes_with_stop() {
    let input = b"data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_x\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n\
data: {\"type\":\"message_stop\"}\n\n";
    let (got, _) = run(input, [], false);
    let deltas: Vec<(&Value, &Value)> = got[..3]
        .iter()
        .map(|f| (&f["choices"][0]["delta"], &f["choices"][0]["finish_reason"]))
        .collect();
    assert_eq!(
        deltas,
        [
            (&json!({"role": "assistant", "content": ""}), &Value::Null),
            (&json!({"content": "hi"}), &Value::Null),
            (&json!({}), &json!("stop")),
        ]
    );
    assert_eq!(got[3], json!("[DONE]"));
    assert_eq!(got[0]["id"], "msg_x");
}

#[test]
fn malformed_event_ends_the_stream_with_an_error() {
    let (got, _) = run(b"event: message_start\ndata: {not json\n\n", [], true);
    assert_eq!(got.len(), 2);
    assert!(
        got[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed")
    );
    assert_eq!(got[1], json!("[DONE]"));
}

#[test]
fn no_usage_before_the_upstream_reports_any() {
    let mut t = StreamTranslator::new("m", true);
    assert_eq!(t.usage(), None);
    assert!(
        t.push(b"event: ping\ndata: {\"type\":\"ping\"}\n\n")
            .is_empty()
    );
    assert_eq!(t.usage(), None);
    assert!(!t.is_done());
}

#[test]
fn an_endless_line_is_cut_off_with_an_error() {
    let mut t = StreamTranslator::new("m", true);
    let chunk = vec![b'x'; 1024 * 1024];
    let mut out = Vec::new();
    for _ in 0..20 {
        out.extend(t.push(&chunk));
    }
    let frames = parse_frames(&out);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert!(
        frames[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("oversized")
    );
    assert_eq!(frames[1], json!("[DONE]"));
}
