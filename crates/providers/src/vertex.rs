//! Google Cloud's Vertex AI (`vertex_ai/`): Gemini models through the Gemini translation under
//! `…/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`, Anthropic's
//! Claude models (`vertex_ai/claude-…`) through the Anthropic translation under
//! `…/publishers/anthropic/models/{m}:rawPredict`, text embeddings through `:predict`, and the
//! partner models whose API is OpenAI's: Model Garden's MaaS models (`vertex_ai/meta/…`,
//! `deepseek-ai/…`, `qwen/…`, `openai/…`) through `…/endpoints/openapi/chat/completions`, and
//! Mistral's and AI21's through their publishers' `:rawPredict` (see [`Partner`]).
//! Requests carry an OAuth access token as a Bearer key: minted from a service account by
//! [`auth`], from gcloud's user credentials or the metadata server by [`adc`] (the caller
//! sends the token request and caches the answer), or a ready one.

pub mod adc;
pub mod auth;
mod embed;

use serde_json::Value;
use vaultgate_core::{Error, Result};

pub use embed::{predict_answer, predict_request};

use crate::deployment::{Target, bad_base, parse_url};
use crate::{Deployment, Resolved};

/// LiteLLM's location when none is configured.
pub const DEFAULT_LOCATION: &str = "us-central1";
/// The `anthropic_version` Claude on Vertex takes in the body (it has no header for it).
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The Vertex settings of a deployment resolved for one request.
#[derive(Debug, Default, Clone, Copy)]
pub struct ResolvedVertex<'a> {
    pub project: Option<&'a str>,
    pub location: Option<&'a str>,
    /// `vertex_credentials` as resolved (a key, its path, or a token); never logged.
    pub credentials: Option<&'a str>,
}

/// What a Vertex request calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Generate,
    StreamGenerate,
    RawPredict,
    StreamRawPredict,
    Predict,
    /// Model Garden's OpenAI-compatible chat endpoint (the model is named in the body).
    OpenApiChat,
}

impl Method {
    fn path(self) -> &'static str {
        match self {
            Self::Generate => "generateContent",
            Self::StreamGenerate => "streamGenerateContent?alt=sse",
            Self::RawPredict => "rawPredict",
            Self::StreamRawPredict => "streamRawPredict",
            Self::Predict => "predict",
            Self::OpenApiChat => "chat/completions",
        }
    }

    fn target(self) -> &'static str {
        match self {
            Self::Generate => "vertex-generate",
            Self::StreamGenerate => "vertex-stream",
            Self::RawPredict => "vertex-raw",
            Self::StreamRawPredict => "vertex-raw-stream",
            Self::Predict => "vertex-predict",
            Self::OpenApiChat => "vertex-openapi",
        }
    }
}

/// Who publishes a Vertex model, which decides the API its chat requests speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partner {
    /// Google's Gemini models: the Gemini translation.
    Google,
    /// Anthropic's `claude-…` (`claude-3-5-sonnet-v2@20241022`): the Anthropic translation.
    Anthropic,
    /// Mistral's `mistral-…` and `codestral-…`, AI21's `jamba-…`: OpenAI's chat body, sent to
    /// `…/publishers/{publisher}/models/{model}:rawPredict` with the version (`@2407`) left out
    /// of the body's model.
    RawPredictOpenAi(&'static str),
    /// Model Garden's MaaS models, named with their publisher (`meta/llama-3.3-70b-instruct-maas`,
    /// `deepseek-ai/…`, `qwen/…`, `openai/gpt-oss-…`): OpenAI's chat API as it is.
    OpenApi,
}

impl Partner {
    pub fn of(model: &str) -> Self {
        if model.starts_with("claude") {
            Self::Anthropic
        } else if model.starts_with("mistral") || model.starts_with("codestral") {
            Self::RawPredictOpenAi("mistralai")
        } else if model.starts_with("jamba") {
            Self::RawPredictOpenAi("ai21")
        } else if model.contains('/') {
            Self::OpenApi
        } else {
            Self::Google
        }
    }

    /// Whether chat requests pass in OpenAI's shape (no translation).
    pub fn speaks_openai(self) -> bool {
        matches!(self, Self::RawPredictOpenAi(_) | Self::OpenApi)
    }

    /// The model named in an OpenAI-shaped body: Mistral and AI21 take it without its version.
    pub fn body_model(self, model: &str) -> &str {
        match self {
            Self::RawPredictOpenAi(_) => model.split('@').next().unwrap_or(model),
            _ => model,
        }
    }

    fn publisher(self) -> &'static str {
        match self {
            Self::Google | Self::OpenApi => "google",
            Self::Anthropic => "anthropic",
            Self::RawPredictOpenAi(publisher) => publisher,
        }
    }
}

/// The method an OpenAI-shaped chat request to a partner model calls.
pub fn openai_method(partner: Partner, stream: bool) -> Method {
    match (partner, stream) {
        (Partner::OpenApi, _) => Method::OpenApiChat,
        (_, true) => Method::StreamRawPredict,
        (_, false) => Method::RawPredict,
    }
}

