use serde::{Deserialize, Serialize};

/// The upstream API family a deployment speaks, from the prefix of `litellm_params.model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp) via `api_base`.
    OpenAi,
    Azure,
    Anthropic,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Azure => "azure",
            Self::Anthropic => "anthropic",
        }
    }
}

/// Prefixes we accept, with the provider they mean. The OpenAI-compatible aliases are LiteLLM's.
const PREFIXES: &[(&str, Provider)] = &[
    ("openai", Provider::OpenAi),
    ("hosted_vllm", Provider::OpenAi),
    ("custom_openai", Provider::OpenAi),
    ("openai_like", Provider::OpenAi),
    ("azure", Provider::Azure),
    ("anthropic", Provider::Anthropic),
];

/// Splits `provider/name` into the provider and the name the upstream expects.
/// A bare name is OpenAI's (or Anthropic's for `claude-*`), as LiteLLM infers for known models.
pub fn parse_model(model: &str) -> Result<(Provider, String), String> {
    let model = model.trim();
    if model.is_empty() {
        return Err("is empty".into());
    }
    let Some((prefix, name)) = model.split_once('/') else {
        let provider = if model.starts_with("claude") {
            Provider::Anthropic
        } else {
            Provider::OpenAi
        };
        return Ok((provider, model.to_owned()));
    };
    let provider = PREFIXES
        .iter()
        .find(|(known, _)| *known == prefix)
        .map(|(_, provider)| *provider)
        .ok_or_else(|| {
            let known: Vec<&str> = PREFIXES.iter().map(|(p, _)| *p).collect();
            format!(
                "unknown provider prefix '{prefix}/' in '{model}'; supported: {}",
                known.join(", ")
            )
        })?;
    if name.is_empty() {
        return Err(format!(
            "'{model}' has no model name after the provider prefix"
        ));
    }
    Ok((provider, name.to_owned()))
}
