//! Every streamed-answer translation that reads text (Anthropic SSE, OpenAI legacy completions,
//! Gemini SSE, Ollama JSON lines, and Anthropic-native clients' SSE), fed the upstream's bytes
//! in chunks cut anywhere: no panic, and only whole frames go to the client, each a `data:` of
//! JSON or `[DONE]`; once the upstream body ends the stream is closed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaultgate_providers::anthropic::MessagesStreamTranslator;
use vaultgate_providers::ollama::Route;
use vaultgate_providers::{Native, TranslateStream};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, stream)) = data.split_first() else {
        return;
    };
    let kind = knobs % 8;
    let make = || -> Box<dyn TranslateStream> {
        match kind {
            0 => Native::Anthropic.stream("public/model"),
            1 => Native::TextCompletionChat.stream("public/model"),
            2 => Native::Ollama(Route::Chat).stream("public/model"),
            3 => Native::Ollama(Route::GenerateFromChat).stream("public/model"),
            4 => Native::Ollama(Route::Generate).stream("public/model"),
            5 => Native::Gemini.stream("public/model"),
            6 => Box::new(MessagesStreamTranslator::new("public/model")),
            _ => Native::Ollama(Route::Embed).stream("public/model"),
        }
    };
    let size = vaultgate_fuzz::chunk_size(knobs >> 3, stream);
    vaultgate_fuzz::run_stream(make, stream, size);
});
