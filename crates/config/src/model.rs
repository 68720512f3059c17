//! The provider prefixes of `litellm_params.model` (LiteLLM's names) and what each one means:
//! the API its requests speak, the default `api_base`, and the names of the secret references
//! tried when the deployment sets no `api_key` or `api_base` (LiteLLM reads the same names from
//! its environment; here they go through the secret manager, so they may live in Vault).

use serde::{Deserialize, Serialize};

/// The upstream API family a deployment speaks, from the prefix of `litellm_params.model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// OpenAI's API: OpenAI itself and every OpenAI-compatible host of the table.
    OpenAi,
    Azure,
    Anthropic,
    /// OpenAI's legacy `/completions`; chat requests are turned into a prompt.
    TextCompletionOpenAi,
    /// Ollama's native `/api/generate` (LiteLLM's `ollama/`): chat becomes a prompt.
    Ollama,
    /// Ollama's native `/api/chat` (LiteLLM's `ollama_chat/`).
    OllamaChat,
    /// Amazon Bedrock's Converse API, SigV4-signed.
    Bedrock,
    /// Google AI Studio's Gemini API (`generateContent`).
    Gemini,
    /// Google Cloud's Vertex AI: Gemini (and Anthropic's Claude) models under a project and a
    /// location, with an OAuth token from a service account.
    VertexAi,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Azure => "azure",
            Self::Anthropic => "anthropic",
            Self::TextCompletionOpenAi => "text-completion-openai",
            Self::Ollama => "ollama",
            Self::OllamaChat => "ollama_chat",
            Self::Bedrock => "bedrock",
            Self::Gemini => "gemini",
            Self::VertexAi => "vertex_ai",
        }
    }
}

/// One provider prefix and its defaults.
#[derive(Debug)]
pub struct ProviderSpec {
    /// The prefix before the `/` in `litellm_params.model`.
    pub prefix: &'static str,
    pub provider: Provider,
    /// The base URL used when the deployment sets no `api_base` and none of `base_env` is set;
    /// `None`: an `api_base` is required.
    pub default_base: Option<&'static str>,
    /// References tried in order for the key when the deployment sets no `api_key`.
    pub key_env: &'static [&'static str],
    /// References tried in order for the base URL when the deployment sets no `api_base`.
    pub base_env: &'static [&'static str],
    /// Whether the host needs a key (a missing one is worth a warning at start).
    pub key_required: bool,
    /// Rewrites the model name after the prefix into the one the host expects.
    pub model_name: Option<fn(&str) -> String>,
    /// The base must end in `/v1` (Mistral's API); one is appended when it does not.
    pub base_ends_in_v1: bool,
}

impl ProviderSpec {
    const fn new(prefix: &'static str, provider: Provider) -> Self {
        Self {
            prefix,
            provider,
            default_base: None,
            key_env: &[],
            base_env: &[],
            key_required: false,
            model_name: None,
            base_ends_in_v1: false,
        }
    }

    /// A hosted OpenAI-compatible API with a default base and a required key.
    const fn hosted(
        prefix: &'static str,
        base: &'static str,
        key_env: &'static [&'static str],
        base_env: &'static [&'static str],
    ) -> Self {
        Self {
            default_base: Some(base),
            key_env,
            base_env,
            key_required: true,
            ..Self::new(prefix, Provider::OpenAi)
        }
    }

    /// A self-hosted server whose key is optional.
    const fn local(
        prefix: &'static str,
        provider: Provider,
        base: Option<&'static str>,
        key_env: &'static [&'static str],
        base_env: &'static [&'static str],
    ) -> Self {
        Self {
            default_base: base,
            key_env,
            base_env,
            ..Self::new(prefix, provider)
        }
    }
}