/// `https://{location}-aiplatform.googleapis.com` (`https://aiplatform.googleapis.com` for the
/// `global` location).
pub fn default_host(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com".to_owned()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}

/// The location of a request: configured, else LiteLLM's default.
pub fn location<'a>(resolved: &ResolvedVertex<'a>) -> &'a str {
    resolved
        .location
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .unwrap_or(DEFAULT_LOCATION)
}

/// `{host}/v1/projects/{p}/locations/{l}/publishers/{publisher}/models/{m}:{method}` (or
/// `…/endpoints/openapi/chat/completions`); an `api_base` takes the place of the host (a proxy,
/// a private endpoint, a test double).
pub fn url(deployment: &Deployment, resolved: &Resolved<'_>, method: Method) -> Result<http::Uri> {
    let vertex = &resolved.vertex;
    let project = vertex
        .project
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            Error::Config(format!(
                "deployment {}: no Vertex project: set litellm_params.vertex_project (or \
                 VERTEXAI_PROJECT), or use a service-account key that names its project_id",
                deployment.id
            ))
        })?;
    let location = location(vertex);
    let checked = |part: &str, what: &str| {
        if part.is_empty() || part.contains(['/', '?', '#', ':']) {
            Err(Error::Config(format!(
                "deployment {}: {what} '{part}' is not a valid Vertex name",
                deployment.id
            )))
        } else {
            Ok(())
        }
    };
    checked(project, "vertex_project")?;
    checked(location, "vertex_location")?;
    // The cache keys on everything the URL is made of.
    let key = format!(
        "{}\n{project}\n{location}",
        resolved.api_base.unwrap_or_default()
    );
    deployment
        .urls
        .get(Target::Native(method.target()), &key, None, || {
            let host = resolved.api_base.map_or_else(
                || default_host(location),
                |base| base.trim_end_matches('/').to_owned(),
            );
            let model = &deployment.upstream_model;
            let resource = if method == Method::OpenApiChat {
                format!("endpoints/openapi/{}", method.path())
            } else {
                let publisher = match method {
                    Method::RawPredict | Method::StreamRawPredict => Partner::of(model).publisher(),
                    _ => "google",
                };
                format!("publishers/{publisher}/models/{model}:{}", method.path())
            };
            parse_url(&format!(
                "{host}/v1/projects/{project}/locations/{location}/{resource}"
            ))
        })
        .ok_or_else(|| bad_base(deployment))
}

/// An Anthropic Messages body as Claude on Vertex takes it: the model is in the URL, the API
/// version in the body.
pub fn anthropic_body(mut messages: Value) -> Value {
    if let Some(body) = messages.as_object_mut() {
        body.remove("model");
        body.insert(
            "anthropic_version".into(),
            Value::String(ANTHROPIC_VERSION.to_owned()),
        );
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_follow_the_location() {
        assert_eq!(
            default_host("europe-west4"),
            "https://europe-west4-aiplatform.googleapis.com"
        );
        assert_eq!(default_host("global"), "https://aiplatform.googleapis.com");
        assert_eq!(location(&ResolvedVertex::default()), DEFAULT_LOCATION);
    }

    #[test]
    fn partners_are_told_apart_by_the_model_name() {
        assert_eq!(Partner::of("gemini-2.5-flash"), Partner::Google);
        assert_eq!(
            Partner::of("claude-sonnet-4-5@20250929"),
            Partner::Anthropic
        );
        assert_eq!(
            Partner::of("mistral-large@2407"),
            Partner::RawPredictOpenAi("mistralai")
        );
        assert_eq!(
            Partner::of("codestral@2405"),
            Partner::RawPredictOpenAi("mistralai")
        );
        assert_eq!(
            Partner::of("jamba-1.5-large@001"),
            Partner::RawPredictOpenAi("ai21")
        );
        assert_eq!(
            Partner::of("meta/llama-3.3-70b-instruct-maas"),
            Partner::OpenApi
        );
        assert_eq!(Partner::of("openai/gpt-oss-120b-maas"), Partner::OpenApi);
        assert!(!Partner::of("claude-x").speaks_openai());
        assert_eq!(
            Partner::of("mistral-large@2407").body_model("mistral-large@2407"),
            "mistral-large"
        );
        assert_eq!(
            Partner::OpenApi.body_model("meta/llama-4-scout-17b-16e-instruct-maas"),
            "meta/llama-4-scout-17b-16e-instruct-maas"
        );
    }

    #[test]
    fn claude_bodies_lose_the_model_and_name_the_vertex_version() {
        let body = anthropic_body(serde_json::json!({"model": "claude-x", "max_tokens": 5}));
        assert_eq!(
            body,
            serde_json::json!({"max_tokens": 5, "anthropic_version": "vertex-2023-10-16"})
        );
    }
}
