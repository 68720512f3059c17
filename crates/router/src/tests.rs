use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use http::StatusCode;

use super::*;
use vaultgate_config::Config;

mod requests;

fn router(yaml: &str) -> Router {
    Router::from_config(&Config::parse(yaml).unwrap()).unwrap()
}

fn upstream(status: u16, message: &str) -> Error {
    Error::Upstream {
        status: StatusCode::from_u16(status).unwrap(),
        body: Bytes::from(serde_json::json!({"error": {"message": message}}).to_string()),
        content_type: None,
    }
}

/// Picks `n` times from `model` (nothing tried yet) and counts picks per deployment id.
fn pick_counts(router: &Router, model: &str, n: usize) -> HashMap<String, usize> {
    let group = router.group(model).unwrap();
    let mut counts = HashMap::new();
    for _ in 0..n {
        let index = router
            .choose(group, &mut Vec::new(), &RequestRouting::default())
            .unwrap();
        *counts
            .entry(group.deployments[index].id.clone())
            .or_default() += 1;
    }
    counts
}

const TWO: &str = r#"
model_list:
  - model_name: m
    litellm_params: {model: openai/a}
    model_info: {id: a}
  - model_name: m
    litellm_params: {model: openai/b}
    model_info: {id: b}
"#;

#[test]
fn simple_shuffle_is_the_default_and_follows_weight() {
    let router = router(
        r#"
model_list:
  - model_name: m
    litellm_params: {model: openai/a, weight: 1, rpm: 900}
    model_info: {id: a}
  - model_name: m
    litellm_params: {model: openai/b, weight: 3, rpm: 100}
    model_info: {id: b}
"#,
    );
    assert_eq!(router.strategy(), Strategy::SimpleShuffle);
    let counts = pick_counts(&router, "m", 8000);
    let share_b = counts["b"] as f64 / 8000.0;
    assert!((0.72..0.78).contains(&share_b), "{counts:?}");
}

#[test]
fn simple_shuffle_falls_back_to_rpm_then_tpm_then_uniform() {
    let by_rpm = router(
        r#"
model_list:
  - model_name: m
    litellm_params: {model: openai/a, rpm: 100, tpm: 1}
    model_info: {id: a}
  - model_name: m
    litellm_params: {model: openai/b, rpm: 900, tpm: 1000}
    model_info: {id: b}
"#,
    );
    let share_b = pick_counts(&by_rpm, "m", 8000)["b"] as f64 / 8000.0;
    assert!((0.87..0.93).contains(&share_b), "{share_b}");
    let by_tpm = router(
        r#"
model_list:
  - model_name: m
    litellm_params: {model: openai/a, tpm: 1000}
    model_info: {id: a}
  - model_name: m
    litellm_params: {model: openai/b}
    model_info: {id: b}
"#,
    );
    assert_eq!(pick_counts(&by_tpm, "m", 500).get("b"), None);
    let uniform = router(TWO);
    let share_b = pick_counts(&uniform, "m", 8000)["b"] as f64 / 8000.0;
    assert!((0.46..0.54).contains(&share_b), "{share_b}");
}

#[test]
fn unknown_strategy_is_a_config_error() {
    let config = Config::parse(&format!(
        "{TWO}router_settings: {{routing_strategy: cheapest-first}}\n"
    ))
    .unwrap();
    let error = Router::from_config(&config).err().unwrap().to_string();
    assert!(error.contains("cheapest-first"), "{error}");
    // LiteLLM's other strategies start (with a warning) on simple-shuffle.
    let config = Config::parse(&format!(
        "{TWO}router_settings: {{routing_strategy: usage-based-routing-v2}}\n"
    ))
    .unwrap();
    assert_eq!(
        Router::from_config(&config).unwrap().strategy(),
        Strategy::SimpleShuffle
    );
}

#[test]
fn least_busy_picks_the_deployment_with_fewest_in_flight() {
    let router = router(&format!(
        "{TWO}router_settings: {{routing_strategy: least-busy}}\n"
    ));
    let group = router.group("m").unwrap();
    let _busy = [group.states[0].start(), group.states[0].start()];
    let _one = group.states[1].start();
    assert_eq!(pick_counts(&router, "m", 50)["b"], 50);
    let _more = [group.states[1].start(), group.states[1].start()];
    assert_eq!(pick_counts(&router, "m", 50)["a"], 50);
}

