//! LiteLLM's model information routes: `GET /model/info` (also under `/v1/` and `/v2/`), one
//! entry per configured deployment with its `litellm_params` (secrets removed) and `model_info`
//! (prices, limits, mode, provider, the OpenAI params it takes), and `GET /model_group/info`,
//! one entry per public model name. Both show only what the caller's key may use; the master
//! key sees everything. Built once at start from the config: nothing is computed per call but
//! the filter.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use vaultgate_config::{Config, ConfigValue, ModelEntry, ModelTarget, Provider, model_target};
use vaultgate_core::Result;

use crate::auth::Principal;
use crate::state::AppState;

/// `litellm_params` never shown, whatever their form (LiteLLM removes the same ones).
const SECRET_PARAMS: &[&str] = &[
    "api_key",
    "vertex_credentials",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// `litellm_params` shown as written when they are literals (other literals stay `***`: a
/// literal may be a secret written in the file).
const PLAIN_PARAMS: &[&str] = &[
    "api_base",
    "api_version",
    "organization",
    "aws_region_name",
    "vertex_project",
    "vertex_location",
];

/// What OpenAI's API itself takes (OpenAI, Azure and every OpenAI-compatible host).
const OPENAI_PARAMS: &[&str] = &[
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "function_call",
    "functions",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "user",
];

/// What the Anthropic translation (also Bedrock's) maps.
const ANTHROPIC_PARAMS: &[&str] = &[
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "thinking",
    "user",
];

/// What the Gemini translation (also Vertex AI's) maps.
const GEMINI_PARAMS: &[&str] = &[
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "n",
    "stop",
    "stream",
    "response_format",
    "reasoning_effort",
    "tools",
    "tool_choice",
];

/// What the Ollama translations map.
const OLLAMA_PARAMS: &[&str] = &[
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "stop",
    "stream",
    "response_format",
    "reasoning_effort",
];

/// One configured deployment as the info routes show it.
pub(crate) struct Entry {
    pub model_name: String,
    pub id: String,
    /// `{model_name, litellm_params, model_info}`, LiteLLM's item of `/model/info`.
    pub item: Value,
    provider: String,
    pub mode: &'static str,
    max_tokens: Option<u64>,
    max_input_tokens: Option<u64>,
    prices: Option<(f64, f64)>,
    tpm: Option<u64>,
    rpm: Option<u64>,
    params: &'static [&'static str],
}

/// Every configured deployment, in config order.
pub(crate) struct ModelCatalog {
    entries: Vec<Entry>,
    /// Public model names in config order, each once.
    names: Vec<String>,
}

/// The call mode of a deployment: `model_info.mode`, else what its provider or name says
/// (`text-completion-openai/` completes, a name with `embed` embeds), else chat.
pub(crate) fn mode_of(entry: &ModelEntry) -> &'static str {
    if let Some(mode) = entry.model_info.mode.as_deref() {
        return match mode {
            "embedding" => "embedding",
            "completion" => "completion",
            "image_generation" => "image_generation",
            "audio_transcription" => "audio_transcription",
            "audio_speech" => "audio_speech",
            "rerank" => "rerank",
            "moderation" => "moderation",
            _ => "chat",
        };
    }
    let model = entry.litellm_params.model.to_ascii_lowercase();
    if model.starts_with("text-completion-openai/") {
        "completion"
    } else if model.contains("embed") {
        "embedding"
    } else {
        "chat"
    }
}

