//! OpenAI's Responses API as the mock plays it (under OpenAI's `/v1/responses` and Azure's
//! `/openai/responses`, `/openai/v1/responses`): created responses are kept, so `GET`,
//! `DELETE` and `…/input_items` by id and `previous_response_id` behave like OpenAI's (an id it
//! never issued is a 404).

use serde_json::{Value, json};

use crate::USAGE;

/// Responses created so far: (id, response, input items).
#[derive(Debug, Default)]
pub struct Store {
    responses: Vec<(String, Value, Value)>,
    created: usize,
}

/// Whether `path` is the Responses API (create, or a call about one response).
pub fn is_responses(path: &str) -> bool {
    ["/v1/responses", "/openai/responses", "/openai/v1/responses"]
        .iter()
        .any(|base| path == *base || path.starts_with(&format!("{base}/")))
}

/// What the mock answers: a status and a JSON body, or (when streaming) the events to send.
pub enum Answer {
    Json(u16, Value),
    Events(Vec<String>),
}

pub fn handle(
    store: &mut Store,
    method: &http::Method,
    path: &str,
    body: &Value,
    text: &str,
) -> Answer {
    let rest = path
        .split_once("/responses")
        .map(|(_, rest)| rest.trim_start_matches('/'))
        .unwrap_or_default();
    if rest.is_empty() {
        return create(store, body, text);
    }
    let (id, items) = match rest.split_once('/') {
        Some((id, "input_items")) => (id, true),
        Some(_) => return not_found("no such route", None),
        None => (rest, false),
    };
    let Some(position) = store.responses.iter().position(|(r, _, _)| r == id) else {
        return not_found(&format!("Response with id '{id}' not found."), None);
    };
    let (_, response, input) = &store.responses[position];
    match (method.as_str(), items) {
        ("GET", false) => Answer::Json(200, response.clone()),
        ("GET", true) => Answer::Json(
            200,
            json!({"object": "list", "data": input, "has_more": false}),
        ),
        ("DELETE", false) => {
            store.responses.remove(position);
            Answer::Json(
                200,
                json!({"id": id, "object": "response", "deleted": true}),
            )
        }
        _ => not_found("no such route", None),
    }
}

fn not_found(message: &str, param: Option<&str>) -> Answer {
    Answer::Json(
        404,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": param,
            "code": "not_found"}}),
    )
}

fn create(store: &mut Store, body: &Value, text: &str) -> Answer {
    let previous = body.get("previous_response_id").and_then(Value::as_str);
    if let Some(previous) = previous
        && !store.responses.iter().any(|(id, _, _)| id == previous)
    {
        return not_found(
            &format!("Previous response with id '{previous}' not found."),
            Some("previous_response_id"),
        );
    }
    store.created += 1;
    let n = store.created;
    let id = format!("resp_mock{n}");
    let message_id = format!("msg_mock{n}");
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let echo = |name: &str, default: Value| body.get(name).cloned().unwrap_or(default);
    let usage = json!({"input_tokens": USAGE.0, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": USAGE.1, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": USAGE.0 + USAGE.1});
    let message = |status: &str, text: &str| {
        json!({"type": "message", "id": message_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]})
    };
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": id, "object": "response", "created_at": 1_700_000_000, "status": status,
            "error": null, "incomplete_details": null, "instructions": echo("instructions", Value::Null),
            "max_output_tokens": echo("max_output_tokens", Value::Null), "model": model,
            "output": output, "parallel_tool_calls": true,
            "previous_response_id": echo("previous_response_id", Value::Null),
            "store": true, "temperature": 1.0, "tool_choice": "auto", "tools": echo("tools", json!([])),
            "top_p": 1.0, "truncation": "disabled", "usage": usage,
            "metadata": echo("metadata", json!({})), "text": {"format": {"type": "text"}}})
    };
    let done = response("completed", json!([message("completed", text)]), usage);
    let input = match body.get("input") {
        Some(Value::String(text)) => json!([{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]}]),
        Some(items) => items.clone(),
        None => json!([]),
    };
    store.responses.push((id.clone(), done.clone(), input));
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return Answer::Json(200, done);
    }
    let started = response("in_progress", json!([]), Value::Null);
    let mut events = vec![
        json!({"type": "response.created", "response": started}),
        json!({"type": "response.in_progress", "response": started}),
        json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"type": "message", "id": message_id, "status": "in_progress", "role": "assistant", "content": []}}),
        json!({"type": "response.content_part.added", "item_id": message_id, "output_index": 0,
            "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
    ];
    for word in text.split_inclusive(' ') {
        events.push(
            json!({"type": "response.output_text.delta", "item_id": message_id,
            "output_index": 0, "content_index": 0, "delta": word, "logprobs": []}),
        );
    }
    events.push(
        json!({"type": "response.output_text.done", "item_id": message_id,
        "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
    );
    events.push(
        json!({"type": "response.content_part.done", "item_id": message_id,
        "output_index": 0, "content_index": 0,
        "part": {"type": "output_text", "text": text, "annotations": []}}),
    );
    events.push(
        json!({"type": "response.output_item.done", "output_index": 0,
        "item": message("completed", text)}),
    );
    events.push(json!({"type": "response.completed", "response": done}));
    Answer::Events(
        events
            .into_iter()
            .enumerate()
            .map(|(i, mut event)| {
                event["sequence_number"] = json!(i);
                event.to_string()
            })
            .collect(),
    )
}
