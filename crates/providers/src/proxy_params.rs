//! LiteLLM's own request-body params (its `all_litellm_params`, the router's and the proxy's):
//! the gateway reads the ones it implements (routing, mocks, dropping params) and sends none of
//! them upstream, where a strict provider would refuse an unknown field.

/// Params that carry client-side credentials or endpoints. LiteLLM refuses them unless the
/// operator allows client-side credentials, which vaultgate does not implement: they are
/// refused, never silently replaced by the deployment's own key or endpoint.
pub const CLIENT_CREDENTIALS: &[&str] = &[
    "api_key",
    "api_base",
    "base_url",
    "api_version",
    "user_config",
    "azure_ad_token",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region_name",
    "vertex_credentials",
    "vertex_project",
    "vertex_location",
];

/// Whether a top-level request member is LiteLLM's, not the provider's.
pub fn is_proxy_param(name: &str) -> bool {
    name.starts_with("litellm_")
        || name.starts_with("mock_")
        || name.starts_with("langfuse_")
        || name.starts_with("langsmith_")
        || CLIENT_CREDENTIALS.contains(&name)
        || matches!(
            name,
            // Routing: read by the gateway.
            "fallbacks"
                | "context_window_fallbacks"
                | "content_policy_fallbacks"
                | "disable_fallbacks"
                | "num_retries"
                | "max_retries"
                | "timeout"
                | "request_timeout"
                | "force_timeout"
                | "stream_timeout"
                | "drop_params"
                | "additional_drop_params"
                // Logging, caching, budgets, prompt management: LiteLLM's features.
                | "metadata"
                | "tags"
                | "caching"
                | "cache"
                | "ttl"
                | "no-log"
                | "cache_key"
                | "preset_cache_key"
                | "caching_groups"
                | "guardrails"
                | "proxy_server_request"
                | "secret_fields"
                | "model_info"
                | "model_list"
                | "model_group"
                | "specific_deployment"
                | "retry_policy"
                | "retry_strategy"
                | "cooldown_time"
                | "max_fallbacks"
                | "fallback_depth"
                | "fastest_response"
                | "context_window_fallback_dict"
                | "input_cost_per_token"
                | "output_cost_per_token"
                | "input_cost_per_second"
                | "output_cost_per_second"
                | "base_model"
                | "hf_model_name"
                | "custom_llm_provider"
                | "region_name"
                | "allowed_model_region"
                | "model_config"
                | "rpm"
                | "tpm"
                | "max_parallel_requests"
                | "max_budget"
                | "budget_duration"
                | "weight"
                | "prompt_id"
                | "prompt_variables"
                | "prompt_label"
                | "prompt_version"
                | "roles"
                | "final_prompt_value"
                | "initial_prompt_value"
                | "bos_token"
                | "eos_token"
                | "user_continue_message"
                | "assistant_continue_message"
                | "ensure_alternating_roles"
                | "supports_system_message"
                | "merge_reasoning_content_in_choices"
                | "use_in_pass_through"
                | "use_litellm_proxy"
                | "configurable_clientside_auth_params"
                | "allowed_openai_params"
                | "provider_specific_header"
                | "extra_headers"
                | "headers"
                | "azure"
                | "use_client"
                | "client"
                | "acompletion"
                | "atext_completion"
                | "aimg_generation"
                | "text_completion"
                | "complete_response"
                | "logger_fn"
                | "verbose"
                | "id"
                | "model_file_id_mapping"
                | "disable_add_transform_inline_image_block"
                | "turn_off_message_logging"
                | "gcs_bucket_name"
                | "gcs_path_service_account"
                | "humanloop_api_key"
                | "arize_api_key"
                | "arize_space_key"
                | "vector_store_ids"
                | "knowledge_bases"
                | "cache_control_injection_points"
        )
}
