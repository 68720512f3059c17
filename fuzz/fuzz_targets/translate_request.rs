//! Every OpenAI → provider request translation (Anthropic, Bedrock Converse, Gemini, Ollama,
//! Vertex embeddings, legacy completions) and Anthropic's `/v1/messages` → OpenAI chat, on any
//! JSON object a client may send: each translates or refuses with a client error, and never
//! produces what cannot be sent as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use vaultgate_core::{Error, Result};
use vaultgate_providers::bedrock::{self, ConverseOptions};
use vaultgate_providers::ollama::{self, Route};
use vaultgate_providers::{TranslateOptions, anthropic, gemini, text_completion, vertex};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, json)) = data.split_first() else {
        return;
    };
    let Ok(body) = serde_json::from_slice::<Map<String, Value>>(json) else {
        return;
    };
    let drop_params = knobs & 1 == 1;
    let opts = TranslateOptions {
        default_max_tokens: u64::from(knobs >> 1) * 1000,
        drop_params,
    };
    let converse = ConverseOptions {
        default_max_tokens: (knobs & 2 == 2).then_some(u64::from(knobs)),
        drop_params,
    };
    let messages = anthropic::chat_to_messages_request(&body, "claude", &opts);
    if let Ok(messages) = &messages {
        sendable(&vertex::anthropic_body(messages.clone()));
    }
    check(messages);
    check(bedrock::chat_to_converse_request(&body, &converse));
    check(gemini::chat_request(&body, &opts));
    check(gemini::embed_request(&body, "models/embed"));
    for route in [
        Route::Chat,
        Route::GenerateFromChat,
        Route::Generate,
        Route::Embed,
    ] {
        check(ollama::request(route, &body, "llama", &opts));
    }
    check(vertex::predict_request(&body));
    check(text_completion::chat_to_completion(&body, "davinci", &opts));
    match anthropic::messages_to_chat_request(&body) {
        // What an Anthropic client sent goes on as an OpenAI body; to Anthropic itself too.
        Ok(chat) => {
            sendable(&Value::Object(chat.clone()));
            check(anthropic::chat_to_messages_request(&chat, "claude", &opts));
        }
        Err(error) => client_error(&error),
    }
});

fn check(translated: Result<Value>) {
    match translated {
        Ok(value) => sendable(&value),
        Err(error) => client_error(&error),
    }
}

/// A refusal is the client's fault (400 naming the param), never an internal failure.
fn client_error(error: &Error) {
    assert!(
        matches!(error, Error::BadRequest { .. }),
        "not a client error: {error:?}"
    );
}

/// The translated body serialises, and reads back as the same JSON.
fn sendable(value: &Value) {
    let bytes = serde_json::to_vec(value).expect("translated body serialises");
    let back: Value = serde_json::from_slice(&bytes).expect("translated body reads back");
    assert_eq!(&back, value);
}