/// Every prefix we accept, with LiteLLM's default bases and environment names.
/// Adding a provider that speaks an API we already translate is one line here.
pub static PROVIDERS: &[ProviderSpec] = &[
    ProviderSpec {
        base_env: &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
        ..ProviderSpec::hosted("openai", OPENAI_BASE, &["OPENAI_API_KEY"], &[])
    },
    ProviderSpec {
        key_env: &["AZURE_OPENAI_API_KEY", "AZURE_API_KEY"],
        base_env: &["AZURE_API_BASE"],
        key_required: true,
        ..ProviderSpec::new("azure", Provider::Azure)
    },
    ProviderSpec {
        default_base: Some("https://api.anthropic.com"),
        key_env: &["ANTHROPIC_API_KEY"],
        base_env: &["ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"],
        key_required: true,
        ..ProviderSpec::new("anthropic", Provider::Anthropic)
    },
    // The endpoint follows the region (`aws_region_name`); keys are the `aws_*` settings.
    ProviderSpec {
        model_name: Some(bedrock_model),
        ..ProviderSpec::new("bedrock", Provider::Bedrock)
    },
    ProviderSpec::hosted(
        "groq",
        "https://api.groq.com/openai/v1",
        &["GROQ_API_KEY"],
        &["GROQ_API_BASE"],
    ),
    ProviderSpec {
        base_ends_in_v1: true,
        ..ProviderSpec::hosted(
            "mistral",
            "https://api.mistral.ai/v1",
            &["MISTRAL_AZURE_API_KEY", "MISTRAL_API_KEY"],
            &["MISTRAL_AZURE_API_BASE", "MISTRAL_API_BASE"],
        )
    },
    ProviderSpec::hosted(
        "deepseek",
        "https://api.deepseek.com/beta",
        &["DEEPSEEK_API_KEY"],
        &["DEEPSEEK_API_BASE"],
    ),
    ProviderSpec::hosted(
        "together_ai",
        "https://api.together.xyz/v1",
        &[
            "TOGETHER_API_KEY",
            "TOGETHER_AI_API_KEY",
            "TOGETHERAI_API_KEY",
            "TOGETHER_AI_TOKEN",
        ],
        &["TOGETHER_AI_API_BASE"],
    ),
    ProviderSpec {
        model_name: Some(fireworks_model),
        ..ProviderSpec::hosted(
            "fireworks_ai",
            "https://api.fireworks.ai/inference/v1",
            &[
                "FIREWORKS_API_KEY",
                "FIREWORKS_AI_API_KEY",
                "FIREWORKSAI_API_KEY",
                "FIREWORKS_AI_TOKEN",
            ],
            &["FIREWORKS_API_BASE"],
        )
    },
    ProviderSpec::hosted(
        "openrouter",
        "https://openrouter.ai/api/v1",
        &["OPENROUTER_API_KEY", "OR_API_KEY"],
        &["OPENROUTER_API_BASE"],
    ),
    ProviderSpec::hosted(
        "perplexity",
        "https://api.perplexity.ai",
        &["PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"],
        &["PERPLEXITY_API_BASE"],
    ),
    ProviderSpec::hosted(
        "xai",
        "https://api.x.ai/v1",
        &["XAI_API_KEY"],
        &["XAI_API_BASE"],
    ),
    ProviderSpec::hosted(
        "cerebras",
        "https://api.cerebras.ai/v1",
        &["CEREBRAS_API_KEY"],
        &["CEREBRAS_API_BASE"],
    ),
    ProviderSpec::hosted(
        "deepinfra",
        "https://api.deepinfra.com/v1/openai",
        &["DEEPINFRA_API_KEY"],
        &["DEEPINFRA_API_BASE"],
    ),
    ProviderSpec::hosted(
        "nvidia_nim",
        "https://integrate.api.nvidia.com/v1",
        &["NVIDIA_NIM_API_KEY"],
        &["NVIDIA_NIM_API_BASE"],
    ),
    ProviderSpec::local(
        "hosted_vllm",
        Provider::OpenAi,
        None,
        &["HOSTED_VLLM_API_KEY"],
        &["HOSTED_VLLM_API_BASE"],
    ),
    // LiteLLM's `vllm/` runs the model in its own process; a gateway calls a vLLM server.
    ProviderSpec::local(
        "vllm",
        Provider::OpenAi,
        None,
        &["HOSTED_VLLM_API_KEY"],
        &["HOSTED_VLLM_API_BASE"],
    ),
    ProviderSpec::local(
        "ollama",
        Provider::Ollama,
        Some(OLLAMA_BASE),
        &["OLLAMA_API_KEY"],
        &["OLLAMA_API_BASE"],
    ),
    ProviderSpec::local(
        "ollama_chat",
        Provider::OllamaChat,
        Some(OLLAMA_BASE),
        &["OLLAMA_API_KEY"],
        &["OLLAMA_API_BASE"],
    ),
    ProviderSpec::local(
        "lm_studio",
        Provider::OpenAi,
        None,
        &["LM_STUDIO_API_KEY"],
        &["LM_STUDIO_API_BASE"],
    ),
    ProviderSpec::local(
        "llamafile",
        Provider::OpenAi,
        Some("http://127.0.0.1:8080/v1"),
        &["LLAMAFILE_API_KEY"],
        &["LLAMAFILE_API_BASE"],
    ),
    ProviderSpec {
        default_base: Some("https://generativelanguage.googleapis.com"),
        key_env: &["GOOGLE_API_KEY", "GEMINI_API_KEY"],
        base_env: &["GEMINI_API_BASE"],
        key_required: true,
        ..ProviderSpec::new("gemini", Provider::Gemini)
    },
    // The host follows `vertex_location`; the credentials are `vertex_credentials`.
    ProviderSpec::new("vertex_ai", Provider::VertexAi),
    ProviderSpec {
        provider: Provider::TextCompletionOpenAi,
        ..ProviderSpec::hosted(
            "text-completion-openai",
            OPENAI_BASE,
            &["OPENAI_API_KEY"],
            &["OPENAI_BASE_URL", "OPENAI_API_BASE"],
        )
    },
    ProviderSpec::local(
        "openai_like",
        Provider::OpenAi,
        None,
        &["OPENAI_LIKE_API_KEY"],
        &["OPENAI_LIKE_API_BASE"],
    ),
    ProviderSpec::local(
        "custom_openai",
        Provider::OpenAi,
        None,
        &["OPENAI_API_KEY"],
        &[],
    ),
];

