//! What one model request leaves behind besides its spend: a spend-log row (queued for the key
//! service's batch writer, never waited on) and LiteLLM's Prometheus series. A [`LogDraft`] is
//! taken when the request is admitted and finished once, when the answer is complete (a stream
//! when it ends) or failed.
//!
//! Rows and labels carry the key's hash, never the raw key; request and response bodies only
//! with `store_prompts_in_spend_logs`; the client's `metadata` only as its
//! `spend_logs_metadata` (LiteLLM's), since the rest may hold anything.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use serde::Serialize;
use serde_json::{Map, Value};
use vaultgate_core::Error;
use vaultgate_keys::{KeyRecord, KeyService, MASTER_KEY_LOG_NAME, SpendLogRow};
use vaultgate_providers::{ChatBody, Deployment, Usage};
use vaultgate_secrets::LiveSecrets;

use crate::auth::Principal;
use crate::litellm_metrics::{self, Labels};
use crate::state::AppState;

/// Most tags kept per request, and their longest length (the client chooses them).
const MAX_TAGS: usize = 32;
const MAX_TAG_LEN: usize = 128;
/// Longest error message kept in a row.
const MAX_ERROR_LEN: usize = 500;

/// A row's `metadata` as LiteLLM writes it, in the (sorted) order of its keys.
#[derive(Serialize)]
struct RowMetadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error_information: Option<ErrorInformation<'a>>,
    spend_logs_metadata: &'a Value,
    status: &'a str,
    user_api_key: &'a str,
    user_api_key_alias: Option<&'a str>,
    user_api_key_team_alias: Option<&'a str>,
    user_api_key_team_id: Option<&'a str>,
    user_api_key_user_id: Option<&'a str>,
}

/// A failed request's `error_information` (LiteLLM's; the status code as text).
#[derive(Serialize)]
struct ErrorInformation<'a> {
    error_class: &'static str,
    #[serde(serialize_with = "status_text")]
    error_code: u16,
    error_message: String,
    llm_provider: &'a str,
}

fn status_text<S: serde::Serializer>(code: &u16, out: S) -> Result<S::Ok, S::Error> {
    out.collect_str(code)
}

/// A request's row before its outcome is known.
pub(crate) struct LogDraft {
    keys: Option<KeyService>,
    secrets: Arc<LiveSecrets>,
    request_id: String,
    call_type: &'static str,
    started_ms: i64,
    started: Instant,
    requested_model: String,
    /// `None` for the master key (or an open gateway).
    key: Option<Arc<KeyRecord>>,
    master: bool,
    end_user: String,
    tags: Vec<String>,
    spend_logs_metadata: Option<Value>,
    messages: Option<Value>,
}

/// How a request ended, for its row.
pub(crate) struct Ending<'a> {
    pub deployment: Option<&'a Deployment>,
    pub usage: Usage,
    pub cost: f64,
    pub error: Option<&'a Error>,
    /// The answer's body, kept only with `store_prompts_in_spend_logs`.
    pub response: Option<&'a [u8]>,
    /// When the upstream call began (LLM API latency); `None` when none was made.
    pub upstream_started: Option<Instant>,
    /// A virtual key's admission, for its and its team's remaining budget.
    pub admission: Option<&'a vaultgate_keys::Admission>,
}

