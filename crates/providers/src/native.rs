//! Requests to deployments whose API is not OpenAI's: which translation a request needs, the
//! upstream request it becomes, and how the answer, the stream and the errors come back in
//! OpenAI's shapes. Deployments that speak OpenAI's API get none of this (their bytes pass).

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use vaultgate_config::Provider;
use vaultgate_core::{Error, Result};

use crate::deployment::Target;
use crate::ollama::{self, Route};
use crate::sse::TranslateStream;
use crate::{
    ChatBody, Deployment, Endpoint, Resolved, TranslateOptions, UpstreamRequest, anthropic,
    bedrock, build_anthropic_request, gemini, post_json, text_completion, vertex,
};

/// The translation a request to a native API goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    /// Chat completions over Anthropic's Messages API.
    Anthropic,
    /// Chat completions over OpenAI's legacy `/completions`.
    TextCompletionChat,
    /// Ollama's native API, on one of its routes.
    Ollama(Route),
    /// Chat completions over Bedrock's Converse (SigV4-signed, event-stream answers).
    Bedrock,
    /// Gemini's `generateContent` (or `streamGenerateContent`).
    Gemini,
    /// Gemini's `batchEmbedContents`.
    GeminiEmbed,
    /// Vertex AI's `:predict` for text embeddings.
    VertexEmbed,
}

/// A translated request, and how to read its answer.
pub struct NativeRequest {
    pub request: UpstreamRequest,
    pub native: Native,
}

/// The translation `endpoint` needs on `deployment`; `None` when its bytes can pass as they
/// are (OpenAI-compatible APIs).
fn translation(deployment: &Deployment, endpoint: Endpoint) -> Result<Option<Native>> {
    Ok(Some(match (deployment.provider, endpoint) {
        (Provider::OpenAi | Provider::Azure, _)
        | (Provider::TextCompletionOpenAi, Endpoint::Completions | Endpoint::Embeddings) => {
            return Ok(None);
        }
        (Provider::Anthropic, Endpoint::ChatCompletions) => Native::Anthropic,
        (Provider::Bedrock, Endpoint::ChatCompletions) => Native::Bedrock,
        (Provider::TextCompletionOpenAi, Endpoint::ChatCompletions) => Native::TextCompletionChat,
        (Provider::OllamaChat, Endpoint::ChatCompletions) => Native::Ollama(Route::Chat),
        (Provider::Ollama, Endpoint::ChatCompletions) => Native::Ollama(Route::GenerateFromChat),
        (Provider::Ollama | Provider::OllamaChat, Endpoint::Completions) => {
            Native::Ollama(Route::Generate)
        }
        (Provider::Ollama | Provider::OllamaChat, Endpoint::Embeddings) => {
            Native::Ollama(Route::Embed)
        }
        (Provider::Gemini, Endpoint::ChatCompletions) => Native::Gemini,
        (Provider::Gemini, Endpoint::Embeddings) => Native::GeminiEmbed,
        (Provider::VertexAi, Endpoint::ChatCompletions) => {
            match vertex::Partner::of(&deployment.upstream_model) {
                vertex::Partner::Anthropic => Native::Anthropic,
                vertex::Partner::Google => Native::Gemini,
                // Their bytes pass in OpenAI's shape (see `crate::build_request`).
                vertex::Partner::RawPredictOpenAi(_) | vertex::Partner::OpenApi => return Ok(None),
            }
        }
        (Provider::VertexAi, Endpoint::Embeddings) => Native::VertexEmbed,
        (
            provider @ (Provider::Anthropic
            | Provider::Bedrock
            | Provider::Gemini
            | Provider::VertexAi),
            other,
        ) => {
            return Err(Error::bad_request(format!(
                "model {} ({}) does not support /{}",
                deployment.model_name,
                provider.as_str(),
                other.path()
            )));
        }
    }))
}

/// The upstream request for a client's OpenAI-shaped `body`, translated for the deployment's
/// native API; `None` when the deployment speaks OpenAI's API (see [`crate::build_request`]).
/// `want_usage` asks a stream for its token counts where the API needs asking.
pub fn native_request(
    deployment: &Deployment,
    resolved: &Resolved<'_>,
    endpoint: Endpoint,
    body: &ChatBody,
    opts: &TranslateOptions,
    want_usage: bool,
) -> Result<Option<NativeRequest>> {
    let Some(native) = translation(deployment, endpoint)? else {
        return Ok(None);
    };
    let fields = body.fields()?;
    let model = &deployment.upstream_model;
    let vertex = deployment.provider == Provider::VertexAi;
    let request = match native {
        Native::Anthropic if vertex => {
            let json = anthropic::chat_to_messages_request(fields, model, opts)?;
            let method = if body.stream {
                vertex::Method::StreamRawPredict
            } else {
                vertex::Method::RawPredict
            };
            let uri = vertex::url(deployment, resolved, method)?;
            post_json(
                deployment,
                resolved,
                uri,
                to_bytes(&vertex::anthropic_body(json))?,
            )?
        }
        Native::Anthropic => {
            let json = anthropic::chat_to_messages_request(fields, model, opts)?;
            build_anthropic_request(deployment, resolved, to_bytes(&json)?, &[])?
        }
        Native::TextCompletionChat => {
            let mut json = text_completion::chat_to_completion(fields, model, opts)?;
            if body.stream && want_usage {
                json["stream_options"]["include_usage"] = Value::Bool(true);
            }
            let base = deployment.base(resolved)?;
            let uri = deployment.url(Target::OpenAi(Endpoint::Completions), base, || {
                Endpoint::Completions.path().to_owned()
            })?;
            post_json(deployment, resolved, uri, to_bytes(&json)?)?
        }
        Native::Bedrock => {
            let options = bedrock::ConverseOptions {
                default_max_tokens: deployment.max_tokens,
                drop_params: opts.drop_params,
            };
            let json = bedrock::chat_to_converse_request(fields, &options)?;
            let converse = serde_json::to_vec(&json).map_err(|e| Error::Internal(e.to_string()))?;
            bedrock::build_request(
                deployment,
                resolved,
                converse,
                body.stream,
                SystemTime::now(),
            )?
        }
        Native::Ollama(route) => {
            let json = ollama::request(route, fields, model, opts)?;
            let base = deployment.base(resolved)?;
            let uri = deployment.url(Target::Native(route.path()), base, || {
                route.path().to_owned()
            })?;
            post_json(deployment, resolved, uri, to_bytes(&json)?)?
        }
        Native::Gemini => {
            let json = gemini::chat_request(fields, opts)?;
            let uri = if vertex {
                let method = if body.stream {
                    vertex::Method::StreamGenerate
                } else {
                    vertex::Method::Generate
                };
                vertex::url(deployment, resolved, method)?
            } else {
                gemini_url(deployment, resolved, body.stream, "generate")?
            };
            post_json(deployment, resolved, uri, to_bytes(&json)?)?
        }
        Native::VertexEmbed => {
            let json = vertex::predict_request(fields)?;
            let uri = vertex::url(deployment, resolved, vertex::Method::Predict)?;
            post_json(deployment, resolved, uri, to_bytes(&json)?)?
        }
        Native::GeminiEmbed => {
            let json = gemini::embed_request(fields, &format!("models/{model}"))?;
            let uri = gemini_url(deployment, resolved, false, "embed")?;
            post_json(deployment, resolved, uri, to_bytes(&json)?)?
        }
    };
    Ok(Some(NativeRequest { request, native }))
}