const OPENAI_BASE: &str = "https://api.openai.com/v1";
const OLLAMA_BASE: &str = "http://localhost:11434";

/// Fireworks names serverless models `accounts/fireworks/models/<name>` (and its fast routers
/// `accounts/fireworks/routers/<name>-fast`); LiteLLM accepts the short name.
fn fireworks_model(name: &str) -> String {
    if name.starts_with("accounts/") || name.contains('#') {
        name.to_owned()
    } else if name.ends_with("-fast") {
        format!("accounts/fireworks/routers/{name}")
    } else {
        format!("accounts/fireworks/models/{name}")
    }
}

/// `bedrock/converse/…` names the API LiteLLM calls; `bedrock/invoke/…` is served by Converse
/// too (the same models, one translation).
fn bedrock_model(name: &str) -> String {
    name.strip_prefix("converse/")
        .or_else(|| name.strip_prefix("invoke/"))
        .unwrap_or(name)
        .to_owned()
}

/// Model vendors on Bedrock, whose ids (`anthropic.claude-…`) name Bedrock without a prefix.
const BEDROCK_VENDORS: &[&str] = &[
    "anthropic",
    "amazon",
    "meta",
    "mistral",
    "cohere",
    "ai21",
    "deepseek",
    "writer",
    "qwen",
];
/// Geographies of cross-region inference profiles (`us.anthropic.claude-…`).
const BEDROCK_GEOGRAPHIES: &[&str] = &["us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"];

/// A Bedrock model id (`anthropic.claude-3-5-sonnet-20240620-v1:0`) or cross-region inference
/// profile id (`us.anthropic.claude-…`), which LiteLLM routes to Bedrock without a prefix.
fn is_bedrock_model_id(model: &str) -> bool {
    let mut parts = model.splitn(3, '.');
    let (Some(first), Some(second)) = (parts.next(), parts.next()) else {
        return false;
    };
    let vendor = if BEDROCK_GEOGRAPHIES.contains(&first) && parts.next().is_some() {
        second
    } else {
        first
    };
    BEDROCK_VENDORS.contains(&vendor) && !second.is_empty()
}

