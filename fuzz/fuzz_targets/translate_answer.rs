//! Every provider answer → OpenAI translation, on any JSON an upstream (or something posing as
//! one) may answer with: complete 2xx answers, error answers of every status, Anthropic-native
//! clients' answers, STS's credentials answer and Google's token answer. None may panic.
#![no_main]

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vaultgate_providers::Native;
use vaultgate_providers::anthropic;
use vaultgate_providers::bedrock::sts;
use vaultgate_providers::ollama::Route;
use vaultgate_providers::vertex::auth;

const NATIVES: [Native; 10] = [
    Native::Anthropic,
    Native::TextCompletionChat,
    Native::Ollama(Route::Chat),
    Native::Ollama(Route::GenerateFromChat),
    Native::Ollama(Route::Generate),
    Native::Ollama(Route::Embed),
    Native::Bedrock,
    Native::Gemini,
    Native::GeminiEmbed,
    Native::VertexEmbed,
];

fuzz_target!(|data: &[u8]| {
    let Some((&status, body)) = data.split_first() else {
        return;
    };
    // Statuses an upstream answers errors with, picked by the first byte.
    let statuses = [
        400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504, 529, 200,
    ];
    let status = StatusCode::from_u16(statuses[usize::from(status) % statuses.len()])
        .unwrap_or(StatusCode::BAD_REQUEST);
    let bytes = Bytes::copy_from_slice(body);
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amzn-errortype",
        http::HeaderValue::from_static("ThrottlingException"),
    );
    for native in NATIVES {
        let _ = native.map_error(status, &HeaderMap::new(), bytes.clone());
        let _ = native.map_error(status, &headers, bytes.clone());
    }
    let _ = sts::parse_response(status, body);
    let _ = auth::parse_token_response(status, body, SystemTime::now());
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    for native in NATIVES {
        let chat = native.answer(&answer, "public/model");
        let _ = serde_json::to_vec(&chat).expect("translated answer serialises");
    }
    let _ = anthropic::chat_response_to_messages(&answer, "public/model");
});