impl<'a> Ending<'a> {
    /// Refused before any upstream call.
    pub(crate) fn refused(error: &'a Error) -> Self {
        Self {
            deployment: None,
            usage: Usage::default(),
            cost: 0.0,
            error: Some(error),
            response: None,
            upstream_started: None,
            admission: None,
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// LiteLLM's call type of an endpoint.
pub(crate) fn call_type(endpoint: vaultgate_providers::Endpoint) -> &'static str {
    match endpoint {
        vaultgate_providers::Endpoint::ChatCompletions => "acompletion",
        vaultgate_providers::Endpoint::Completions => "atext_completion",
        vaultgate_providers::Endpoint::Embeddings => "aembedding",
    }
}

impl AppState {
    /// The draft of a request's row, taken as it is admitted.
    pub(crate) fn log_draft(
        &self,
        principal: &Principal,
        headers: &HeaderMap,
        request: &ChatBody,
        call_type: &'static str,
        started: Instant,
        started_ms: i64,
    ) -> LogDraft {
        let (key, master) = match principal {
            Principal::Virtual(key) => (Some(key.clone()), false),
            Principal::Master => (None, true),
            Principal::Open => (None, false),
        };
        let store_prompts = self
            .keys
            .as_ref()
            .is_some_and(KeyService::store_prompts_in_spend_logs);
        let raw = request.bytes();
        let mentions = |name: &[u8]| raw.windows(name.len()).any(|w| w == name);
        let fields = if store_prompts || mentions(b"\"tags\"") || mentions(b"\"metadata\"") {
            request.fields().ok()
        } else {
            None
        };
        let mut tags = Vec::new();
        let mut spend_logs_metadata = None;
        if let Some(fields) = fields {
            let metadata = fields.get("metadata").and_then(Value::as_object);
            for list in [fields.get("tags"), metadata.and_then(|m| m.get("tags"))] {
                add_tags(&mut tags, list);
            }
            spend_logs_metadata = metadata
                .and_then(|m| m.get("spend_logs_metadata"))
                .filter(|v| v.is_object())
                .cloned();
        }
        if let Some(key) = &key {
            add_tag_strs(&mut tags, key.tags.iter().map(String::as_str));
        }
        let messages = if store_prompts {
            fields.map(|f| {
                let mut kept = Map::new();
                for name in ["messages", "prompt", "input", "system", "instructions"] {
                    if let Some(value) = f.get(name) {
                        kept.insert(name.to_owned(), value.clone());
                    }
                }
                Value::Object(kept)
            })
        } else {
            None
        };
        LogDraft {
            keys: self.keys.clone(),
            secrets: self.secrets.clone(),
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            call_type,
            started_ms,
            started,
            requested_model: request.model.clone(),
            key,
            master,
            end_user: request.user.clone().unwrap_or_default(),
            tags,
            spend_logs_metadata,
            messages,
        }
    }
}

fn add_tags(tags: &mut Vec<String>, list: Option<&Value>) {
    let Some(Value::Array(items)) = list else {
        return;
    };
    add_tag_strs(tags, items.iter().filter_map(Value::as_str));
}

fn add_tag_strs<'a>(tags: &mut Vec<String>, items: impl Iterator<Item = &'a str>) {
    for tag in items {
        let tag: String = tag.chars().take(MAX_TAG_LEN).collect();
        if tags.len() < MAX_TAGS && !tag.is_empty() && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
}

/// LiteLLM's exception class for an error (the `exception_class` label, `error_class`).
pub(crate) fn error_class(error: &Error) -> &'static str {
    match error {
        Error::BudgetExceeded(_) => "BudgetExceededError",
        Error::RateLimited { .. } => "RateLimitError",
        Error::UpstreamTimeout(_) => "Timeout",
        Error::UpstreamUnreachable(_) => "APIConnectionError",
        other => match other.status().as_u16() {
            400 | 413 => "BadRequestError",
            401 => "AuthenticationError",
            403 => "PermissionDeniedError",
            404 => "NotFoundError",
            408 | 504 => "Timeout",
            422 => "UnprocessableEntityError",
            429 => "RateLimitError",
            501 => "NotImplementedError",
            503 => "ServiceUnavailableError",
            _ => "InternalServerError",
        },
    }
}

/// The deployment's base URL as it is called now, without credentials (see
/// [`crate::upstream::public_api_base`]).
pub(crate) fn api_base_of(secrets: &LiveSecrets, deployment: &Deployment) -> String {
    crate::upstream::public_api_base(secrets, deployment)
        .and_then(|value| value.to_str().ok().map(str::to_owned))
        .unwrap_or_default()
}

impl LogDraft {
    /// Queues the row and counts the request in LiteLLM's series.
    pub(crate) fn finish(self, ending: Ending<'_>) {
        let end_ms = now_ms().max(self.started_ms);
        let key_hash = match (&self.key, self.master) {
            (Some(key), _) => key.token.clone(),
            (None, true) => MASTER_KEY_LOG_NAME.to_owned(),
            (None, false) => String::new(),
        };
        let key_alias = self.key.as_ref().and_then(|k| k.key_alias.clone());
        let team_id = self.key.as_ref().and_then(|k| k.team_id.clone());
        let team_alias = match (&self.keys, &team_id) {
            (Some(keys), Some(team)) => keys.team_alias(team),
            _ => None,
        };
        let user = self.key.as_ref().and_then(|k| k.user_id.clone());
        let (model, model_id, provider, api_base) = match ending.deployment {
            Some(d) => (
                d.upstream_model.clone(),
                d.id.clone(),
                d.spec.prefix.to_owned(),
                api_base_of(&self.secrets, d),
            ),
            None => Default::default(),
        };
        let labels = Labels {
            end_user: &self.end_user,
            hashed_api_key: &key_hash,
            api_key_alias: key_alias.as_deref().unwrap_or_default(),
            team: team_id.as_deref().unwrap_or_default(),
            team_alias: team_alias.as_deref().unwrap_or_default(),
            user: user.as_deref().unwrap_or_default(),
            requested_model: &self.requested_model,
            model: &model,
            model_id: &model_id,
            api_provider: &provider,
        };
        let total_latency = self.started.elapsed().as_secs_f64();
        let llm_latency = ending.upstream_started.map(|t| t.elapsed().as_secs_f64());
        match ending.error {
            Some(error) => litellm_metrics::failed(&labels, error, total_latency),
            None => litellm_metrics::succeeded(
                &labels,
                ending.usage,
                ending.cost,
                total_latency,
                llm_latency,
            ),
        }
        if let Some(admission) = ending.admission {
            litellm_metrics::budgets(&labels, admission);
        }
        let Some(keys) = self.keys.as_ref().filter(|k| k.spend_logs_enabled()) else {
            return;
        };
        let error_information = ending.error.map(|error| ErrorInformation {
            error_class: error_class(error),
            error_code: error.status().as_u16(),
            error_message: error.to_string().chars().take(MAX_ERROR_LEN).collect(),
            llm_provider: &provider,
        });
        let status = if ending.error.is_some() {
            "failure"
        } else {
            "success"
        };
        let metadata = serde_json::to_string(&RowMetadata {
            error_information,
            spend_logs_metadata: self.spend_logs_metadata.as_ref().unwrap_or(&Value::Null),
            status,
            user_api_key: &key_hash,
            user_api_key_alias: key_alias.as_deref(),
            user_api_key_team_alias: team_alias.as_deref(),
            user_api_key_team_id: team_id.as_deref(),
            user_api_key_user_id: user.as_deref(),
        })
        .unwrap_or_else(|_| "{}".to_owned());
        let response = ending
            .response
            .filter(|_| self.messages.is_some())
            .and_then(|body| serde_json::from_slice::<Value>(body).ok());
        keys.log_request(SpendLogRow {
            request_id: self.request_id,
            call_type: self.call_type.to_owned(),
            api_key: key_hash,
            spend: ending.cost,
            prompt_tokens: ending.usage.prompt_tokens,
            completion_tokens: ending.usage.completion_tokens,
            start_ms: self.started_ms,
            end_ms,
            model,
            model_id,
            model_group: self.requested_model,
            custom_llm_provider: provider,
            api_base,
            user: user.unwrap_or_default(),
            team_id: team_id.unwrap_or_default(),
            organization_id: String::new(),
            end_user: self.end_user,
            metadata,
            request_tags: self.tags,
            cache_hit: false,
            status: status.to_owned(),
            messages: self.messages,
            response,
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The text is what a `serde_json::Map` of the same values wrote before (sorted keys), so
    /// rows stored earlier and now read alike.
    #[test]
    fn row_metadata_is_the_sorted_object_it_always_was() {
        let text = serde_json::to_string(&RowMetadata {
            error_information: Some(ErrorInformation {
                error_class: "Timeout",
                error_code: 504,
                error_message: "slow".into(),
                llm_provider: "openai",
            }),
            spend_logs_metadata: &json!({"job": "j1"}),
            status: "failure",
            user_api_key: "ab",
            user_api_key_alias: Some("k-one"),
            user_api_key_team_alias: None,
            user_api_key_team_id: Some("t-eng"),
            user_api_key_user_id: None,
        })
        .unwrap();
        let map: Map<String, Value> = serde_json::from_str(&text).unwrap();
        let sorted: std::collections::BTreeMap<_, _> = map.iter().collect();
        assert_eq!(text, serde_json::to_string(&sorted).unwrap());
        assert_eq!(map["error_information"]["error_code"], "504");
        assert_eq!(map["error_information"]["llm_provider"], "openai");
        assert_eq!(map["user_api_key_team_alias"], Value::Null);
        assert_eq!(map.len(), 8);
    }

    #[test]
    fn tags_are_bounded_and_unique() {
        let mut tags = Vec::new();
        let many: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
        add_tags(&mut tags, Some(&json!(["a", "a", "", "x".repeat(500)])));
        add_tags(&mut tags, Some(&json!(many)));
        assert_eq!(tags.len(), MAX_TAGS);
        assert_eq!(tags[0], "a");
        assert_eq!(tags[1].len(), MAX_TAG_LEN);
    }
}