/// The table entry of a prefix.
pub fn provider_spec(prefix: &str) -> Option<&'static ProviderSpec> {
    PROVIDERS.iter().find(|spec| spec.prefix == prefix)
}

/// Splits `provider/name` into the provider's table entry and the name the upstream expects.
/// A bare name is OpenAI's (or Anthropic's for `claude-*`), as LiteLLM infers for known models.
pub fn parse_model_spec(model: &str) -> Result<(&'static ProviderSpec, String), String> {
    let model = model.trim();
    if model.is_empty() {
        return Err("is empty".into());
    }
    let (spec, name) = match model.split_once('/') {
        None => {
            let prefix = if model.starts_with("claude") {
                "anthropic"
            } else if is_bedrock_model_id(model) {
                "bedrock"
            } else {
                "openai"
            };
            (provider_spec(prefix), model)
        }
        Some((prefix, name)) => {
            let spec = provider_spec(prefix).ok_or_else(|| {
                let known: Vec<&str> = PROVIDERS.iter().map(|p| p.prefix).collect();
                format!(
                    "unknown provider prefix '{prefix}/' in '{model}'; supported: {}",
                    known.join(", ")
                )
            })?;
            (Some(spec), name)
        }
    };
    let spec = spec.ok_or_else(|| format!("no provider for '{model}'"))?;
    let name = spec.model_name.map_or_else(|| name.to_owned(), |f| f(name));
    if name.is_empty() {
        return Err(format!(
            "'{model}' has no model name after the provider prefix"
        ));
    }
    Ok((spec, name))
}

/// Splits `provider/name` into the provider and the name the upstream expects.
pub fn parse_model(model: &str) -> Result<(Provider, String), String> {
    parse_model_spec(model).map(|(spec, name)| (spec.provider, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_is_listed_once_and_found() {
        for (index, spec) in PROVIDERS.iter().enumerate() {
            assert_eq!(
                PROVIDERS.iter().position(|s| s.prefix == spec.prefix),
                Some(index),
                "{} twice",
                spec.prefix
            );
            let (found, name) = parse_model_spec(&format!("{}/m", spec.prefix))
                .unwrap_or_else(|e| unreachable!("{e}"));
            assert!(std::ptr::eq(found, spec));
            assert!(name.ends_with('m'));
        }
    }

    #[test]
    fn prefixes_map_to_their_provider_and_defaults() {
        let spec = |model: &str| parse_model_spec(model).map(|(s, n)| (s.prefix, s.provider, n));
        assert_eq!(
            spec("groq/llama-3.1-8b-instant"),
            Ok(("groq", Provider::OpenAi, "llama-3.1-8b-instant".into()))
        );
        assert_eq!(
            spec("ollama_chat/llama3"),
            Ok(("ollama_chat", Provider::OllamaChat, "llama3".into()))
        );
        assert_eq!(
            spec("claude-3-haiku"),
            Ok(("anthropic", Provider::Anthropic, "claude-3-haiku".into()))
        );
        assert_eq!(
            spec("gpt-4o"),
            Ok(("openai", Provider::OpenAi, "gpt-4o".into()))
        );
        // Model names may contain slashes of their own.
        assert_eq!(
            spec("openrouter/anthropic/claude-3.5-sonnet"),
            Ok((
                "openrouter",
                Provider::OpenAi,
                "anthropic/claude-3.5-sonnet".into()
            ))
        );
        assert!(spec("nope/x").is_err_and(|e| e.contains("supported: openai, azure")));
        assert!(spec("groq/").is_err());
    }

    #[test]
    fn fireworks_short_names_get_the_account_path() {
        let name = |model: &str| parse_model_spec(model).map(|(_, n)| n);
        assert_eq!(
            name("fireworks_ai/llama-v3p1-8b-instruct"),
            Ok("accounts/fireworks/models/llama-v3p1-8b-instruct".into())
        );
        assert_eq!(
            name("fireworks_ai/glm-fast"),
            Ok("accounts/fireworks/routers/glm-fast".into())
        );
        assert_eq!(
            name("fireworks_ai/accounts/me/models/x"),
            Ok("accounts/me/models/x".into())
        );
    }
}
