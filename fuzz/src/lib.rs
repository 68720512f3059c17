//! What several fuzz targets share: driving a stream translation the way the proxy does, and
//! checking what it sends the client.

use bytes::Bytes;
use vaultgate_providers::TranslateStream;

/// Chunk size from a knob: 0 is the whole stream at once, else that many bytes (1: every
/// boundary).
pub fn chunk_size(knob: u8, stream: &[u8]) -> usize {
    match knob {
        0 => stream.len().max(1),
        n => usize::from(n),
    }
}

/// Feeds `stream` in chunks of `size` until the translator is done, then ends it; the stream
/// must be closed after that, and every frame whole (`event:` and `data:` lines, each `data:`
/// JSON or `[DONE]`, a blank line after).
pub fn run_stream(translator: &mut dyn TranslateStream, stream: &[u8], size: usize) {
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
    for frame in &frames {
        whole_frame(frame);
    }
}

fn whole_frame(frame: &Bytes) {
    let text = std::str::from_utf8(frame).expect("frames are UTF-8");
    assert!(text.ends_with("\n\n"), "not a whole frame: {text:?}");
    for line in text.trim_end_matches('\n').split('\n') {
        if let Some(data) = line.strip_prefix("data: ") {
            if data != "[DONE]" {
                serde_json::from_str::<serde_json::Value>(data)
                    .unwrap_or_else(|e| panic!("data is not JSON ({e}): {text:?}"));
            }
        } else {
            assert!(line.starts_with("event: "), "unexpected line in {text:?}");
        }
    }
}
