//! A chat completion as a Responses API response object.

use serde_json::{Map, Value, json};

use super::{call_item, custom_tool_names, ending, item_id, response_object, responses_usage};
use crate::now_secs;

/// Translates a chat completion into a response object with id `id`, reported as `model`;
/// `request` is the client's Responses request (its settings are echoed). Never fails: missing
/// fields read as empty.
pub fn chat_response_to_responses(
    chat: &Value,
    request: &Map<String, Value>,
    model: &str,
    id: &str,
) -> Value {
    let choice = chat
        .get("choices")
        .and_then(|c| c.get(0))
        .unwrap_or(&Value::Null);
    let message = choice.get("message").unwrap_or(&Value::Null);
    let (status, incomplete) = ending(choice.get("finish_reason").and_then(Value::as_str));
    let base = chat.get("id").and_then(Value::as_str).unwrap_or(id);
    let text = |name: &str| {
        message
            .get(name)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    };
    let mut output = Vec::new();
    if let Some(reasoning) = text("reasoning_content") {
        output.push(json!({"type": "reasoning", "id": item_id("rs", base),
            "summary": [{"type": "summary_text", "text": reasoning}]}));
    }
    let mut content = Vec::new();
    if let Some(answer) = text("content") {
        content.push(
            json!({"type": "output_text", "text": answer, "annotations": [], "logprobs": []}),
        );
    }
    if let Some(refusal) = text("refusal") {
        content.push(json!({"type": "refusal", "refusal": refusal}));
    }
    if !content.is_empty() {
        let item_status = if status == "completed" {
            "completed"
        } else {
            "incomplete"
        };
        output.push(
            json!({"type": "message", "id": item_id("msg", base), "status": item_status,
            "role": "assistant", "content": content}),
        );
    }
    let custom = custom_tool_names(request);
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let function = call.get("function").unwrap_or(&Value::Null);
        let field = |v: &Value, name: &str| {
            v.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let name = field(function, "name");
        let is_custom = custom.contains(&name);
        output.push(call_item(
            &field(call, "id"),
            &name,
            &field(function, "arguments"),
            is_custom,
            "completed",
        ));
    }
    let created_at = chat
        .get("created")
        .and_then(Value::as_u64)
        .unwrap_or_else(now_secs);
    let mut object = response_object(request, id, model, created_at, status);
    object.insert("incomplete_details".into(), incomplete);
    object.insert("output".into(), Value::Array(output));
    object.insert(
        "usage".into(),
        responses_usage(chat.get("usage").unwrap_or(&Value::Null)),
    );
    Value::Object(object)
}