/// `{base}/v1beta/models/{model}:{method}` (no version added when the base names one);
/// streams ask for SSE (`alt=sse`).
fn gemini_url(
    deployment: &Deployment,
    resolved: &Resolved<'_>,
    stream: bool,
    route: &'static str,
) -> Result<http::Uri> {
    let (target, method) = match (route, stream) {
        ("embed", _) => ("embed", "batchEmbedContents"),
        (_, true) => ("stream", "streamGenerateContent?alt=sse"),
        _ => ("generate", "generateContent"),
    };
    let base = deployment.base(resolved)?;
    deployment.url(Target::Native(target), base, || {
        let version = if base.ends_with("/v1beta") || base.ends_with("/v1") {
            ""
        } else {
            "v1beta/"
        };
        format!("{version}models/{}:{method}", deployment.upstream_model)
    })
}

fn to_bytes(json: &Value) -> Result<Bytes> {
    serde_json::to_vec(json)
        .map(Bytes::from)
        .map_err(|e| Error::Internal(e.to_string()))
}

impl Native {
    /// The upstream's error answer in OpenAI's shape, with its status.
    pub fn map_error(self, status: StatusCode, headers: &HeaderMap, body: Bytes) -> Error {
        match self {
            Self::Anthropic => anthropic::map_error(status, &body),
            Self::Ollama(_) => ollama::map_error(status, &body),
            Self::Bedrock => bedrock::map_error(status, headers, &body),
            Self::Gemini | Self::GeminiEmbed | Self::VertexEmbed => {
                gemini::map_error(status, &body)
            }
            // OpenAI's own errors are already in the client's shape.
            Self::TextCompletionChat => Error::Upstream {
                status,
                body,
                content_type: headers.get(http::header::CONTENT_TYPE).cloned(),
            },
        }
    }

    /// A complete 2xx answer in OpenAI's shape, reported as `public_model`.
    pub fn answer(self, answer: &Value, public_model: &str) -> Value {
        match self {
            Self::Anthropic => anthropic::messages_response_to_chat(answer, public_model),
            Self::Bedrock => bedrock::converse_response_to_chat(answer, public_model),
            Self::TextCompletionChat => text_completion::completion_to_chat(answer, public_model),
            Self::Ollama(Route::Chat) => ollama::chat_answer(answer, public_model),
            Self::Ollama(Route::GenerateFromChat) => {
                ollama::generate_chat_answer(answer, public_model)
            }
            Self::Ollama(Route::Generate) => ollama::completion_answer(answer, public_model),
            Self::Ollama(Route::Embed) => ollama::embed_answer(answer, public_model),
            Self::Gemini => gemini::generate_answer(answer, public_model),
            Self::GeminiEmbed => gemini::embed_answer(answer, public_model),
            Self::VertexEmbed => vertex::predict_answer(answer, public_model),
        }
    }

    /// The translator of a streamed answer into OpenAI chunks. It always ends with the usage
    /// chunk (spend tracking reads it; the server hides it from clients that did not ask).
    pub fn stream(self, public_model: &str) -> Box<dyn TranslateStream> {
        match self {
            Self::Anthropic => Box::new(anthropic::StreamTranslator::new(public_model, true)),
            Self::Bedrock => Box::new(bedrock::StreamTranslator::new(public_model, true)),
            Self::TextCompletionChat => Box::new(text_completion::CompletionChatStream::new(
                public_model,
                true,
            )),
            Self::Ollama(route) => Box::new(ollama::OllamaStream::new(route, public_model, true)),
            Self::Gemini | Self::GeminiEmbed | Self::VertexEmbed => {
                Box::new(gemini::GeminiStream::new(public_model, true))
            }
        }
    }

    /// Anthropic may answer 200 and open the stream with an `error` event.
    pub fn opens_streams_with_errors(self) -> bool {
        self == Self::Anthropic
    }
}
