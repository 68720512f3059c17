//! The providers' own (not OpenAI-shaped) APIs the mock answers: Gemini's and Ollama's.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use serde_json::{Value, json};

use crate::stream::{lines_stream, sse};
use crate::{Script, Shared, USAGE, lock, respond};

/// Gemini's API (AI Studio's `/v1beta/models/{m}:…` or Vertex's `…/publishers/google/models/{m}:…`).
pub(crate) fn gemini(
    shared: &Arc<Shared>,
    path: &str,
    method: &str,
    body: &Value,
    script: Script,
) -> Response {
    let model = path
        .rsplit_once("/models/")
        .and_then(|(_, m)| m.split(':').next())
        .unwrap_or_default()
        .to_owned();
    if method == "batchEmbedContents" {
        let count = body
            .get("requests")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let embeddings: Vec<Value> = (0..count)
            .map(|_| json!({"values": [0.5, -0.25, 0.125]}))
            .collect();
        return respond(
            200,
            "application/json",
            Body::from(json!({"embeddings": embeddings}).to_string()),
        );
    }
    let answer = lock(&shared.answer).clone();
    let usage = json!({"promptTokenCount": USAGE.0, "candidatesTokenCount": USAGE.1,
        "totalTokenCount": USAGE.0 + USAGE.1});
    let chunk = |text: &str, finish: Option<&str>| {
        let mut candidate =
            json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
        let mut chunk =
            json!({"candidates": [], "modelVersion": model, "responseId": "mock-response"});
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
            chunk["usageMetadata"] = usage.clone();
        }
        chunk["candidates"] = json!([candidate]);
        chunk
    };
    if method == "streamGenerateContent" {
        let frames = script.stream.unwrap_or_else(|| {
            let words: Vec<&str> = answer.split_inclusive(' ').collect();
            let last = words.len().saturating_sub(1);
            words
                .iter()
                .enumerate()
                .map(|(i, w)| chunk(w, (i == last).then_some("STOP")).to_string())
                .collect()
        });
        return sse(
            Arc::clone(shared),
            frames,
            script.chunk_delay,
            script.cut_after,
        );
    }
    if let Some(text) = script.body {
        return respond(200, "application/json", Body::from(text));
    }
    respond(
        200,
        "application/json",
        Body::from(chunk(&answer, Some("STOP")).to_string()),
    )
}

/// Ollama's native API: `/api/chat`, `/api/generate`, `/api/embed`; streams are JSON lines.
pub(crate) async fn ollama(
    shared: &Arc<Shared>,
    uri: &str,
    body: &Value,
    script: Script,
) -> Response {
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let answer = lock(&shared.answer).clone();
    let path = uri.split('?').next().unwrap_or_default();
    if path == "/api/embed" {
        let inputs = body
            .get("input")
            .and_then(Value::as_array)
            .map_or(1, Vec::len);
        let embeddings: Vec<Value> = (0..inputs).map(|_| json!([0.5, -0.25, 0.125])).collect();
        let json = json!({"model": model, "embeddings": embeddings, "prompt_eval_count": USAGE.0});
        return respond(200, "application/json", Body::from(json.to_string()));
    }
    let chat = path == "/api/chat";
    if !chat && path != "/api/generate" {
        let json = json!({"error": format!("404 page not found: {path}")});
        return respond(404, "application/json", Body::from(json.to_string()));
    }
    let piece = |text: &str, done: bool| {
        let mut line = if chat {
            json!({"model": model, "created_at": "2026-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": text}, "done": done})
        } else {
            json!({"model": model, "created_at": "2026-01-01T00:00:00Z", "response": text, "done": done})
        };
        if done {
            line["done_reason"] = json!("stop");
            line["prompt_eval_count"] = json!(USAGE.0);
            line["eval_count"] = json!(USAGE.1);
        }
        line
    };
    if body.get("stream").and_then(Value::as_bool) == Some(true) || script.stream.is_some() {
        let lines = script.stream.unwrap_or_else(|| {
            let mut lines: Vec<String> = answer
                .split_inclusive(' ')
                .map(|w| piece(w, false).to_string())
                .collect();
            lines.push(piece("", true).to_string());
            lines
        });
        return lines_stream(
            Arc::clone(shared),
            lines,
            script.chunk_delay,
            script.cut_after,
        );
    }
    if let Some(text) = script.body {
        return respond(200, "application/json", Body::from(text));
    }
    respond(
        200,
        "application/json",
        Body::from(piece(&answer, true).to_string()),
    )
}