#[test]
fn latency_based_tries_unmeasured_deployments_then_the_fastest() {
    let router = router(&format!(
        "{TWO}router_settings: {{routing_strategy: latency-based-routing}}\n"
    ));
    let group = router.group("m").unwrap();
    group.states[0].record_latency(Duration::from_millis(10));
    assert_eq!(pick_counts(&router, "m", 20)["b"], 20, "untried goes first");
    group.states[1].record_latency(Duration::from_millis(500));
    assert_eq!(pick_counts(&router, "m", 20)["a"], 20);
    for _ in 0..10 {
        group.states[0].record_latency(Duration::from_secs(2));
    }
    assert_eq!(pick_counts(&router, "m", 20)["b"], 20);
}

#[test]
fn round_robin_takes_turns() {
    let router = router(&format!(
        "{TWO}router_settings: {{routing_strategy: round-robin}}\n"
    ));
    let counts = pick_counts(&router, "m", 10);
    assert_eq!((counts["a"], counts["b"]), (5, 5));
}

#[test]
fn durations_past_their_range_are_config_errors() {
    // Finite and positive, but past what a `Duration` holds: building the router panicked.
    for setting in [
        "router_settings: {cooldown_time: 1.0e30}",
        "router_settings: {retry_after: 1.0e20}",
        "router_settings: {timeout: 1.0e30}",
        "litellm_settings: {request_timeout: -1}",
    ] {
        let config = Config::parse(&format!("{TWO}{setting}\n")).unwrap();
        let error = Router::from_config(&config).err();
        assert!(
            error.is_some_and(|e| e.to_string().contains("non-negative number")),
            "{setting}"
        );
    }
}

#[test]
fn cooling_deployments_are_skipped_unless_all_are_cooling() {
    let router = router(&format!(
        "{TWO}router_settings: {{allowed_fails: 0, cooldown_time: 60}}\n"
    ));
    let group = router.group("m").unwrap();
    let policy = router.cooldown;
    assert!(group.states[0].record_failure(&policy, Instant::now(), Duration::ZERO));
    assert_eq!(pick_counts(&router, "m", 50)["b"], 50);
    // Both cooling: a request's retries try the one that comes back first (a, which failed
    // first); a new request for the group is refused with LiteLLM's 429.
    assert!(group.states[1].record_failure(
        &policy,
        Instant::now() + Duration::from_secs(1),
        Duration::ZERO
    ));
    assert_eq!(pick_counts(&router, "m", 20)["a"], 20);
    let Some(Error::RateLimited {
        message,
        retry_after,
    }) = all_cooling(group, &RequestRouting::default())
    else {
        panic!("every deployment is cooling down: refused");
    };
    assert!((59..=60).contains(&retry_after), "{retry_after}");
    assert!(
        message.starts_with("No deployments available for selected model, Try again in "),
        "{message}"
    );
    assert!(
        message.ends_with("Passed model=m. pre-call-checks=False, cooldown_list=['a', 'b']"),
        "{message}"
    );
    assert_eq!(
        classify(&Error::RateLimited {
            message,
            retry_after
        }),
        FailureKind::Transient
    );
}

#[test]
fn failures_are_classified_for_retry_cooldown_and_fallback() {
    assert_eq!(classify(&upstream(500, "boom")), FailureKind::Transient);
    assert_eq!(
        classify(&upstream(529, "overloaded")),
        FailureKind::Transient
    );
    assert_eq!(
        classify(&upstream(429, "slow down")),
        FailureKind::Transient
    );
    assert_eq!(
        classify(&Error::UpstreamTimeout("t".into())),
        FailureKind::Transient
    );
    assert_eq!(
        classify(&upstream(401, "bad key")),
        FailureKind::DeploymentAuth
    );
    assert_eq!(
        classify(&upstream(403, "nope")),
        FailureKind::DeploymentAuth
    );
    assert_eq!(
        classify(&upstream(
            400,
            "This model's maximum context length is 8192 tokens"
        )),
        FailureKind::ContextWindow
    );
    assert_eq!(
        classify(&upstream(
            400,
            "prompt is too long: 210000 tokens > 200000 maximum"
        )),
        FailureKind::ContextWindow
    );
    assert_eq!(
        classify(&upstream(
            400,
            "The response was filtered due to the prompt triggering Azure OpenAI's content management policy"
        )),
        FailureKind::ContentPolicy
    );
    assert_eq!(classify(&upstream(400, "bad param")), FailureKind::Final);
    assert_eq!(
        classify(&upstream(404, "no such model")),
        FailureKind::Final
    );
    assert_eq!(classify(&Error::bad_request("x")), FailureKind::Final);
}

