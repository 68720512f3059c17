//! Every config key vaultgate knows: the ones it implements and LiteLLM's ones it accepts but
//! ignores, in one table. A key in neither is a typo and stops the start (see `keys.rs`).
//!
//! Implementing a LiteLLM setting is one line here: change its `Ignored(…)` to `Implemented`
//! (and add the typed field; a test checks that the two agree). The README's list of ignored
//! settings is generated from this table (`UPDATE_README=1 cargo test -p vaultgate-config`).

/// How vaultgate treats one key of `config.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Read and honoured; its value is not checked key by key (a list, a free map, a scalar).
    Implemented,
    /// Read and honoured; a map (or a list of maps) whose keys are all in this table.
    Section,
    /// A map where LiteLLM also takes keys of its own choosing (`litellm_params` go to the
    /// provider call): an unknown key is an error only when it is close to a known one.
    OpenSection,
    /// A map of free metadata (`model_info`): unknown keys are kept silently, unless close to a
    /// known one.
    MetadataSection,
    /// LiteLLM's setting, not implemented by vaultgate: accepted, with a warning naming the
    /// feature.
    Ignored(&'static str),
}

// The features LiteLLM has and vaultgate does not (yet), as the warnings and the README name them.
const LOGGING: &str = "logging and observability callbacks (Langfuse, Datadog, OpenTelemetry, …)";
const PROMETHEUS: &str = "LiteLLM's Prometheus options (vaultgate has its own /metrics)";
const CACHE: &str = "response caching";
const ALERTING: &str = "Slack/email alerting";
const UI: &str = "LiteLLM's admin UI and SSO";
const AUTH: &str = "custom, JWT and OAuth2 authentication";
const ROUTE_ACCESS: &str = "route and IP access control";
const SPEND_LOGS: &str = "turning spend updates off";
const BUDGETS: &str = "proxy, user, team and end-user budgets";
const KEY_DEFAULTS: &str = "defaults and limits for generated keys";
const DB_TUNING: &str = "database pool tuning and DynamoDB";
const DB_MODELS: &str = "models and settings stored in the database";
const HEALTH: &str = "background model health checks";
const GUARDRAILS: &str = "guardrails";
const MCP: &str = "the MCP gateway";
const PASS_THROUGH: &str = "pass-through endpoints";
const DEFAULT_MODELS: &str = "proxy-wide default models";
const FORWARDING: &str = "forwarding client headers to providers";
const LIMITS: &str = "proxy-wide parallel-request limits";
const SECRET_MANAGERS: &str = "secret managers other than HashiCorp Vault";
const OTHER_APIS: &str =
    "the Assistants, Files, Fine-tuning, Batches, Search and Vector Store APIs";
const PROMPTS: &str = "prompt management";
const CREDENTIALS: &str = "named credentials";
const COORDINATION: &str =
    "a separate Redis for coordination (shared limits use router_settings.redis_*)";
const TAG_ROUTING: &str = "tag-based routing";
const ROUTER_POLICIES: &str = "per-error retry and cooldown policies";
const ROUTER_EXTRAS: &str = "other router options (pre-call checks, priorities, …)";
const TRANSPORT: &str = "HTTP transport tuning of LiteLLM's Python client";
const REQUEST_TWEAKS: &str = "request rewriting (modify_params, JSON schema validation, …)";
const LOG_LEVEL: &str = "log settings in the file (use RUST_LOG and --json-logs)";
const ENTERPRISE: &str = "LiteLLM enterprise and control-plane features";
const PROVIDERS: &str = "credentials and options of providers vaultgate does not call (watsonx) or options it does not use";
const STORAGE: &str = "object storage for files and batches";
const DEPLOYMENT_LIMITS: &str = "per-deployment budgets, priorities and limits";
const DEFAULT_PARAMS: &str = "default request parameters set on a deployment";
const DEPLOYMENT_PRICING: &str = "prices in litellm_params (set them in model_info)";
const ROUTERS: &str = "auto, complexity and quality routers";
const REASONING: &str = "reasoning-content merging and the Responses-API bridge";
const KEEPALIVE: &str = "stream keep-alive heartbeats";
const CAPABILITIES: &str = "model capability flags";
const EXTRA_PRICING: &str =
    "prices other than input and output tokens (cache, audio, per-second, …)";
const TEAM_MODELS: &str = "team-owned models and access groups";

use Support::{Ignored, Implemented, MetadataSection, OpenSection, Section};