/// `litellm_params` without secrets: [`SECRET_PARAMS`] removed, the literals of
/// [`PLAIN_PARAMS`] shown, references by name, other literals as `***`, unset ones left out.
pub(crate) fn shown_params(entry: &ModelEntry) -> Value {
    let mut params = match serde_json::to_value(&entry.litellm_params) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for name in SECRET_PARAMS {
        params.remove(*name);
    }
    let p = &entry.litellm_params;
    let plain = [
        p.api_base.as_ref(),
        p.api_version.as_ref(),
        p.organization.as_ref(),
        p.aws.aws_region_name.as_ref(),
        p.vertex.vertex_project.as_ref(),
        p.vertex.vertex_location.as_ref(),
    ];
    for (name, value) in PLAIN_PARAMS.iter().zip(plain) {
        if let Some(ConfigValue::Literal(text)) = value {
            params.insert((*name).to_owned(), json!(text));
        }
    }
    params.retain(|_, value| !is_empty(value));
    Value::Object(params)
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// The provider prefix (`openai`, `groq`, `sagemaker`) and the OpenAI params it takes.
fn provider_of(model: &str) -> (String, &'static [&'static str]) {
    match model_target(model) {
        Ok(ModelTarget::Supported { provider, .. }) => {
            let prefix = model
                .split_once('/')
                .map_or_else(|| provider.as_str().to_owned(), |(p, _)| p.to_owned());
            let params = match provider {
                Provider::Anthropic | Provider::Bedrock => ANTHROPIC_PARAMS,
                Provider::Gemini | Provider::VertexAi => GEMINI_PARAMS,
                Provider::Ollama | Provider::OllamaChat => OLLAMA_PARAMS,
                Provider::OpenAi | Provider::Azure | Provider::TextCompletionOpenAi => {
                    OPENAI_PARAMS
                }
            };
            (prefix, params)
        }
        Ok(ModelTarget::Unsupported { provider, .. }) => (provider, &[]),
        Err(_) => (String::new(), &[]),
    }
}

impl ModelCatalog {
    /// Every configured deployment, in config order.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn new(config: &Config) -> Self {
        let mut names: Vec<String> = Vec::new();
        let entries = config
            .model_list
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                if !names.contains(&entry.model_name) {
                    names.push(entry.model_name.clone());
                }
                Entry::new(index, entry)
            })
            .collect();
        Self { entries, names }
    }

    /// The entries whose model names `principal` may use.
    fn visible<'a>(&'a self, app: &AppState, principal: &Principal) -> Vec<&'a Entry> {
        let allowed = match (principal, &app.keys) {
            (Principal::Virtual(record), Some(keys)) => keys.allowed_models(record, &self.names),
            _ => self.names.clone(),
        };
        self.entries
            .iter()
            .filter(|e| allowed.contains(&e.model_name))
            .collect()
    }
}