/// Runs `execute` where each deployment id answers from its own queue of results (Ok when empty);
/// returns the result, the outcome and the ids called in order.
async fn run(
    router: &Router,
    model: &str,
    script: &[(&str, Error)],
) -> (Result<String>, Option<Outcome>, Vec<String>) {
    let queue: Queue = Mutex::new(
        script
            .iter()
            .map(|(id, e)| {
                (
                    (*id).to_owned(),
                    Some(match e {
                        Error::Upstream {
                            status,
                            body,
                            content_type,
                        } => Error::Upstream {
                            status: *status,
                            body: body.clone(),
                            content_type: content_type.clone(),
                        },
                        other => Error::Internal(other.to_string()),
                    }),
                )
            })
            .collect(),
    );
    run_with(router, model, &RequestRouting::default(), queue).await
}

impl HoldsSlot for String {}

type Queue = Mutex<Vec<(String, Option<Error>)>>;

async fn run_with(
    router: &Router,
    model: &str,
    request: &RequestRouting,
    queue: Queue,
) -> (Result<String>, Option<Outcome>, Vec<String>) {
    let calls = Mutex::new(Vec::new());
    let Some(group) = router.resolve(model) else {
        return (Err(unknown_model(model)), None, Vec::new());
    };
    let (result, outcome) = router
        .execute(&group, request, |deployment| {
            calls.lock().unwrap().push(deployment.id.clone());
            let mut queue = queue.lock().unwrap();
            let error = queue
                .iter()
                .position(|(id, _)| *id == deployment.id)
                .and_then(|at| queue.remove(at).1);
            async move {
                match error {
                    Some(error) => Err(error),
                    None => Ok(deployment.id.clone()),
                }
            }
        })
        .await;
    (result, outcome, calls.into_inner().unwrap())
}

const RETRYING: &str = r#"
model_list:
  - model_name: m
    litellm_params: {model: openai/a}
    model_info: {id: a}
  - model_name: m
    litellm_params: {model: openai/b}
    model_info: {id: b}
  - model_name: big
    litellm_params: {model: openai/big}
    model_info: {id: big}
  - model_name: safe
    litellm_params: {model: openai/safe}
    model_info: {id: safe}
router_settings:
  routing_strategy: round-robin
  num_retries: 1
  fallbacks: [{m: [safe]}]
  context_window_fallbacks: [{m: [big]}]
"#;

#[tokio::test]
async fn a_transient_failure_is_retried_on_the_other_deployment() {
    let router = router(RETRYING);
    let (result, outcome, calls) = run(&router, "m", &[("a", upstream(500, "x"))]).await;
    let outcome = outcome.unwrap();
    match calls[0].as_str() {
        "a" => {
            assert_eq!(calls, ["a", "b"]);
            assert_eq!(result.unwrap(), "b");
            assert_eq!((outcome.deployment.id.as_str(), outcome.attempts), ("b", 2));
        }
        _ => assert_eq!((calls.len(), outcome.attempts), (1, 1)),
    }
}

#[tokio::test]
async fn retries_exhausted_lead_to_the_general_fallback() {
    let router = router(RETRYING);
    let (result, outcome, calls) = run(
        &router,
        "m",
        &[("a", upstream(503, "x")), ("b", upstream(429, "x"))],
    )
    .await;
    assert_eq!(result.unwrap(), "safe");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2], "safe");
    assert_eq!(outcome.unwrap().attempts, 3);
}

#[tokio::test]
async fn context_window_errors_go_to_the_context_window_fallback_without_retry() {
    let router = router(RETRYING);
    let too_long = || upstream(400, "This model's maximum context length is 10 tokens");
    let (result, outcome, calls) = run(&router, "m", &[("a", too_long()), ("b", too_long())]).await;
    assert_eq!(result.unwrap(), "big");
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(outcome.unwrap().attempts, 2);
}

#[tokio::test]
async fn client_errors_are_neither_retried_nor_fallen_back() {
    let router = router(RETRYING);
    let (result, outcome, calls) = run(
        &router,
        "m",
        &[("a", upstream(400, "bad")), ("b", upstream(400, "bad"))],
    )
    .await;
    assert_eq!(result.unwrap_err().status(), StatusCode::BAD_REQUEST);
    assert_eq!(calls.len(), 1);
    assert_eq!(outcome.unwrap().attempts, 1);
}

