//! Spend logs (LiteLLM_SpendLogs): one row per model request, queued by the request path
//! without waiting ([`crate::batch::LogQueue::send`] never blocks: a full queue drops the row
//! and counts it), written in batches by [`crate::batch::LogWriter`], deleted after
//! `maximum_spend_logs_retention_period` by a background pass, and read by LiteLLM's
//! `/spend/*` and `/global/spend/*` routes.
//!
//! Rows hold the key's SHA-256, never the raw key, and no request or response bodies unless
//! `store_prompts_in_spend_logs` is on.

mod dates;
mod query;
mod report;
pub(crate) mod routes;
mod store;

use std::time::Duration;

use serde_json::Value;

/// `api_key` of requests made with the master key: LiteLLM's value under
/// `disable_adding_master_key_hash_to_db`, so not even a hash of the master key is stored.
pub const MASTER_KEY_LOG_NAME: &str = "litellm_proxy_master_key";

/// One model request, as logged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpendLogRow {
    /// The request's `x-request-id` (LiteLLM's call id).
    pub request_id: String,
    /// LiteLLM's call type: `acompletion`, `atext_completion`, `aembedding`,
    /// `anthropic_messages`.
    pub call_type: String,
    /// SHA-256 hex of the virtual key (or [`MASTER_KEY_LOG_NAME`]).
    pub api_key: String,
    pub spend: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Unix milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
    /// The model the deployment calls upstream.
    pub model: String,
    /// The deployment's id.
    pub model_id: String,
    /// The model name the client asked for.
    pub model_group: String,
    pub custom_llm_provider: String,
    pub api_base: String,
    /// The key's user.
    pub user: String,
    pub team_id: String,
    pub organization_id: String,
    /// The request's `user` (LiteLLM's end user / customer).
    pub end_user: String,
    /// LiteLLM's metadata as JSON text (an object; empty is `{}`): `user_api_key` (hash),
    /// `user_api_key_alias`, team, user, `spend_logs_metadata`, and on failures
    /// `error_information`. Kept as text from the request to the database: a row waiting for
    /// the writer holds one string, not a map of eight values.
    pub metadata: String,
    pub request_tags: Vec<String>,
    pub cache_hit: bool,
    /// `success` or `failure`.
    pub status: String,
    /// Only with `store_prompts_in_spend_logs`.
    pub messages: Option<Value>,
    pub response: Option<Value>,
}

/// Rows go to the store through the batch writer.
#[async_trait::async_trait]
impl crate::batch::Row for SpendLogRow {
    const WHAT: &'static str = "spend-log rows";
    const METRICS: &'static str = "vaultgate_spend_logs";

    async fn insert(store: &crate::store::Store, rows: &[Self]) -> vaultgate_core::Result<()> {
        store.insert_request_logs(rows).await
    }

    async fn delete_before(
        store: &crate::store::Store,
        cutoff_ms: i64,
    ) -> vaultgate_core::Result<u64> {
        store.delete_request_logs_before(cutoff_ms).await
    }
}

/// Spend-log settings (LiteLLM's `general_settings` names).
#[derive(Debug, Clone)]
pub struct SpendLogOptions {
    /// Off with `disable_spend_logs: true`: nothing is queued or written.
    pub enabled: bool,
    /// `store_prompts_in_spend_logs`: keep request and response bodies in the rows.
    pub store_prompts: bool,
    /// `maximum_spend_logs_retention_period`: rows older than this are deleted.
    pub retention: Option<Duration>,
    /// `maximum_spend_logs_retention_interval`: how often the deletion runs.
    pub retention_interval: Duration,
    /// Rows waiting for the writer; beyond, new rows are dropped and counted.
    pub queue_max: usize,
    /// Rows kept in memory while writes fail; while full, the queue fills and then drops.
    pub backlog_max: usize,
}

impl Default for SpendLogOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            store_prompts: false,
            retention: None,
            retention_interval: Duration::from_secs(86_400),
            queue_max: 10_000,
            backlog_max: 50_000,
        }
    }
}
