use super::*;

const SAMPLE: &str = r#"
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: azure/my-deployment
      api_base: https://x.openai.azure.com/
      api_key: os.environ/AZURE_API_KEY
      api_version: "2024-02-01"
      rpm: 100
      timeout: 300
    model_info: {id: az-1, input_cost_per_token: 0.000001}
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4
      api_key: os.environ/ANTHROPIC_API_KEY
      some_future_param: 1
litellm_settings: {num_retries: 3, request_timeout: 600, drop_params: true, success_callback: ["x"]}
router_settings: {routing_strategy: simple-shuffle, fallbacks: [{gpt-4o: [claude]}]}
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  key_management_system: hashicorp_vault
  key_management_settings: {store_virtual_keys: true, access_mode: read_and_write, hosted_keys: [AZURE_API_KEY]}
environment_variables: {REGION: eu, PORT_NUMBER: 8080}
"#;

#[test]
fn parses_litellm_shape_and_lists_unknown_keys() -> Result<()> {
    let config = Config::parse(SAMPLE)?;
    assert_eq!(config.model_list.len(), 2);
    let azure = &config.model_list[0].litellm_params;
    assert_eq!(
        azure.api_key,
        Some(ConfigValue::Reference("AZURE_API_KEY".into()))
    );
    assert_eq!(
        azure.api_version,
        Some(ConfigValue::Literal("2024-02-01".into()))
    );
    assert_eq!(
        config.router_settings.fallbacks[0]["gpt-4o"],
        vec!["claude".to_owned()]
    );
    let ignored: Vec<(&str, u64)> = config
        .ignored
        .iter()
        .map(|i| (i.path.as_str(), i.line))
        .collect();
    assert_eq!(
        ignored,
        vec![
            ("model_list[1].litellm_params.some_future_param", 16),
            ("litellm_settings.success_callback", 17),
        ]
    );
    assert_eq!(
        config.environment_variables.get("PORT_NUMBER"),
        Some(&ConfigValue::Literal("8080".into()))
    );
    let names: Vec<_> = config.references().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["AZURE_API_KEY", "ANTHROPIC_API_KEY", "LITELLM_MASTER_KEY"]
    );
    Ok(())
}

#[test]
fn yaml_errors_name_line_and_key() {
    let err = Config::parse("model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/x\n      rpm: lots\n")
        .map(|_| ())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("line 5"), "{err}");
    assert!(err.contains("rpm"), "{err}");
}