/// The whole table. `[]` stands for "each item of the list".
#[rustfmt::skip]
pub const SETTINGS: &[(&str, Support)] = &[
    // Top-level sections.
    ("model_list", Section),
    ("litellm_settings", Section),
    ("router_settings", Section),
    ("general_settings", Section),
    ("environment_variables", Implemented),
    ("callback_settings", Ignored(LOGGING)),
    ("assistant_settings", Ignored(OTHER_APIS)),
    ("finetune_settings", Ignored(OTHER_APIS)),
    ("files_settings", Ignored(OTHER_APIS)),
    ("search_tools", Ignored(OTHER_APIS)),
    ("vector_store_registry", Ignored(OTHER_APIS)),
    ("default_vertex_config", Ignored(PASS_THROUGH)),
    ("guardrails", Ignored(GUARDRAILS)),
    ("credential_list", Ignored(CREDENTIALS)),
    ("mcp_servers", Ignored(MCP)),
    ("mcp_tools", Ignored(MCP)),
    ("prompts", Ignored(PROMPTS)),
    ("include", Ignored("including other config files (merge them into one)")),
    ("worker_registry", Ignored(ENTERPRISE)),
    // model_list[]
    ("model_list[].model_name", Implemented),
    ("model_list[].litellm_params", OpenSection),
    ("model_list[].model_info", MetadataSection),
    // model_list[].litellm_params
    ("model_list[].litellm_params.model", Implemented),
    ("model_list[].litellm_params.api_base", Implemented),
    ("model_list[].litellm_params.api_key", Implemented),
    ("model_list[].litellm_params.api_version", Implemented),
    ("model_list[].litellm_params.organization", Implemented),
    ("model_list[].litellm_params.timeout", Implemented),
    ("model_list[].litellm_params.stream_timeout", Implemented),
    ("model_list[].litellm_params.max_retries", Implemented),
    ("model_list[].litellm_params.rpm", Implemented),
    ("model_list[].litellm_params.tpm", Implemented),
    ("model_list[].litellm_params.weight", Implemented),
    ("model_list[].litellm_params.extra_headers", Implemented),
    ("model_list[].litellm_params.mock_response", Implemented),
    ("model_list[].litellm_params.mock_timeout", Implemented),
    ("model_list[].litellm_params.max_tokens", Implemented),
    ("model_list[].litellm_params.azure_ad_token", Ignored(AUTH)),
    ("model_list[].litellm_params.vertex_project", Implemented),
    ("model_list[].litellm_params.vertex_location", Implemented),
    ("model_list[].litellm_params.vertex_credentials", Implemented),
    ("model_list[].litellm_params.region_name", Implemented),
    ("model_list[].litellm_params.aws_access_key_id", Implemented),
    ("model_list[].litellm_params.aws_secret_access_key", Implemented),
    ("model_list[].litellm_params.aws_session_token", Implemented),
    ("model_list[].litellm_params.aws_region_name", Implemented),
    ("model_list[].litellm_params.aws_session_name", Implemented),
    ("model_list[].litellm_params.aws_profile_name", Implemented),
    ("model_list[].litellm_params.aws_role_name", Implemented),
    ("model_list[].litellm_params.aws_web_identity_token", Ignored(PROVIDERS)),
    ("model_list[].litellm_params.aws_sts_endpoint", Implemented),
    ("model_list[].litellm_params.aws_external_id", Implemented),
    ("model_list[].litellm_params.aws_bedrock_runtime_endpoint", Implemented),
    ("model_list[].litellm_params.aws_bedrock_project_id", Ignored(PROVIDERS)),
    ("model_list[].litellm_params.bedrock_tags", Ignored(PROVIDERS)),
    ("model_list[].litellm_params.watsonx_region_name", Ignored(PROVIDERS)),
    ("model_list[].litellm_params.gcs_bucket_name", Ignored(STORAGE)),
    ("model_list[].litellm_params.s3_bucket_name", Ignored(STORAGE)),
    ("model_list[].litellm_params.s3_region_name", Ignored(STORAGE)),
    ("model_list[].litellm_params.s3_encryption_key_id", Ignored(STORAGE)),
    ("model_list[].litellm_params.s3_output_bucket_name", Ignored(STORAGE)),
    ("model_list[].litellm_params.aws_batch_role_arn", Ignored(STORAGE)),
    ("model_list[].litellm_params.max_file_size_mb", Ignored(OTHER_APIS)),
    ("model_list[].litellm_params.custom_llm_provider", Ignored("custom_llm_provider (write the provider as the model prefix)")),
    ("model_list[].litellm_params.litellm_credential_name", Ignored(CREDENTIALS)),
    ("model_list[].litellm_params.configurable_clientside_auth_params", Ignored(AUTH)),
    ("model_list[].litellm_params.litellm_trace_id", Ignored(LOGGING)),
    ("model_list[].litellm_params.itpm", Ignored(DEPLOYMENT_LIMITS)),
    ("model_list[].litellm_params.otpm", Ignored(DEPLOYMENT_LIMITS)),
    ("model_list[].litellm_params.order", Ignored(DEPLOYMENT_LIMITS)),
    ("model_list[].litellm_params.max_parallel_requests", Ignored(DEPLOYMENT_LIMITS)),
    ("model_list[].litellm_params.default_api_key_tpm_limit", Ignored(DEPLOYMENT_LIMITS)),
    ("model_list[].litellm_params.default_api_key_rpm_limit", Ignored(DEPLOYMENT_LIMITS)),
    ("model_list[].litellm_params.max_budget", Ignored(DEPLOYMENT_LIMITS)),
    ("model_list[].litellm_params.budget_duration", Ignored(DEPLOYMENT_LIMITS)),
    ("model_list[].litellm_params.num_retries", Implemented),
    ("model_list[].litellm_params.cooldown_time", Ignored(DEPLOYMENT_LIMITS)),
    ("model_list[].litellm_params.drop_params", Implemented),
    ("model_list[].litellm_params.additional_drop_params", Implemented),
    ("model_list[].litellm_params.keepalive_seconds", Ignored(KEEPALIVE)),
    ("model_list[].litellm_params.allow_client_keepalive_override", Ignored(KEEPALIVE)),
    ("model_list[].litellm_params.use_in_pass_through", Ignored(PASS_THROUGH)),
    ("model_list[].litellm_params.use_litellm_proxy", Ignored(PASS_THROUGH)),
    ("model_list[].litellm_params.use_chat_completions_api", Ignored(REASONING)),
    ("model_list[].litellm_params.merge_reasoning_content_in_choices", Ignored(REASONING)),
    ("model_list[].litellm_params.model_info", Ignored("model_info inside litellm_params (put it next to litellm_params)")),
    ("model_list[].litellm_params.tags", Ignored(TAG_ROUTING)),
    ("model_list[].litellm_params.tag_regex", Ignored(TAG_ROUTING)),
    ("model_list[].litellm_params.auto_router_config_path", Ignored(ROUTERS)),
    ("model_list[].litellm_params.auto_router_config", Ignored(ROUTERS)),
    ("model_list[].litellm_params.auto_router_default_model", Ignored(ROUTERS)),
    ("model_list[].litellm_params.auto_router_embedding_model", Ignored(ROUTERS)),
    ("model_list[].litellm_params.complexity_router_config", Ignored(ROUTERS)),
    ("model_list[].litellm_params.quality_router_config", Ignored(ROUTERS)),
    ("model_list[].litellm_params.input_cost_per_token", Ignored(DEPLOYMENT_PRICING)),
    ("model_list[].litellm_params.output_cost_per_token", Ignored(DEPLOYMENT_PRICING)),
    ("model_list[].litellm_params.input_cost_per_second", Ignored(DEPLOYMENT_PRICING)),
    ("model_list[].litellm_params.output_cost_per_second", Ignored(DEPLOYMENT_PRICING)),
    ("model_list[].litellm_params.temperature", Ignored(DEFAULT_PARAMS)),
    ("model_list[].litellm_params.top_p", Ignored(DEFAULT_PARAMS)),
    ("model_list[].litellm_params.n", Ignored(DEFAULT_PARAMS)),
    ("model_list[].litellm_params.stop", Ignored(DEFAULT_PARAMS)),
    ("model_list[].litellm_params.seed", Ignored(DEFAULT_PARAMS)),
    ("model_list[].litellm_params.presence_penalty", Ignored(DEFAULT_PARAMS)),
    ("model_list[].litellm_params.frequency_penalty", Ignored(DEFAULT_PARAMS)),
    ("model_list[].litellm_params.max_completion_tokens", Ignored(DEFAULT_PARAMS)),
    ("model_list[].litellm_params.response_format", Ignored(DEFAULT_PARAMS)),
    ("model_list[].litellm_params.reasoning_effort", Ignored(DEFAULT_PARAMS)),
    ("model_list[].litellm_params.thinking", Ignored(DEFAULT_PARAMS)),
    ("model_list[].litellm_params.extra_body", Ignored(DEFAULT_PARAMS)),
    // model_list[].model_info
    ("model_list[].model_info.id", Implemented),
    ("model_list[].model_info.input_cost_per_token", Implemented),
    ("model_list[].model_info.output_cost_per_token", Implemented),
    ("model_list[].model_info.max_tokens", Implemented),
    ("model_list[].model_info.max_input_tokens", Implemented),
    ("model_list[].model_info.mode", Implemented),
    ("model_list[].model_info.base_model", Implemented),
    ("model_list[].model_info.max_output_tokens", Ignored(CAPABILITIES)),
    ("model_list[].model_info.supports_function_calling", Ignored(CAPABILITIES)),
    ("model_list[].model_info.supports_parallel_function_calling", Ignored(CAPABILITIES)),
    ("model_list[].model_info.supports_tool_choice", Ignored(CAPABILITIES)),
    ("model_list[].model_info.supports_vision", Ignored(CAPABILITIES)),
    ("model_list[].model_info.supports_response_schema", Ignored(CAPABILITIES)),
    ("model_list[].model_info.supports_system_messages", Ignored(CAPABILITIES)),
    ("model_list[].model_info.supports_prompt_caching", Ignored(CAPABILITIES)),
    ("model_list[].model_info.supports_reasoning", Ignored(CAPABILITIES)),
    ("model_list[].model_info.supports_audio_input", Ignored(CAPABILITIES)),
    ("model_list[].model_info.supports_audio_output", Ignored(CAPABILITIES)),
    ("model_list[].model_info.supports_pdf_input", Ignored(CAPABILITIES)),
    ("model_list[].model_info.supports_web_search", Ignored(CAPABILITIES)),
    ("model_list[].model_info.cache_read_input_token_cost", Ignored(EXTRA_PRICING)),
    ("model_list[].model_info.cache_creation_input_token_cost", Ignored(EXTRA_PRICING)),
    ("model_list[].model_info.input_cost_per_second", Ignored(EXTRA_PRICING)),
    ("model_list[].model_info.output_cost_per_second", Ignored(EXTRA_PRICING)),
    ("model_list[].model_info.input_cost_per_character", Ignored(EXTRA_PRICING)),
    ("model_list[].model_info.output_cost_per_character", Ignored(EXTRA_PRICING)),
    ("model_list[].model_info.output_cost_per_reasoning_token", Ignored(EXTRA_PRICING)),
    ("model_list[].model_info.input_cost_per_audio_token", Ignored(EXTRA_PRICING)),
    ("model_list[].model_info.output_cost_per_audio_token", Ignored(EXTRA_PRICING)),
    ("model_list[].model_info.tier", Ignored(TEAM_MODELS)),
    ("model_list[].model_info.team_id", Ignored(TEAM_MODELS)),
    ("model_list[].model_info.team_public_model_name", Ignored(TEAM_MODELS)),
    ("model_list[].model_info.access_groups", Ignored(TEAM_MODELS)),
    ("model_list[].model_info.db_model", Ignored(DB_MODELS)),
    ("model_list[].model_info.health_check_model", Ignored(HEALTH)),
    ("model_list[].model_info.health_check_timeout", Ignored(HEALTH)),
    ("model_list[].model_info.disable_background_health_check", Ignored(HEALTH)),
    // litellm_settings
    ("litellm_settings.num_retries", Implemented),
    ("litellm_settings.request_timeout", Implemented),
    ("litellm_settings.drop_params", Implemented),
    ("litellm_settings.require_auth_for_metrics_endpoint", Implemented),
    ("litellm_settings.set_verbose", Ignored(LOG_LEVEL)),
    ("litellm_settings.json_logs", Ignored(LOG_LEVEL)),
    ("litellm_settings.success_callback", Ignored(LOGGING)),
    ("litellm_settings.failure_callback", Ignored(LOGGING)),
    ("litellm_settings.callbacks", Ignored(LOGGING)),
    ("litellm_settings.service_callback", Ignored(LOGGING)),
    ("litellm_settings.service_callbacks", Ignored(LOGGING)),
    ("litellm_settings.turn_off_message_logging", Ignored(LOGGING)),
    ("litellm_settings.redact_user_api_key_info", Ignored(LOGGING)),
    ("litellm_settings.redact_messages_in_exceptions", Ignored(LOGGING)),
    ("litellm_settings.langfuse_default_tags", Ignored(LOGGING)),
    ("litellm_settings.global_disable_no_log_param", Ignored(LOGGING)),
    ("litellm_settings.telemetry", Ignored(LOGGING)),
    ("litellm_settings.prometheus_initialize_budget_metrics", Ignored(PROMETHEUS)),
    ("litellm_settings.custom_prometheus_metadata_labels", Ignored(PROMETHEUS)),
    ("litellm_settings.custom_prometheus_tags", Ignored(PROMETHEUS)),
    ("litellm_settings.prometheus_metrics_config", Ignored(PROMETHEUS)),
    ("litellm_settings.prometheus_emit_stream_label", Ignored(PROMETHEUS)),
    ("litellm_settings.disable_end_user_cost_tracking", Ignored(PROMETHEUS)),
    ("litellm_settings.disable_end_user_cost_tracking_prometheus_only", Ignored(PROMETHEUS)),
    ("litellm_settings.cache", Ignored(CACHE)),
    ("litellm_settings.cache_params", Ignored(CACHE)),
    ("litellm_settings.enable_caching_on_provider_specific_optional_params", Ignored(CACHE)),
    ("litellm_settings.fallbacks", Implemented),
    ("litellm_settings.default_fallbacks", Implemented),
    ("litellm_settings.context_window_fallbacks", Implemented),
    ("litellm_settings.content_policy_fallbacks", Implemented),
    ("litellm_settings.mcp_aliases", Ignored(MCP)),
    ("litellm_settings.modify_params", Ignored(REQUEST_TWEAKS)),
    ("litellm_settings.enable_json_schema_validation", Ignored(REQUEST_TWEAKS)),
    ("litellm_settings.enable_preview_features", Ignored(REQUEST_TWEAKS)),
    ("litellm_settings.disable_add_transform_inline_image_block", Ignored(REQUEST_TWEAKS)),
    ("litellm_settings.disable_copilot_system_to_assistant", Ignored(REQUEST_TWEAKS)),
    ("litellm_settings.use_chat_completions_url_for_anthropic_messages", Ignored(REQUEST_TWEAKS)),
    ("litellm_settings.always_include_stream_usage", Ignored(REQUEST_TWEAKS)),
    ("litellm_settings.disable_hf_tokenizer_download", Ignored(REQUEST_TWEAKS)),
    ("litellm_settings.force_ipv4", Ignored(TRANSPORT)),
    ("litellm_settings.ssl_verify", Ignored(TRANSPORT)),
    ("litellm_settings.ssl_certificate", Ignored(TRANSPORT)),
    ("litellm_settings.use_aiohttp_transport", Ignored(TRANSPORT)),
    ("litellm_settings.disable_aiohttp_transport", Ignored(TRANSPORT)),
    ("litellm_settings.key_generation_settings", Ignored(KEY_DEFAULTS)),
    ("litellm_settings.default_key_generate_params", Ignored(KEY_DEFAULTS)),
    ("litellm_settings.upperbound_key_generate_params", Ignored(KEY_DEFAULTS)),
    ("litellm_settings.enable_key_alias_format_validation", Ignored(KEY_DEFAULTS)),
    ("litellm_settings.default_team_settings", Ignored(BUDGETS)),
    ("litellm_settings.default_internal_user_params", Ignored(BUDGETS)),
    ("litellm_settings.max_internal_user_budget", Ignored(BUDGETS)),
    ("litellm_settings.internal_user_budget_duration", Ignored(BUDGETS)),
    ("litellm_settings.max_end_user_budget", Ignored(BUDGETS)),
    ("litellm_settings.max_budget", Ignored(BUDGETS)),
    ("litellm_settings.budget_duration", Ignored(BUDGETS)),
    ("litellm_settings.public_model_groups", Ignored(UI)),
    ("litellm_settings.public_model_groups_links", Ignored(UI)),
    // router_settings
    ("router_settings.routing_strategy", Implemented),
    ("router_settings.num_retries", Implemented),
    ("router_settings.timeout", Implemented),
    ("router_settings.stream_timeout", Implemented),
    ("router_settings.allowed_fails", Implemented),
    ("router_settings.cooldown_time", Implemented),
    ("router_settings.retry_after", Implemented),
    ("router_settings.fallbacks", Implemented),
    ("router_settings.context_window_fallbacks", Implemented),
    ("router_settings.content_policy_fallbacks", Implemented),
    ("router_settings.redis_host", Implemented),
    ("router_settings.redis_port", Implemented),
    ("router_settings.redis_password", Implemented),
    ("router_settings.redis_db", Implemented),
    ("router_settings.redis_url", Implemented),
    ("router_settings.cache_kwargs", Ignored(CACHE)),
    ("router_settings.cache_responses", Ignored(CACHE)),
    ("router_settings.caching_groups", Ignored(CACHE)),
    ("router_settings.client_ttl", Ignored(TRANSPORT)),
    ("router_settings.enable_tag_filtering", Ignored(TAG_ROUTING)),
    ("router_settings.tag_filtering_match_any", Ignored(TAG_ROUTING)),
    ("router_settings.tag_routing_prefix", Ignored(TAG_ROUTING)),
    ("router_settings.retry_policy", Ignored(ROUTER_POLICIES)),
    ("router_settings.allowed_fails_policy", Ignored(ROUTER_POLICIES)),
    ("router_settings.model_group_retry_policy", Ignored(ROUTER_POLICIES)),
    ("router_settings.disable_cooldowns", Ignored(ROUTER_POLICIES)),
    ("router_settings.max_retries", Ignored(ROUTER_POLICIES)),
    ("router_settings.max_fallbacks", Ignored(ROUTER_POLICIES)),
    ("router_settings.default_fallbacks", Implemented),
    ("router_settings.model_group_alias", Implemented),
    ("router_settings.model_group_affinity_config", Ignored(ROUTER_EXTRAS)),
    ("router_settings.routing_strategy_args", Ignored(ROUTER_EXTRAS)),
    ("router_settings.routing_groups", Ignored(ROUTER_EXTRAS)),
    ("router_settings.enable_pre_call_checks", Ignored(ROUTER_EXTRAS)),
    ("router_settings.enable_pre_call_check", Ignored(ROUTER_EXTRAS)),
    ("router_settings.optional_pre_call_checks", Ignored(ROUTER_EXTRAS)),
    ("router_settings.deployment_affinity_ttl_seconds", Ignored(ROUTER_EXTRAS)),
    ("router_settings.default_max_parallel_requests", Ignored(ROUTER_EXTRAS)),
    ("router_settings.default_priority", Ignored(ROUTER_EXTRAS)),
    ("router_settings.polling_interval", Ignored(ROUTER_EXTRAS)),
    ("router_settings.default_litellm_params", Ignored(ROUTER_EXTRAS)),
    ("router_settings.provider_budget_config", Ignored(ROUTER_EXTRAS)),
    ("router_settings.ignore_invalid_deployments", Ignored(ROUTER_EXTRAS)),
    ("router_settings.router_general_settings", Ignored(ROUTER_EXTRAS)),
    ("router_settings.debug_level", Ignored(LOG_LEVEL)),
    ("router_settings.set_verbose", Ignored(LOG_LEVEL)),
    ("router_settings.alerting_config", Ignored(ALERTING)),
    ("router_settings.assistants_config", Ignored(OTHER_APIS)),
    ("router_settings.search_tools", Ignored(OTHER_APIS)),
    ("router_settings.guardrail_list", Ignored(GUARDRAILS)),
    // general_settings
    ("general_settings.master_key", Implemented),
    ("general_settings.allow_unauthenticated", Implemented),
    ("general_settings.database_url", Implemented),
    ("general_settings.key_management_system", Implemented),
    ("general_settings.key_management_settings", Section),
    ("general_settings.max_request_size_mb", Implemented),
    ("general_settings.metrics_key", Implemented),
    ("general_settings.public_readiness_details", Implemented),
    ("general_settings.ui", Implemented),
    ("general_settings.use_google_kms", Ignored(SECRET_MANAGERS)),
    ("general_settings.use_azure_key_vault", Ignored(SECRET_MANAGERS)),
    ("general_settings.completion_model", Ignored(DEFAULT_MODELS)),
    ("general_settings.embedding_model", Ignored(DEFAULT_MODELS)),
    ("general_settings.image_generation_model", Ignored(DEFAULT_MODELS)),
    ("general_settings.moderation_model", Ignored(DEFAULT_MODELS)),
    ("general_settings.infer_model_from_keys", Ignored(DEFAULT_MODELS)),
    ("general_settings.database_connection_pool_limit", Implemented),
    ("general_settings.database_connection_timeout", Ignored(DB_TUNING)),
    ("general_settings.database_connect_timeout", Ignored(DB_TUNING)),
    ("general_settings.database_socket_timeout", Ignored(DB_TUNING)),
    ("general_settings.database_extra_connection_params", Ignored(DB_TUNING)),
    ("general_settings.database_disable_prepared_statements", Ignored(DB_TUNING)),
    ("general_settings.database_type", Ignored(DB_TUNING)),
    ("general_settings.database_args", Ignored(DB_TUNING)),
    ("general_settings.allow_requests_on_db_unavailable", Ignored(DB_TUNING)),
    ("general_settings.disable_prisma_schema_update", Ignored(DB_TUNING)),
    ("general_settings.store_model_in_db", Ignored(DB_MODELS)),
    ("general_settings.supported_db_objects", Ignored(DB_MODELS)),
    ("general_settings.proxy_config_reload_interval_seconds", Ignored(DB_MODELS)),
    ("general_settings.custom_auth", Ignored(AUTH)),
    ("general_settings.custom_key_generate", Ignored(AUTH)),
    ("general_settings.enable_jwt_auth", Ignored(AUTH)),
    ("general_settings.litellm_jwtauth", Ignored(AUTH)),
    ("general_settings.enable_oauth2_auth", Ignored(AUTH)),
    ("general_settings.enable_oauth2_proxy_auth", Ignored(AUTH)),
    ("general_settings.oauth2_config_mappings", Ignored(AUTH)),
    ("general_settings.litellm_key_header_name", Ignored(AUTH)),
    ("general_settings.allow_client_side_credentials", Ignored(AUTH)),
    ("general_settings.allow_user_auth", Ignored(AUTH)),
    ("general_settings.user_api_key_cache_ttl", Ignored(AUTH)),
    ("general_settings.role_permissions", Ignored(AUTH)),
    ("general_settings.service_account_settings", Ignored(AUTH)),
    ("general_settings.user_header_name", Ignored(AUTH)),
    ("general_settings.user_header_mappings", Ignored(AUTH)),
    ("general_settings.enforce_user_param", Ignored(AUTH)),
    ("general_settings.enforced_params", Ignored(AUTH)),
    ("general_settings.reject_clientside_metadata_tags", Ignored(AUTH)),
    ("general_settings.default_team_disabled", Ignored(AUTH)),
    ("general_settings.disable_responses_id_security", Ignored(AUTH)),
    ("general_settings.allowed_routes", Ignored(ROUTE_ACCESS)),
    ("general_settings.public_routes", Ignored(ROUTE_ACCESS)),
    ("general_settings.admin_only_routes", Ignored(ROUTE_ACCESS)),
    ("general_settings.allowed_ips", Ignored(ROUTE_ACCESS)),
    ("general_settings.use_x_forwarded_for", Ignored(ROUTE_ACCESS)),
    ("general_settings.user_url_validation", Ignored(ROUTE_ACCESS)),
    ("general_settings.user_url_allowed_hosts", Ignored(ROUTE_ACCESS)),
    ("general_settings.ui_access_mode", Ignored(UI)),
    ("general_settings.custom_sso", Ignored(UI)),
    ("general_settings.disable_master_key_return", Ignored(UI)),
    ("general_settings.enable_public_model_hub", Ignored(UI)),
    ("general_settings.plugins", Ignored(UI)),
    ("general_settings.alerting", Ignored(ALERTING)),
    ("general_settings.alerting_threshold", Ignored(ALERTING)),
    ("general_settings.alerting_args", Ignored(ALERTING)),
    ("general_settings.alert_types", Ignored(ALERTING)),
    ("general_settings.alert_to_webhook_url", Ignored(ALERTING)),
    ("general_settings.spend_report_frequency", Ignored(ALERTING)),
    ("general_settings.disable_spend_logs", Implemented),
    ("general_settings.disable_spend_updates", Ignored(SPEND_LOGS)),
    ("general_settings.store_prompts_in_spend_logs", Implemented),
    ("general_settings.maximum_spend_logs_retention_period", Implemented),
    ("general_settings.maximum_spend_logs_retention_interval", Implemented),
    ("general_settings.responses_retention_period", Implemented),
    ("general_settings.proxy_batch_write_at", Implemented),
    ("general_settings.disable_adding_master_key_hash_to_db", Ignored(SPEND_LOGS)),
    ("general_settings.disable_reset_budget", Ignored(BUDGETS)),
    ("general_settings.proxy_budget_rescheduler_min_time", Implemented),
    ("general_settings.proxy_budget_rescheduler_max_time", Implemented),
    ("general_settings.disable_budget_reservation", Ignored(BUDGETS)),
    ("general_settings.apply_user_budget_to_team_keys", Ignored(BUDGETS)),
    ("general_settings.max_parallel_requests", Ignored(LIMITS)),
    ("general_settings.global_max_parallel_requests", Ignored(LIMITS)),
    ("general_settings.disable_retry_on_max_parallel_request_limit_error", Ignored(LIMITS)),
    ("general_settings.max_response_size_mb", Ignored(LIMITS)),
    ("general_settings.max_batch_file_size_mb", Ignored(OTHER_APIS)),
    ("general_settings.proxy_batch_polling_interval", Ignored(OTHER_APIS)),
    ("general_settings.background_health_checks", Ignored(HEALTH)),
    ("general_settings.health_check_interval", Ignored(HEALTH)),
    ("general_settings.health_check_details", Ignored(HEALTH)),
    ("general_settings.health_check_concurrency", Ignored(HEALTH)),
    ("general_settings.pass_through_endpoints", Ignored(PASS_THROUGH)),
    ("general_settings.pass_through_request_timeout", Ignored(PASS_THROUGH)),
    ("general_settings.use_client_credentials_pass_through_routes", Ignored(PASS_THROUGH)),
    ("general_settings.forward_client_headers_to_llm_api", Ignored(FORWARDING)),
    ("general_settings.forward_openai_org_id", Ignored(FORWARDING)),
    ("general_settings.user_mcp_management_mode", Ignored(MCP)),
    ("general_settings.mcp_internal_ip_ranges", Ignored(MCP)),
    ("general_settings.mcp_trusted_proxy_ranges", Ignored(MCP)),
    ("general_settings.cancel_on_disconnect", Ignored("cancel_on_disconnect (vaultgate always cancels the upstream call when the client leaves)")),
    ("general_settings.otel", Ignored(LOGGING)),
    ("general_settings.litellm_license", Ignored(ENTERPRISE)),
    ("general_settings.control_plane_url", Ignored(ENTERPRISE)),
    ("general_settings.coordination_redis", Ignored(COORDINATION)),
    // general_settings.key_management_settings
    ("general_settings.key_management_settings.store_virtual_keys", Implemented),
    ("general_settings.key_management_settings.prefix_for_stored_virtual_keys", Implemented),
    ("general_settings.key_management_settings.access_mode", Implemented),
    ("general_settings.key_management_settings.hosted_keys", Implemented),
    ("general_settings.key_management_settings.description", Implemented),
    ("general_settings.key_management_settings.primary_secret_name", Ignored(SECRET_MANAGERS)),
    ("general_settings.key_management_settings.tags", Ignored(SECRET_MANAGERS)),
    ("general_settings.key_management_settings.custom_secret_manager", Ignored(SECRET_MANAGERS)),
    ("general_settings.key_management_settings.aws_region_name", Ignored(SECRET_MANAGERS)),
    ("general_settings.key_management_settings.aws_role_name", Ignored(SECRET_MANAGERS)),
    ("general_settings.key_management_settings.aws_session_name", Ignored(SECRET_MANAGERS)),
    ("general_settings.key_management_settings.aws_external_id", Ignored(SECRET_MANAGERS)),
    ("general_settings.key_management_settings.aws_profile_name", Ignored(SECRET_MANAGERS)),
    ("general_settings.key_management_settings.aws_web_identity_token", Ignored(SECRET_MANAGERS)),
    ("general_settings.key_management_settings.aws_sts_endpoint", Ignored(SECRET_MANAGERS)),
];

