//! A request's input as the items OpenAI lists for a stored response (`…/input_items`), and a
//! follow-up's input with the earlier turns in front (what `previous_response_id` means).

use serde_json::{Map, Value, json};

/// The request's `input` as a list of items, each with an `id`: a string is one user message,
/// a message given in the short form (`{"role", "content": "text"}`) gets OpenAI's full form.
/// Other items are kept as sent (an `id` added when missing).
pub fn input_items(request: &Map<String, Value>) -> Vec<Value> {
    let items: Vec<Value> = match request.get("input") {
        Some(Value::String(text)) => vec![json!({"role": "user", "content": text})],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    items.into_iter().map(full_item).collect()
}

fn full_item(item: Value) -> Value {
    let Value::Object(mut item) = item else {
        return item;
    };
    let is_message = match item.get("type").and_then(Value::as_str) {
        Some("message") => true,
        None => item.contains_key("role"),
        Some(_) => false,
    };
    if is_message {
        item.insert("type".into(), json!("message"));
        let part = if item.get("role").and_then(Value::as_str) == Some("assistant") {
            "output_text"
        } else {
            "input_text"
        };
        if let Some(Value::String(text)) = item.get("content") {
            let content = json!([{"type": part, "text": text}]);
            item.insert("content".into(), content);
        }
        item.entry("status").or_insert_with(|| json!("completed"));
    }
    if !item.get("id").is_some_and(Value::is_string) {
        let prefix = if is_message { "msg" } else { "item" };
        let id = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        item.insert("id".into(), json!(id));
    }
    Value::Object(item)
}

/// `request` continuing the conversation `history` (the earlier turns' input and output items,
/// oldest first): its `input` becomes the history followed by its own input (as sent), and
/// `previous_response_id` is gone, so the request stands on its own.
pub fn continued(request: &Map<String, Value>, history: Vec<Value>) -> Map<String, Value> {
    let mut out = request.clone();
    let mut input = history;
    match request.get("input") {
        Some(Value::String(text)) => input.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => input.extend(items.iter().cloned()),
        _ => {}
    }
    out.insert("input".into(), Value::Array(input));
    out.remove("previous_response_id");
    out
}

/// A stored conversation as OpenAI takes it back as input: without the ids and statuses the
/// gateway gave its items (OpenAI knows none of them), and without reasoning items (OpenAI
/// wants its own, encrypted).
pub fn for_openai(history: Vec<Value>) -> Vec<Value> {
    history
        .into_iter()
        .filter(|item| item.get("type").and_then(Value::as_str) != Some("reasoning"))
        .map(|mut item| {
            if let Some(item) = item.as_object_mut() {
                item.remove("id");
                item.remove("status");
            }
            item
        })
        .collect()
}

/// The items a follow-up of a stored response continues from: its history, its input items,
/// then its output.
pub fn conversation(history: Vec<Value>, input_items: Vec<Value>, response: &Value) -> Vec<Value> {
    let mut all = history;
    all.extend(input_items);
    if let Some(Value::Array(output)) = response.get("output") {
        all.extend(output.iter().cloned());
    }
    all
}
