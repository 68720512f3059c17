//! Names (wildcards, aliases), unavailable deployments, LiteLLM's fallback settings and the
//! request-level router params.

use super::*;

fn script(entries: &[(&str, Error)]) -> Queue {
    Mutex::new(
        entries
            .iter()
            .map(|(id, e)| ((*id).to_owned(), Some(Error::Internal(e.to_string()))))
            .collect(),
    )
}

const NAMES: &str = r#"
model_list:
  - model_name: exact
    litellm_params: {model: openai/exact-upstream}
    model_info: {id: exact}
  - model_name: "*"
    litellm_params: {model: openai/*}
    model_info: {id: any}
  - model_name: "anthropic/*"
    litellm_params: {model: "anthropic/*"}
    model_info: {id: claude}
  - model_name: "team-*"
    litellm_params: {model: openai/team-model}
    model_info: {id: team}
  - model_name: "groq/*"
    litellm_params: {model: "no-such-provider/*"}
    model_info: {id: groq}
router_settings:
  model_group_alias: {short: exact, hidden-alias: {model: exact, hidden: true}}
"#;

#[test]
fn exact_names_then_aliases_then_the_most_specific_wildcard() {
    let router = router(NAMES);
    let exact = router.resolve("exact").unwrap();
    assert_eq!(exact.deployments[0].id, "exact");
    assert_eq!(router.resolve("short").unwrap().name, "exact");
    assert_eq!(router.resolve("hidden-alias").unwrap().name, "exact");

    let claude = router.resolve("anthropic/claude-x").unwrap();
    assert_eq!(claude.name, "anthropic/claude-x");
    assert_eq!(claude.pattern.as_deref(), Some("anthropic/*"));
    assert_eq!(claude.deployments[0].id, "claude");
    assert_eq!(claude.deployments[0].upstream_model, "claude-x");
    assert_eq!(
        claude.deployments[0].provider,
        vaultgate_config::Provider::Anthropic
    );

    let team = router.resolve("team-blue").unwrap();
    assert_eq!(team.deployments[0].upstream_model, "team-model");

    let any = router.resolve("gpt-4o-mini").unwrap();
    assert_eq!(any.deployments[0].id, "any");
    assert_eq!(any.deployments[0].upstream_model, "gpt-4o-mini");
    assert_eq!(any.deployments[0].model_name, "gpt-4o-mini");

    // A wildcard route of an unsupported provider matches, with nothing to call.
    let groq = router.resolve("groq/llama").unwrap();
    assert!(groq.deployments.is_empty());
    assert_eq!(groq.unavailable[0].provider, "no-such-provider");

    assert_eq!(
        router.models(),
        ["exact", "*", "anthropic/*", "team-*", "groq/*", "short"]
    );
}

#[test]
fn without_a_catch_all_a_bare_name_matches_its_providers_route() {
    let router = router(
        r#"
model_list:
  - model_name: "openai/*"
    litellm_params: {model: "openai/*"}
"#,
    );
    assert_eq!(
        router.resolve("gpt-4o").unwrap().deployments[0].upstream_model,
        "gpt-4o"
    );
    assert_eq!(
        router.resolve("openai/gpt-4o").unwrap().deployments[0].upstream_model,
        "gpt-4o"
    );
    assert!(router.resolve("claude-3").is_none());
}

#[tokio::test]
async fn concrete_groups_of_a_route_share_its_cooldown() {
    let router = router(&format!("{NAMES}  allowed_fails: 0\n  cooldown_time: 60\n"));
    let (result, _, _) = run(&router, "gpt-a", &[("any", upstream(500, "x"))]).await;
    assert!(result.is_err());
    let other = router.resolve("gpt-b").unwrap();
    assert!(
        other
            .state(0)
            .unwrap()
            .cooling_until(Instant::now())
            .is_some()
    );
}

const UNAVAILABLE: &str = r#"
model_list:
  - model_name: sage
    litellm_params: {model: sagemaker-x/llama}
    model_info: {id: sage-1}
  - model_name: mixed
    litellm_params: {model: sagemaker-x/llama}
    model_info: {id: mixed-sage}
  - model_name: mixed
    litellm_params: {model: openai/ok}
    model_info: {id: mixed-ok}
  - model_name: backup
    litellm_params: {model: openai/backup}
    model_info: {id: backup}
"#;

#[tokio::test]
async fn an_unavailable_group_answers_501_naming_the_provider_and_may_fall_back() {
    let router = router(UNAVAILABLE);
    let (result, outcome, calls) = run(&router, "sage", &[]).await;
    let error = result.unwrap_err();
    assert_eq!(error.status(), StatusCode::NOT_IMPLEMENTED);
    assert!(error.to_string().contains("sagemaker-x"), "{error}");
    assert!(outcome.is_none() && calls.is_empty());

    let (result, _, calls) = run(&router, "mixed", &[]).await;
    assert_eq!(result.unwrap(), "mixed-ok");
    assert_eq!(calls, ["mixed-ok"]);
    assert_eq!(
        router
            .unavailable()
            .map(|u| u.id.as_str())
            .collect::<Vec<_>>(),
        ["sage-1", "mixed-sage"]
    );

    let router = super::router(&format!(
        "{UNAVAILABLE}router_settings: {{fallbacks: [{{sage: [backup]}}]}}\n"
    ));
    let (result, outcome, _) = run(&router, "sage", &[]).await;
    assert_eq!(result.unwrap(), "backup");
    assert_eq!(outcome.unwrap().fallbacks, 1);
}

const FALLING: &str = r#"
model_list:
  - model_name: m
    litellm_params: {model: openai/m}
    model_info: {id: m}
  - model_name: big
    litellm_params: {model: openai/big}
    model_info: {id: big}
  - model_name: safe
    litellm_params: {model: openai/safe}
    model_info: {id: safe}
  - model_name: other
    litellm_params: {model: openai/other}
    model_info: {id: other}
"#;

#[tokio::test]
async fn litellm_settings_fallbacks_and_default_fallbacks_are_read() {
    let router = router(&format!(
        "{FALLING}litellm_settings:\n  num_retries: 0\n  fallbacks: [{{m: [safe]}}]\n  context_window_fallbacks: [{{m: [big]}}]\n  default_fallbacks: [other]\n"
    ));
    let (result, _, _) = run(&router, "m", &[("m", upstream(500, "x"))]).await;
    assert_eq!(result.unwrap(), "safe");
    let too_long = upstream(400, "maximum context length is 3 tokens");
    let (result, _, _) = run(&router, "m", &[("m", too_long)]).await;
    assert_eq!(result.unwrap(), "big");
    // A group without its own list takes default_fallbacks.
    let (result, outcome, _) = run(&router, "safe", &[("safe", upstream(503, "x"))]).await;
    assert_eq!(result.unwrap(), "other");
    let outcome = outcome.unwrap();
    assert_eq!((outcome.fallbacks, outcome.attempts), (1, 2));

    // router_settings wins over litellm_settings.
    let router = super::router(&format!(
        "{FALLING}litellm_settings: {{fallbacks: [{{m: [safe]}}]}}\nrouter_settings: {{fallbacks: [{{m: [other]}}]}}\n"
    ));
    let (result, _, _) = run(&router, "m", &[("m", upstream(500, "x"))]).await;
    assert_eq!(result.unwrap(), "other");
}

#[tokio::test]
async fn request_fallbacks_retries_and_mock_failures() {
    let router = router(&format!(
        "{FALLING}router_settings: {{num_retries: 0, fallbacks: [{{m: [safe]}}]}}\n"
    ));
    // The client's list replaces the configured one; disable_fallbacks turns them off.
    let request = RequestRouting {
        fallbacks: Some(vec!["other".into()]),
        ..RequestRouting::default()
    };
    let queue = script(&[]);
    let (result, _, _) = run_with(&router, "m", &request, queue).await;
    assert_eq!(result.unwrap(), "m", "no failure, no fallback");
    let failing = || Mutex::new(vec![("m".to_owned(), Some(upstream(500, "x")))]);
    let (result, _, _) = run_with(&router, "m", &request, failing()).await;
    assert_eq!(result.unwrap(), "other");
    let off = RequestRouting {
        disable_fallbacks: true,
        ..RequestRouting::default()
    };
    let (result, _, _) = run_with(&router, "m", &off, failing()).await;
    assert!(result.is_err());

    // mock_testing_fallbacks: the requested group fails without a call, the fallback serves.
    let mock = RequestRouting {
        mock: MockFailures {
            fallbacks: true,
            ..MockFailures::default()
        },
        ..RequestRouting::default()
    };
    let (result, outcome, calls) = run_with(&router, "m", &mock, script(&[])).await;
    assert_eq!(result.unwrap(), "safe");
    assert_eq!(calls, ["safe"]);
    assert_eq!(outcome.unwrap().attempts, 2);

    // mock_testing_rate_limit_error: the first attempt fails with 429, the retry serves.
    let rate = RequestRouting {
        num_retries: Some(2),
        mock: MockFailures {
            rate_limit_error: true,
            ..MockFailures::default()
        },
        ..RequestRouting::default()
    };
    let (result, outcome, calls) = run_with(&router, "m", &rate, script(&[])).await;
    assert_eq!(result.unwrap(), "m");
    assert_eq!(calls, ["m"]);
    let outcome = outcome.unwrap();
    assert_eq!(
        (outcome.retries, outcome.max_retries, outcome.fallbacks),
        (1, 2, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn mock_timeout_waits_out_the_timeout_and_times_out() {
    let router = router(FALLING);
    let request = RequestRouting {
        timeout: Some(Duration::from_secs(3)),
        mock: MockFailures {
            timeout: true,
            ..MockFailures::default()
        },
        ..RequestRouting::default()
    };
    let started = tokio::time::Instant::now();
    let (result, _, calls) = run_with(&router, "m", &request, script(&[])).await;
    assert_eq!(result.unwrap_err().status(), StatusCode::REQUEST_TIMEOUT);
    assert!(calls.is_empty());
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}