#[test]
fn unknown_provider_prefixes_parse_and_their_secrets_are_not_needed() -> Result<()> {
    let config = Config::parse(
        "model_list:\n  - model_name: x\n    litellm_params: {model: bogus/y, api_key: os.environ/BOGUS_KEY}\n  - model_name: z\n    litellm_params: {model: azure/, api_key: os.environ/AZ}\n",
    )?;
    assert_eq!(config.model_list.len(), 2);
    assert!(config.references().is_empty());
    let empty = Config::parse("model_list:\n  - model_name: x\n    litellm_params: {model: ''}\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(empty.contains("model_list[0]"), "{empty}");
    Ok(())
}

#[test]
fn litellm_settings_fallbacks_and_group_aliases_in_both_shapes() -> Result<()> {
    let config = Config::parse(
        r#"
litellm_settings:
  fallbacks: [{a: [b]}]
  context_window_fallbacks: [{"gpt-3.5-turbo": ["gpt-3.5-turbo-large"]}]
  default_fallbacks: [c]
router_settings:
  model_group_alias: {"short": "a", "secret": {"model": "b", "hidden": true}}
"#,
    )?;
    assert_eq!(config.litellm_settings.fallbacks[0]["a"], ["b"]);
    assert_eq!(config.litellm_settings.default_fallbacks, ["c"]);
    let aliases = &config.router_settings.model_group_alias;
    assert_eq!(aliases["short"].group(), "a");
    assert!(!aliases["short"].hidden());
    assert_eq!(aliases["secret"].group(), "b");
    assert!(aliases["secret"].hidden());
    assert!(config.ignored.is_empty(), "{:?}", config.ignored);
    Ok(())
}

#[test]
fn unsupported_key_management_system_names_the_supported_ones() {
    let err = Config::parse("general_settings: {key_management_system: aws_kms}\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("aws_kms") && err.contains("hashicorp_vault"),
        "{err}"
    );
}

#[test]
fn storing_virtual_keys_needs_write_access() {
    let text = "general_settings:\n  key_management_system: hashicorp_vault\n  key_management_settings: {store_virtual_keys: true}\n";
    assert!(Config::parse(text).is_err());
}

#[test]
fn literal_secrets_never_show_in_debug() -> Result<()> {
    let config = Config::parse(
        "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, api_key: sk-very-secret}\n",
    )?;
    assert!(!format!("{config:?}").contains("sk-very-secret"));
    Ok(())
}

#[test]
fn virtual_key_prefix_always_ends_with_slash() {
    let mut settings = KeyManagementSettings::default();
    assert_eq!(settings.virtual_key_prefix(), "litellm/");
    settings.prefix_for_stored_virtual_keys = Some("teams/a".into());
    assert_eq!(settings.virtual_key_prefix(), "teams/a/");
}

#[test]
fn unset_keys_and_bases_fall_back_to_the_provider_names() -> Result<()> {
    let config = Config::parse(
        "model_list:\n  - model_name: a\n    litellm_params: {model: together_ai/m}\n  - model_name: b\n    litellm_params: {model: groq/m, api_key: os.environ/MINE, api_base: 'http://x'}\n  - model_name: c\n    litellm_params: {model: groq/m, mock_response: hi}\n",
    )?;
    let names: Vec<(String, bool)> = config
        .default_references()
        .into_iter()
        .map(|d| (d.name, d.secret))
        .collect();
    let expected = [
        ("TOGETHER_API_KEY", true),
        ("TOGETHER_AI_API_KEY", true),
        ("TOGETHERAI_API_KEY", true),
        ("TOGETHER_AI_TOKEN", true),
        ("TOGETHER_AI_API_BASE", false),
    ]
    .map(|(n, s)| (n.to_owned(), s));
    assert_eq!(names, expected);
    Ok(())
}

#[test]
fn bedrock_models_parse_with_and_without_prefix() {
    for (model, name) in [
        (
            "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (
            "bedrock/converse/us.anthropic.claude-sonnet-4-20250514-v1:0",
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
        ),
        (
            "bedrock/invoke/meta.llama3-70b-instruct-v1:0",
            "meta.llama3-70b-instruct-v1:0",
        ),
        (
            "anthropic.claude-3-haiku-20240307-v1:0",
            "anthropic.claude-3-haiku-20240307-v1:0",
        ),
        ("eu.amazon.nova-pro-v1:0", "eu.amazon.nova-pro-v1:0"),
        (
            "bedrock/arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
        ),
    ] {
        assert_eq!(
            parse_model(model),
            Ok((Provider::Bedrock, name.to_owned())),
            "{model}"
        );
    }
    for model in ["gpt-4.1", "us.gpt-4", "claude-3", "o3-mini"] {
        assert_ne!(
            parse_model(model).map(|p| p.0),
            Ok(Provider::Bedrock),
            "{model}"
        );
    }
    assert!(parse_model("bedrock/converse/").is_err());
}

#[test]
fn vault_references_parse_and_are_listed() -> Result<()> {
    let config = Config::parse(
        r#"
model_list:
  - model_name: claude
    litellm_params:
      model: bedrock/anthropic.claude-3-haiku-20240307-v1:0
      aws_access_key_id: vault://aws/creds/bedrock-role#access_key
      aws_secret_access_key: "vault://aws/creds/bedrock-role#secret_key"
      aws_session_token: vault://aws/creds/bedrock-role#security_token
      aws_region_name: os.environ/AWS_REGION
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o
      api_key: vault://secret/openai?version=3#key
"#,
    )?;
    let aws = &config.model_list[0].litellm_params.aws;
    let Some(ConfigValue::Vault(key)) = &aws.aws_access_key_id else {
        panic!("not a vault reference: {:?}", aws.aws_access_key_id);
    };
    assert_eq!(key.path(), "aws/creds/bedrock-role");
    assert_eq!(key.field(), "access_key");
    assert_eq!(key.version(), None);
    let refs = config.vault_references();
    assert_eq!(refs.len(), 4);
    assert_eq!(refs[3].0.path(), "secret/openai");
    assert_eq!(refs[3].0.version(), Some(3));
    assert_eq!(refs[3].1, "model_list[1].litellm_params.api_key");
    assert!(config.ignored.is_empty(), "{:?}", config.ignored);
    let names: Vec<_> = config.references().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["AWS_REGION"]);
    // The reference is shown, never a literal.
    assert_eq!(
        format!("{:?}", aws.aws_access_key_id),
        "Some(Vault(vault://aws/creds/bedrock-role#access_key))"
    );
    Ok(())
}

#[test]
fn malformed_vault_references_are_errors() {
    for bad in [
        "vault://aws#key",
        "vault://aws/creds/x",
        "vault://aws/creds/x#",
        "vault://aws//x#key",
        "vault://aws/../x#key",
        "vault://secret/x?version=0#key",
        "vault://secret/x?ver=1#key",
    ] {
        let text = format!(
            "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/x\n      api_key: \"{bad}\"\n"
        );
        assert!(Config::parse(&text).is_err(), "{bad}");
    }
    let text = "environment_variables: {OPENAI_API_KEY: \"vault://secret/x#key\"}\n";
    assert!(Config::parse(text).is_err());
}