impl Entry {
    fn new(index: usize, entry: &ModelEntry) -> Self {
        let info = &entry.model_info;
        let id = vaultgate_config::deployment_id(index, entry);
        let model = entry.litellm_params.model.trim();
        let (provider, params) = provider_of(model);
        let upstream = model.split_once('/').map_or(model, |(_, name)| name);
        let prices = vaultgate_keys::token_prices(upstream, Some(info));
        let mode = mode_of(entry);
        let max_tokens = info.max_tokens.or(entry.litellm_params.max_tokens);
        let item = json!({
            "model_name": entry.model_name,
            "litellm_params": shown_params(entry),
            "model_info": {
                "id": id,
                "db_model": false,
                "key": upstream,
                "mode": mode,
                "litellm_provider": provider,
                "base_model": info.base_model,
                "input_cost_per_token": prices.map(|p| p.0),
                "output_cost_per_token": prices.map(|p| p.1),
                "max_tokens": max_tokens,
                "max_input_tokens": info.max_input_tokens,
                "max_output_tokens": max_tokens,
                "tpm": entry.litellm_params.tpm,
                "rpm": entry.litellm_params.rpm,
                "supported_openai_params": params,
                "supports_function_calling": params.contains(&"tools"),
                "supports_parallel_function_calling": params.contains(&"parallel_tool_calls"),
            },
        });
        Self {
            model_name: entry.model_name.clone(),
            id,
            item,
            provider,
            mode,
            max_tokens,
            max_input_tokens: info.max_input_tokens,
            prices,
            tpm: entry.litellm_params.tpm,
            rpm: entry.litellm_params.rpm,
            params,
        }
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct InfoQuery {
    /// LiteLLM's filter by deployment id (`/model/info?litellm_model_id=…`).
    litellm_model_id: Option<String>,
    /// `/v2/model/info`'s names of the same filters.
    #[serde(rename = "modelId")]
    model_id: Option<String>,
    model: Option<String>,
}

/// `GET /model/info`, `/v1/model/info`, `/v2/model/info`.
pub(crate) async fn model_info(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<InfoQuery>,
) -> Result<Json<Value>> {
    let principal = app.authenticate(&headers).await?;
    let id = query.litellm_model_id.or(query.model_id);
    let data: Vec<&Value> = app
        .catalog
        .visible(&app, &principal)
        .into_iter()
        .filter(|e| id.as_ref().is_none_or(|id| *id == e.id))
        .filter(|e| query.model.as_ref().is_none_or(|m| *m == e.model_name))
        .map(|e| &e.item)
        .collect();
    Ok(Json(json!({"data": data})))
}

#[derive(Deserialize, Default)]
pub(crate) struct GroupQuery {
    model_group: Option<String>,
}

/// `GET /model_group/info`: per public model name, its providers, the largest limits and
/// prices of its deployments, their summed tpm/rpm, its mode and the params every deployment
/// of it takes at least one of.
pub(crate) async fn model_group_info(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<GroupQuery>,
) -> Result<Json<Value>> {
    let principal = app.authenticate(&headers).await?;
    let visible = app.catalog.visible(&app, &principal);
    let data: Vec<Value> = app
        .catalog
        .names
        .iter()
        .filter(|name| query.model_group.as_ref().is_none_or(|g| g == *name))
        .filter_map(|name| {
            let members: Vec<&&Entry> = visible.iter().filter(|e| e.model_name == *name).collect();
            (!members.is_empty()).then(|| group_item(name, &members))
        })
        .collect();
    Ok(Json(json!({"data": data})))
}

fn group_item(name: &str, members: &[&&Entry]) -> Value {
    let mut providers: Vec<&str> = Vec::new();
    let mut params: Vec<&str> = Vec::new();
    for entry in members {
        if !entry.provider.is_empty() && !providers.contains(&entry.provider.as_str()) {
            providers.push(&entry.provider);
        }
        for param in entry.params {
            if !params.contains(param) {
                params.push(*param);
            }
        }
    }
    let largest = |f: fn(&Entry) -> Option<u64>| members.iter().filter_map(|e| f(e)).max();
    let highest = |f: fn(&(f64, f64)) -> f64| {
        members
            .iter()
            .filter_map(|e| e.prices.as_ref().map(f))
            .reduce(f64::max)
    };
    let total = |f: fn(&Entry) -> Option<u64>| {
        let values: Vec<u64> = members.iter().filter_map(|e| f(e)).collect();
        (!values.is_empty()).then(|| values.iter().sum::<u64>())
    };
    json!({
        "model_group": name,
        "providers": providers,
        "max_input_tokens": largest(|e| e.max_input_tokens),
        "max_output_tokens": largest(|e| e.max_tokens),
        "input_cost_per_token": highest(|p| p.0),
        "output_cost_per_token": highest(|p| p.1),
        "mode": members.first().map(|e| e.mode),
        "tpm": total(|e| e.tpm),
        "rpm": total(|e| e.rpm),
        "supports_function_calling": params.contains(&"tools"),
        "supports_parallel_function_calling": params.contains(&"parallel_tool_calls"),
        "supported_openai_params": params,
        "is_public_model_group": false,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The one entry of a `model_list` written as YAML list items.
    fn entry(item: &str) -> ModelEntry {
        let config = Config::parse(&format!("model_list:\n  - {item}")).unwrap();
        config.model_list.into_iter().next().unwrap()
    }

    #[test]
    fn secrets_are_removed_and_plain_settings_shown() {
        let e = entry(
            "model_name: m\n    litellm_params: {model: bedrock/x, api_key: sk-literal-secret, \
             api_base: 'https://host/v1', aws_secret_access_key: abc, aws_region_name: eu-west-1, \
             extra_headers: {x-token: literal-token}, rpm: 5}",
        );
        let shown = shown_params(&e);
        let text = shown.to_string();
        assert!(
            !text.contains("sk-literal-secret") && !text.contains("abc\""),
            "{text}"
        );
        assert!(!text.contains("literal-token"), "{text}");
        assert_eq!(shown["api_base"], "https://host/v1");
        assert_eq!(shown["aws_region_name"], "eu-west-1");
        assert_eq!(shown["rpm"], 5);
        assert!(shown.get("api_key").is_none() && shown.get("timeout").is_none());
    }

    #[test]
    fn modes_come_from_model_info_else_the_model() {
        let mode = |item: &str| mode_of(&entry(item));
        assert_eq!(
            mode("model_name: e\n    litellm_params: {model: mistral/mistral-embed}"),
            "embedding"
        );
        assert_eq!(
            mode(
                "model_name: c\n    litellm_params: {model: openai/x}\n    model_info: {mode: embedding}"
            ),
            "embedding"
        );
        assert_eq!(
            mode("model_name: c\n    litellm_params: {model: gpt-4o}"),
            "chat"
        );
    }
}
