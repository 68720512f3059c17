//! Bedrock's ConverseStream answer (AWS event-stream frames) → OpenAI chunks, cut anywhere.
//! The fuzzer cannot forge the frames' CRCs, so most inputs are read as a script of frames that
//! the harness encodes (`0xFF` separates them; a frame's first byte picks its kind and event,
//! the rest is its payload); with the first byte odd, the bytes go in raw.
#![no_main]

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use libfuzzer_sys::fuzz_target;
use vaultgate_providers::TranslateStream;
use vaultgate_providers::bedrock::{StreamTranslator, stream_opened_with_error};

const EVENTS: [&str; 7] = [
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
    "somethingNew",
];

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let stream = if knobs & 1 == 1 {
        rest.to_vec()
    } else {
        let mut encoded = Vec::new();
        for piece in rest.split(|&b| b == 0xFF) {
            let Some((&kind, payload)) = piece.split_first() else {
                continue;
            };
            write_message_to(&message(kind, payload), &mut encoded).expect("frame encodes");
        }
        encoded
    };
    let _ = stream_opened_with_error(&stream);
    let include_usage = knobs & 2 == 2;
    let make = || -> Box<dyn TranslateStream> {
        Box::new(StreamTranslator::new("public/model", include_usage))
    };
    let size = vaultgate_fuzz::chunk_size(knobs >> 2, &stream);
    vaultgate_fuzz::run_stream(make, &stream, size);
});

/// One frame: an event (of the event type `kind` picks), an exception, or an error message.
fn message(kind: u8, payload: &[u8]) -> Message {
    let string =
        |name: &'static str, value: String| Header::new(name, HeaderValue::String(value.into()));
    let message = Message::new(payload.to_vec())
        .add_header(string(":content-type", "application/json".into()));
    match kind % 10 {
        7 => message
            .add_header(string(":message-type", "exception".into()))
            .add_header(string(":exception-type", "throttlingException".into())),
        8 => message
            .add_header(string(":message-type", "error".into()))
            .add_header(string(":error-code", "InternalFailure".into()))
            .add_header(string(
                ":error-message",
                String::from_utf8_lossy(payload).into_owned(),
            )),
        9 => message,
        n => message
            .add_header(string(":message-type", "event".into()))
            .add_header(string(
                ":event-type",
                EVENTS[usize::from(n) % EVENTS.len()].into(),
            )),
    }
}
