//! What an upstream attempt produced, and the ways one is made without a call (mock answers)
//! or reshaped (a native answer translated, its stream fed through a translator).

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;
use vaultgate_core::Result;
use vaultgate_providers::{ChatBody, Deployment, Endpoint, TranslateStream, Usage, mock};
use vaultgate_router::{HoldsSlot, InFlight};

use crate::sse::ByteStream;

/// What one successful upstream attempt produced; `headers` are the upstream's own (none for
/// mock answers), passed on as LiteLLM's `llm_provider-*`.
pub enum Reply {
    Full {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
        headers: HeaderMap,
    },
    Stream {
        status: StatusCode,
        body: ByteStream,
        headers: HeaderMap,
    },
}

/// A stream keeps its deployment's in-flight count raised for as long as it is read.
impl HoldsSlot for Reply {
    fn hold(&mut self, slot: InFlight) {
        if let Reply::Stream { body, .. } = self {
            let inner = std::mem::replace(body, Box::pin(futures_util::stream::empty()));
            *body = Box::pin(inner.map(move |item| {
                let _held = &slot;
                item
            }));
        }
    }
}

/// A chat completion's reply answered in another API's shape (Anthropic's Messages, the
/// Responses API): a whole answer through `answer`, a stream through the translator `stream`
/// makes.
pub(crate) fn reshape_chat_reply(
    reply: Reply,
    answer: impl FnOnce(&Value) -> Value,
    stream: impl FnOnce() -> Box<dyn TranslateStream>,
) -> Result<Reply> {
    Ok(match reply {
        Reply::Full {
            status,
            body,
            headers,
            ..
        } => {
            let json = crate::upstream::parse_answer(&body, "chat completion")?;
            json_reply(status, &answer(&json), headers)
        }
        Reply::Stream {
            status,
            body,
            headers,
        } => Reply::Stream {
            status,
            headers,
            body: translate_stream(body, stream()),
        },
    })
}

pub(crate) fn json_reply(status: StatusCode, json: &Value, headers: HeaderMap) -> Reply {
    Reply::Full {
        status,
        content_type: Some(HeaderValue::from_static("application/json")),
        body: Bytes::from(json.to_string()),
        headers,
    }
}

/// Feeds an upstream stream through `translator`. A broken upstream ends the translation with
/// the translator's own error frame (the client sees a well-formed, visibly truncated stream);
/// once the translator is done, the upstream is dropped (which cancels it).
pub(crate) fn translate_stream(
    upstream: ByteStream,
    translator: Box<dyn TranslateStream>,
) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        Some((upstream, translator)),
        |state| async move {
            let (mut upstream, mut translator) = state?;
            loop {
                if translator.is_done() {
                    return None;
                }
                let frames = match upstream.next().await {
                    Some(Ok(chunk)) => translator.push(&chunk),
                    end => {
                        if let Some(Err(error)) = end {
                            tracing::warn!(%error, "upstream stream broke off");
                        }
                        let frames = translator.finish();
                        return (!frames.is_empty()).then(|| (Ok(concat(frames)), None));
                    }
                };
                if !frames.is_empty() {
                    return Some((Ok(concat(frames)), Some((upstream, translator))));
                }
            }
        },
    ))
}

fn concat(frames: Vec<Bytes>) -> Bytes {
    if frames.len() == 1 {
        return frames.into_iter().next().unwrap_or_default();
    }
    let mut out = BytesMut::new();
    for frame in frames {
        out.extend_from_slice(&frame);
    }
    out.freeze()
}

pub(crate) fn mock_reply(
    endpoint: Endpoint,
    deployment: &Deployment,
    request: &ChatBody,
    text: &str,
) -> Result<Reply> {
    let model = &deployment.upstream_model;
    Ok(if request.stream {
        let (frames, _usage): (Vec<Bytes>, Usage) =
            mock::stream(endpoint, model, text, request.fields()?, true);
        let body: ByteStream = Box::pin(futures_util::stream::iter(frames.into_iter().map(Ok)));
        Reply::Stream {
            status: StatusCode::OK,
            body,
            headers: HeaderMap::new(),
        }
    } else {
        let (json, _usage) = mock::response(endpoint, model, text, request.fields()?);
        Reply::Full {
            status: StatusCode::OK,
            content_type: None,
            body: Bytes::from(json.to_string()),
            headers: HeaderMap::new(),
        }
    })
}
