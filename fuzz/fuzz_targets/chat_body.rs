//! The request body splice: a client's body kept as its bytes, with `model` and
//! `stream_options` spliced in and LiteLLM's own params cut out. Whatever it accepts, what it
//! sends upstream must be JSON carrying every member the client sent, unchanged.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use vaultgate_core::Error;
use vaultgate_providers::{ChatBody, is_proxy_param};

const MODEL: &str = "up\"stream/\u{e9}";

fuzz_target!(|data: &[u8]| {
    let Ok(body) = ChatBody::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    // A body the borrowed scan accepts may still hold what a full parse refuses (a number past
    // f64): the translations answer 400 then. Only bodies that parse whole are compared.
    let fields = body.fields().ok().cloned();
    for include_usage in [false, true] {
        let out = body.upstream_body(MODEL, include_usage);
        // Syntax first: valid JSON whatever its numbers.
        if let Err(error) = serde_json::from_slice::<IgnoredAny>(&out) {
            panic!("spliced body is not JSON ({error}): {:?}", lossy(&out));
        }
        let Ok(spliced) = serde_json::from_slice::<Map<String, Value>>(&out) else {
            assert!(
                fields.is_none(),
                "spliced body lost its shape: {:?}",
                lossy(&out)
            );
            continue;
        };
        assert_eq!(spliced.get("model"), Some(&Value::from(MODEL)));
        let Some(fields) = &fields else { continue };
        for (name, value) in fields {
            let spliced_value = spliced.get(name);
            if name == "model" {
                continue;
            }
            if name == "stream_options" && include_usage && value.is_object() {
                let mut expected = value.clone();
                expected["include_usage"] = Value::Bool(true);
                assert_eq!(spliced_value, Some(&expected), "stream_options");
                continue;
            }
            assert_eq!(spliced_value, Some(value), "member {name:?} changed");
        }
        if include_usage && !fields.contains_key("stream_options") {
            assert_eq!(
                spliced
                    .get("stream_options")
                    .and_then(|o| o.get("include_usage")),
                Some(&Value::Bool(true))
            );
        }
        let extra = usize::from(include_usage && !fields.contains_key("stream_options"));
        let model = usize::from(!fields.contains_key("model"));
        assert_eq!(
            spliced.len(),
            fields.len() + extra + model,
            "members added or lost"
        );
    }
    // Dropping members (additional_drop_params) keeps the others as they were.
    let drop = |name: &str| name.len() % 2 == 1;
    match body.without(drop) {
        Ok(Some(rest)) => {
            if let (Some(fields), Ok(rest_fields)) = (&fields, rest.fields()) {
                let expected: Map<String, Value> = fields
                    .iter()
                    .filter(|(name, _)| *name == "model" || !drop(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                assert_eq!(rest_fields, &expected);
            }
            assert_eq!(rest.model, body.model);
        }
        Ok(None) => {}
        Err(error) => assert_not_internal(&error),
    }
    let had_params = body.has_proxy_params();
    match body.take_proxy_params(&["metadata"]) {
        Ok((rest, params)) => {
            assert!(params.keys().all(|name| is_proxy_param(name)));
            if had_params && let Ok(rest_fields) = rest.fields() {
                assert!(
                    rest_fields
                        .keys()
                        .all(|name| name == "metadata" || !is_proxy_param(name)),
                    "a LiteLLM param would reach the upstream"
                );
            }
        }
        Err(error) => assert_not_internal(&error),
    }
});

/// An `Internal` error means the splice lost track of the bytes it scanned.
fn assert_not_internal(error: &Error) {
    assert!(
        !matches!(error, Error::Internal(_)),
        "internal error: {error}"
    );
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
