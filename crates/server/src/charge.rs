//! What a stream costs when the provider's own count never arrives (the client hung up before
//! the last chunk, or the upstream sends no usage): an estimate, so no stream costs nothing.
//!
//! The estimate is OpenAI's documented rule of thumb: about 4 bytes of text per token (English
//! prose; code and non-Latin scripts have more tokens per byte, so it errs low there), plus 3
//! tokens per chat message and 3 to prime the reply (the cookbook's per-message overhead).
//! Completion text is counted in the frames forwarded to the client (one pass over each, no
//! allocation); the prompt is estimated only when needed, from the request body kept for it.

use serde_json::{Map, Value};
use vaultgate_providers::ChatBody;

/// Bytes of text per token in the estimate.
const BYTES_PER_TOKEN: u64 = 4;
/// Tokens of overhead per chat message, and to prime the reply.
const PER_MESSAGE: u64 = 3;

/// Generated text the client was sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub text_bytes: u64,
    /// Frames that carried some of it.
    pub text_frames: u64,
}

impl Delivered {
    pub fn add(&mut self, frame: &[u8]) {
        let bytes = text_bytes(frame);
        if bytes > 0 {
            self.text_bytes += bytes;
            self.text_frames += 1;
        }
    }

    /// Estimated completion tokens: the bytes' estimate, and at least one per frame of text
    /// (OpenAI sends about one token per chunk).
    pub fn tokens(&self) -> u64 {
        self.text_bytes
            .div_ceil(BYTES_PER_TOKEN)
            .max(self.text_frames)
    }
}

/// Members whose string values are generated text, in OpenAI chunks (`content`, `text`,
/// `arguments` of tool calls, `refusal`, `reasoning_content`), Anthropic events (`text`,
/// `partial_json`, `thinking`) and Responses events (`delta`, when a string).
fn is_text_member(name: &[u8]) -> bool {
    matches!(
        name,
        b"content"
            | b"text"
            | b"arguments"
            | b"refusal"
            | b"reasoning_content"
            | b"partial_json"
            | b"thinking"
            | b"delta"
    )
}

/// Bytes (as escaped in the JSON) of the text members' string values in one event.
pub fn text_bytes(frame: &[u8]) -> u64 {
    let mut total = 0u64;
    let mut at = 0;
    while let Some(open) = frame[at..].iter().position(|&b| b == b'"') {
        let start = at + open + 1;
        let Some(end) = string_end(frame, start) else {
            break;
        };
        let mut next = skip_space(frame, end + 1);
        if frame.get(next) == Some(&b':') && is_text_member(&frame[start..end]) {
            next = skip_space(frame, next + 1);
            if frame.get(next) == Some(&b'"') {
                let Some(value_end) = string_end(frame, next + 1) else {
                    break;
                };
                total += (value_end - next - 1) as u64;
                at = value_end + 1;
                continue;
            }
        }
        at = end + 1;
    }
    total
}

/// The index of the quote closing a string whose first byte is at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// Estimated prompt tokens of a request (OpenAI chat or completions, Anthropic messages,
/// Responses).
pub fn prompt_tokens(body: &ChatBody) -> u64 {
    let Ok(fields) = body.fields() else {
        return PER_MESSAGE;
    };
    let mut bytes = 0u64;
    let mut messages = 0u64;
    // Chat and Anthropic `messages`, or the items of a Responses `input`.
    for list in ["messages", "input"] {
        if let Some(list) = fields.get(list).and_then(Value::as_array) {
            messages += list.len() as u64;
            for message in list {
                bytes += value_text_bytes(message);
            }
        }
    }
    if let Some(Value::String(text)) = fields.get("input") {
        messages += 1;
        bytes += text.len() as u64;
    }
    for member in ["system", "prompt", "tools", "functions", "instructions"] {
        if let Some(value) = fields.get(member) {
            bytes += value_text_bytes(value);
        }
    }
    bytes.div_ceil(BYTES_PER_TOKEN) + PER_MESSAGE * (messages + 1)
}

/// Bytes of the strings in a JSON value, leaving out media (images, audio, files as base64 or
/// URLs, which are priced otherwise and would swamp the estimate).
fn value_text_bytes(value: &Value) -> u64 {
    match value {
        Value::String(text) => text.len() as u64,
        Value::Array(items) => items.iter().map(value_text_bytes).sum(),
        Value::Object(members) => object_text_bytes(members),
        _ => 0,
    }
}

fn object_text_bytes(members: &Map<String, Value>) -> u64 {
    members
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                // media, and what the per-message overhead covers
                "image_url" | "input_audio" | "file" | "file_data" | "source" | "type" | "role"
            )
        })
        .map(|(_, value)| value_text_bytes(value))
        .sum()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use bytes::Bytes;

    use super::*;

    #[test]
    fn text_is_counted_in_openai_and_anthropic_frames() {
        let chunk = br#"data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello there"},"finish_reason":null}]}"#;
        assert_eq!(text_bytes(chunk), 11);
        let spaced = br#"data: {"choices": [{"delta": {"content" : "a\"b"}}]}"#;
        assert_eq!(text_bytes(spaced), 4);
        let tool = br#"data: {"choices":[{"delta":{"tool_calls":[{"function":{"name":"f","arguments":"{\"x\":1}"}}]}}]}"#;
        assert_eq!(text_bytes(tool), 9);
        let anthropic = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi!\"}}\n\n";
        assert_eq!(text_bytes(anthropic), 3);
        assert_eq!(text_bytes(b"data: [DONE]\n\n"), 0);
        assert_eq!(
            text_bytes(br#"data: {"choices":[{"delta":{"role":"assistant","content":""}}]}"#),
            0
        );
        // A member named like text inside a value is no member.
        assert_eq!(
            text_bytes(br#"data: {"choices":[{"delta":{"content":"text:"}}]}"#),
            5
        );
    }

    #[test]
    fn delivered_text_gives_at_least_a_token_per_frame() {
        let mut delivered = Delivered::default();
        for _ in 0..3 {
            delivered.add(br#"data: {"choices":[{"delta":{"content":"a"}}]}"#);
        }
        delivered.add(b"data: [DONE]");
        assert_eq!(delivered.text_frames, 3);
        assert_eq!(delivered.tokens(), 3);
        delivered
            .add(br#"data: {"choices":[{"delta":{"content":"a much longer piece of text"}}]}"#);
        assert_eq!(delivered.tokens(), 31_u64.div_ceil(4).max(4));
    }

    #[test]
    fn prompt_tokens_count_message_text_not_media() {
        let body = |json: &str| ChatBody::parse(Bytes::from(json.to_owned())).unwrap();
        // "You are terse." (14) + "Say hi" (6) = 20 bytes = 5 tokens, + 3 × (2 messages + 1).
        let chat = body(
            r#"{"model":"m","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hi"}]}"#,
        );
        assert_eq!(prompt_tokens(&chat), 5 + 9);
        let image = body(&format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"text","text":"What is it?"}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{}"}}}}]}}]}}"#,
            "A".repeat(100_000)
        ));
        assert_eq!(prompt_tokens(&image), 11_u64.div_ceil(4) + 6);
        let completion = body(r#"{"model":"m","prompt":"Once upon a time"}"#);
        assert_eq!(prompt_tokens(&completion), 4 + 3);
    }
}
