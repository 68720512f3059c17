//! What several fuzz targets share: driving a stream translation the way the proxy does, and
//! checking what it sends the client.

use bytes::Bytes;
use serde_json::Value;
use vaultgate_providers::TranslateStream;

/// Chunk size from a knob: 0 is the whole stream at once, else that many bytes (1: every
/// boundary).
pub fn chunk_size(knob: u8, stream: &[u8]) -> usize {
    match knob {
        0 => stream.len().max(1),
        n => usize::from(n),
    }
}

/// Feeds `stream` to a translator from `make` in chunks of `size` until it is done, then ends
/// it; the stream must be closed after that, and every frame whole (`event:` and `data:` lines,
/// each `data:` JSON or `[DONE]`, a blank line after). Where the chunks were cut must not change
/// what the client gets: the same stream fed at once gives the same events (ids and timestamps
/// aside, which each translator makes up).
pub fn run_stream(make: impl Fn() -> Box<dyn TranslateStream>, stream: &[u8], size: usize) {
    let chunked = translate(make().as_mut(), stream, size);
    for frame in &chunked {
        whole_frame(frame);
    }
    if size < stream.len() {
        let whole = translate(make().as_mut(), stream, stream.len().max(1));
        assert_eq!(
            events(&chunked),
            events(&whole),
            "chunks of {size} bytes changed the stream"
        );
    }
}

fn translate(translator: &mut dyn TranslateStream, stream: &[u8], size: usize) -> Vec<Bytes> {
    let mut frames = Vec::new();
    for chunk in stream.chunks(size) {
        frames.extend(translator.push(chunk));
        if translator.is_done() {
            break;
        }
    }
    frames.extend(translator.finish());
    assert!(
        translator.is_done(),
        "the stream stayed open after the upstream ended"
    );
    frames
}

/// The frames' lines, with every `id` and `created` member left out of their JSON.
fn events(frames: &[Bytes]) -> Vec<String> {
    let mut lines = Vec::new();
    for frame in frames {
        for line in String::from_utf8_lossy(frame).split('\n') {
            let Some(mut json) = line
                .strip_prefix("data: ")
                .and_then(|data| serde_json::from_str::<Value>(data).ok())
            else {
                lines.push(line.to_owned());
                continue;
            };
            forget_ids(&mut json);
            lines.push(json.to_string());
        }
    }
    lines
}

fn forget_ids(value: &mut Value) {
    match value {
        Value::Object(members) => {
            members.remove("id");
            members.remove("created");
            members.values_mut().for_each(forget_ids);
        }
        Value::Array(items) => items.iter_mut().for_each(forget_ids),
        _ => {}
    }
}

fn whole_frame(frame: &Bytes) {
    let text = std::str::from_utf8(frame).expect("frames are UTF-8");
    assert!(text.ends_with("\n\n"), "not a whole frame: {text:?}");
    for line in text.trim_end_matches('\n').split('\n') {
        if let Some(data) = line.strip_prefix("data: ") {
            if data != "[DONE]" {
                serde_json::from_str::<Value>(data)
                    .unwrap_or_else(|e| panic!("data is not JSON ({e}): {text:?}"));
            }
        } else {
            assert!(line.starts_with("event: "), "unexpected line in {text:?}");
        }
    }
}
