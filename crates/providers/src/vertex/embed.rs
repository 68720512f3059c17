//! OpenAI embeddings ↔ Vertex's `:predict` for text-embedding models.

use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};

/// `{"instances":[{"content":…}], "parameters":{"outputDimensionality":N}}` for an OpenAI
/// embeddings `body`.
pub fn predict_request(body: &Map<String, Value>) -> Result<Value> {
    let instances: Vec<Value> = match body.get("input") {
        Some(Value::String(text)) => vec![json!({"content": text})],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(|text| json!({"content": text}))
                    .ok_or_else(|| {
                        Error::bad_param("input", "vertex_ai embeds text: `input` must be strings")
                    })
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(Error::bad_param(
                "input",
                "`input` must be a string or a non-empty list of strings",
            ));
        }
    };
    let mut out = json!({"instances": instances});
    if let Some(dimensions) = body.get("dimensions").filter(|d| !d.is_null()) {
        let dimensions = dimensions.as_u64().filter(|d| *d > 0).ok_or_else(|| {
            Error::bad_param("dimensions", "`dimensions` must be a positive integer")
        })?;
        out["parameters"] = json!({"outputDimensionality": dimensions});
    }
    Ok(out)
}

/// A `:predict` answer → an OpenAI embeddings list, with the token counts Vertex reports.
pub fn predict_answer(answer: &Value, public_model: &str) -> Value {
    let predictions = answer
        .get("predictions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut tokens = 0;
    let data: Vec<Value> = predictions
        .iter()
        .enumerate()
        .map(|(index, prediction)| {
            let embeddings = prediction.get("embeddings").unwrap_or(&Value::Null);
            tokens += embeddings
                .pointer("/statistics/token_count")
                .and_then(Value::as_f64)
                .unwrap_or(0.0) as u64;
            json!({"object": "embedding", "index": index,
                "embedding": embeddings.get("values").cloned().unwrap_or(json!([]))})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": public_model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_become_instances_and_predictions_come_back_with_usage() {
        let body = json!({"input": ["a", "b"], "dimensions": 3});
        let request = predict_request(body.as_object().unwrap_or(&Map::new())).unwrap_or_default();
        assert_eq!(
            request,
            json!({"instances": [{"content": "a"}, {"content": "b"}],
                "parameters": {"outputDimensionality": 3}})
        );
        let answer = json!({"predictions": [
            {"embeddings": {"values": [0.5], "statistics": {"token_count": 2.0, "truncated": false}}},
            {"embeddings": {"values": [0.25], "statistics": {"token_count": 3}}}]});
        let out = predict_answer(&answer, "embed");
        assert_eq!(out["data"][1]["embedding"], json!([0.25]));
        assert_eq!(out["data"][1]["index"], 1);
        assert_eq!(out["usage"]["prompt_tokens"], 5);
        assert_eq!(out["model"], "embed");
    }

    #[test]
    fn non_text_inputs_are_refused() {
        for input in [json!([1, 2]), json!([]), json!(null)] {
            let body = json!({ "input": input });
            let error = predict_request(body.as_object().unwrap_or(&Map::new()));
            assert!(error.is_err(), "{input}");
        }
    }
}