/// How `path` (with `[]` for list items) is treated, if it is in the table.
pub fn support(path: &str) -> Option<Support> {
    SETTINGS
        .iter()
        .find(|(known, _)| *known == path)
        .map(|(_, support)| *support)
}

/// The keys the table knows directly under `parent` ("" for the top level).
pub fn children(parent: &str) -> impl Iterator<Item = &'static str> + '_ {
    SETTINGS.iter().filter_map(move |(path, _)| {
        let rest = if parent.is_empty() {
            *path
        } else {
            path.strip_prefix(parent)?.strip_prefix('.')?
        };
        (!rest.contains('.') && !rest.contains("[]")).then_some(rest)
    })
}

/// The README's list of LiteLLM settings vaultgate accepts but ignores, grouped by feature in
/// the table's order.
pub fn ignored_settings_markdown() -> String {
    let mut features: Vec<(&str, Vec<&str>)> = Vec::new();
    for (path, support) in SETTINGS {
        if let Ignored(feature) = support {
            match features.iter_mut().find(|(f, _)| f == feature) {
                Some((_, paths)) => paths.push(path),
                None => features.push((feature, vec![path])),
            }
        }
    }
    let mut out = String::new();
    for (feature, paths) in features {
        let names: Vec<String> = paths.iter().map(|p| format!("`{p}`")).collect();
        out.push_str(&format!("- **{feature}**: {}\n", names.join(", ")));
    }
    out
}