#[tokio::test]
async fn a_refused_key_moves_to_another_deployment_and_counts_as_its_failure() {
    let router = router(&RETRYING.replace("num_retries: 1", "num_retries: 3\n  allowed_fails: 0"));
    let (result, _, calls) = run(
        &router,
        "m",
        &[
            ("a", upstream(401, "bad key")),
            ("b", upstream(401, "bad key")),
        ],
    )
    .await;
    // Both refused: no third try of a refused key in this group, the general fallback serves.
    assert_eq!(result.unwrap(), "safe");
    assert_eq!(calls.len(), 3, "{calls:?}");
    let group = router.group("m").unwrap();
    let now = Instant::now();
    assert!(group.states.iter().all(|s| s.cooling_until(now).is_some()));
}

#[tokio::test]
async fn no_retries_when_none_are_configured() {
    let router = router(
        r#"
model_list:
  - model_name: m
    litellm_params: {model: openai/a}
    model_info: {id: a}
  - model_name: m
    litellm_params: {model: openai/b}
    model_info: {id: b}
"#,
    );
    assert_eq!(router.group("m").unwrap().num_retries(), 0);
    let (result, outcome, calls) = run(
        &router,
        "m",
        &[("a", upstream(500, "x")), ("b", upstream(500, "x"))],
    )
    .await;
    assert!(result.is_err());
    assert_eq!((calls.len(), outcome.unwrap().attempts), (1, 1));
}

#[test]
fn retry_budget_comes_from_router_then_litellm_then_deployments() {
    let with = |extra: &str| {
        router(&format!(
            r#"
model_list:
  - model_name: m
    litellm_params: {{model: openai/a, max_retries: 4}}
{extra}"#
        ))
        .group("m")
        .unwrap()
        .num_retries()
    };
    assert_eq!(with(""), 4);
    assert_eq!(with("litellm_settings: {num_retries: 2}\n"), 2);
    assert_eq!(
        with("litellm_settings: {num_retries: 2}\nrouter_settings: {num_retries: 1}\n"),
        1
    );
}

#[test]
fn backoff_is_jittered_and_capped() {
    for retry in 0..20 {
        assert!(backoff(retry, false) <= MAX_BACKOFF);
        assert!(backoff(retry, true) <= BASE_BACKOFF);
    }
}

#[test]
fn a_required_region_is_the_only_one_chosen_even_after_every_deployment_was_tried() {
    let router = router(
        r#"
model_list:
  - model_name: m
    litellm_params: {model: openai/a, region_name: eu}
    model_info: {id: a}
  - model_name: m
    litellm_params: {model: openai/b, region_name: us}
    model_info: {id: b}
  - model_name: m
    litellm_params: {model: openai/c}
    model_info: {id: c}
"#,
    );
    let group = router.group("m").unwrap();
    let eu = RequestRouting {
        allowed_region: Some("eu".into()),
        ..RequestRouting::default()
    };
    let mut tried = Vec::new();
    for _ in 0..5 {
        let index = router.choose(group, &mut tried, &eu).unwrap();
        assert_eq!(group.deployments[index].id, "a");
        tried.push(index);
    }
    let nowhere = RequestRouting {
        allowed_region: Some("ap".into()),
        ..RequestRouting::default()
    };
    assert_eq!(router.choose(group, &mut Vec::new(), &nowhere), None);
}

#[test]
fn a_pinned_deployment_is_the_only_one_chosen() {
    let router = router(
        r#"
model_list:
  - model_name: m
    litellm_params: {model: openai/a}
    model_info: {id: a}
  - model_name: m
    litellm_params: {model: openai/b}
    model_info: {id: b}
"#,
    );
    let group = router.group("m").unwrap();
    let pinned = RequestRouting {
        only_deployment: Some("b".into()),
        ..RequestRouting::default()
    };
    let mut tried = Vec::new();
    for _ in 0..5 {
        let index = router.choose(group, &mut tried, &pinned).unwrap();
        assert_eq!(group.deployments[index].id, "b");
        tried.push(index);
    }
    let gone = RequestRouting {
        only_deployment: Some("c".into()),
        ..RequestRouting::default()
    };
    assert_eq!(router.choose(group, &mut Vec::new(), &gone), None);
}
