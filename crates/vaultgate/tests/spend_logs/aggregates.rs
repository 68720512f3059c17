//! The aggregates over the rows [`super::spend_logs`] makes: `/global/spend/*` and LiteLLM's
//! series on `/metrics`.

use serde_json::{Value, json};
use vaultgate_testkit::Gateway;

use super::plane::{As, MASTER, bad, ok};
use super::{GPT_A_COST, Keys};

fn close(value: &Value, expected: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-9)
}

/// `/global/spend/*` over the six requests of [`spend_logs`].
pub(super) async fn global_aggregates(admin: &As<'_>, user_one: &As<'_>, keys: &Keys, day: &str) {
    let (s, daily) = admin.get("/global/spend/logs").await;
    ok(s, &daily);
    assert_eq!(daily[0]["date"], day, "{daily}");
    assert!(close(&daily[0]["spend"], 3.0 * GPT_A_COST), "{daily}");
    let (s, daily) = admin
        .get(&format!("/global/spend/logs?api_key={}", keys.one))
        .await;
    ok(s, &daily);
    assert_eq!(daily.as_array().unwrap().len(), 1, "{daily}");
    assert_eq!(daily[0]["api_key"], keys.one_hash.as_str());
    assert!(close(&daily[0]["spend"], 2.0 * GPT_A_COST), "{daily}");

    let (s, top) = admin.get("/global/spend/keys?limit=2").await;
    ok(s, &top);
    assert_eq!(top.as_array().unwrap().len(), 2, "{top}");
    assert_eq!(top[0]["api_key"], keys.one_hash.as_str());
    assert_eq!(top[0]["key_alias"], "k-one");
    assert!(close(&top[0]["total_spend"], 2.0 * GPT_A_COST), "{top}");
    let (s, models) = admin.get("/global/spend/models").await;
    ok(s, &models);
    assert_eq!(models[0]["model"], "gpt-a-upstream", "{models}");
    assert!(
        close(&models[0]["total_spend"], 3.0 * GPT_A_COST),
        "{models}"
    );
    assert_eq!(models[0]["total_tokens"], 36);

    let (s, teams) = admin.get("/global/spend/teams").await;
    ok(s, &teams);
    assert_eq!(teams["teams"], json!(["Unassigned", "eng"]), "{teams}");
    assert_eq!(
        teams["total_spend_per_team"][0]["team_id"], "eng",
        "{teams}"
    );
    assert!(
        close(&teams["total_spend_per_team"][0]["total_spend"], 0.38),
        "{teams}"
    );
    assert_eq!(teams["daily_spend"][0]["date"], day);
    assert!(close(&teams["daily_spend"][0]["eng"], 0.38), "{teams}");

    let report = |group_by: &str| {
        format!("/global/spend/report?start_date={day}&end_date={day}&group_by={group_by}")
    };
    let (s, by_team) = admin.get(&report("team")).await;
    ok(s, &by_team);
    assert_eq!(by_team[0]["group_by_day"], day, "{by_team}");
    let eng = by_team[0]["teams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["team_name"] == "eng")
        .cloned()
        .unwrap_or_else(|| panic!("no team eng in {by_team}"));
    assert!(close(&eng["total_spend"], 2.0 * GPT_A_COST), "{eng}");
    assert!(
        eng["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["model"] == "gpt-a-upstream"
                && m["api_key"] == keys.one_hash.as_str()
                && m["total_tokens"] == 24),
        "{eng}"
    );
    let (s, by_customer) = admin.get(&report("customer")).await;
    ok(s, &by_customer);
    let customers = by_customer[0]["customers"].as_array().unwrap();
    let customer = customers
        .iter()
        .find(|c| c["customer"] == "cust-1")
        .unwrap();
    assert!(close(&customer["total_spend"], GPT_A_COST), "{by_customer}");
    let (s, by_key) = admin.get(&report("api_key")).await;
    ok(s, &by_key);
    assert_eq!(by_key[0]["api_key"], keys.one_hash.as_str(), "{by_key}");
    assert!(
        close(&by_key[0]["total_cost"], 2.0 * GPT_A_COST),
        "{by_key}"
    );
    assert_eq!(by_key[0]["total_input_tokens"], 10);
    assert_eq!(by_key[0]["total_output_tokens"], 14);
    assert_eq!(
        by_key[0]["model_details"].as_array().unwrap().len(),
        3,
        "{by_key}"
    );
    let (s, by_model) = admin.get(&report("model")).await;
    ok(s, &by_model);
    assert_eq!(by_model[0]["model"], "gpt-a-upstream", "{by_model}");
    assert!(
        close(&by_model[0]["total_cost"], 3.0 * GPT_A_COST),
        "{by_model}"
    );
    let (s, b) = admin.get(&report("weekday")).await;
    bad(s, &b, 400, "group_by");
    let (s, b) = admin.get("/global/spend/report").await;
    bad(s, &b, 400, "Please provide start_date and end_date");

    let (s, tags) = admin
        .get(&format!(
            "/global/spend/tags?start_date={day}&end_date={day}&tags=prod"
        ))
        .await;
    ok(s, &tags);
    assert_eq!(tags["spend_per_tag"].as_array().unwrap().len(), 1, "{tags}");
    assert_eq!(tags["spend_per_tag"][0]["name"], "prod");
    assert_eq!(tags["spend_per_tag"][0]["log_count"], 1);

    // An internal user sees their own user's spend; admin reports are for admins.
    let (s, own) = user_one.get("/global/spend/logs").await;
    ok(s, &own);
    assert!(
        own.as_array().unwrap().iter().all(|d| d["user"] == "u1"),
        "{own}"
    );
    let (s, own) = user_one.get("/global/spend/keys").await;
    ok(s, &own);
    assert_eq!(own.as_array().unwrap().len(), 1, "{own}");
    assert_eq!(own[0]["api_key"], keys.one_hash.as_str());
    let (s, b) = user_one.get(&report("team")).await;
    assert_eq!(s, 401, "{b}");
}

/// The sum of the series `name` whose labels include every one of `labels` (`None`: none).
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// LiteLLM's series on `/metrics`, with its names and labels, beside ours.
pub(super) async fn litellm_metrics(gateway: &Gateway, keys: &Keys) {
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", gateway.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let one = keys.one_hash.as_str();
    let key = [("hashed_api_key", one), ("api_key_alias", "k-one")];
    let team = [("team", "t1"), ("team_alias", "eng"), ("user", "u1")];
    let ok_requests = metric(
        &text,
        "litellm_proxy_total_requests_metric_total",
        &[
            key[0],
            key[1],
            team[0],
            team[1],
            team[2],
            ("requested_model", "gpt-a"),
            ("status_code", "200"),
        ],
    );
    assert_eq!(ok_requests, Some(2.0), "{text}");
    let failed = metric(
        &text,
        "litellm_proxy_failed_requests_metric_total",
        &[
            key[0],
            ("exception_status", "500"),
            ("exception_class", "InternalServerError"),
        ],
    );
    assert_eq!(failed, Some(1.0), "{text}");
    let refused = metric(
        &text,
        "litellm_proxy_failed_requests_metric_total",
        &[
            key[0],
            ("requested_model", "gpt-nope"),
            ("exception_class", "BadRequestError"),
        ],
    );
    assert_eq!(refused, Some(1.0), "{text}");
    let labels = [
        key[0],
        key[1],
        ("model", "gpt-a-upstream"),
        ("end_user", "cust-1"),
    ];
    assert_eq!(
        metric(&text, "litellm_requests_metric_total", &labels),
        Some(1.0),
        "{text}"
    );
    let spend = metric(&text, "litellm_spend_metric_total", &labels).unwrap();
    assert!((spend - GPT_A_COST).abs() < 1e-9, "{spend}");
    for (name, value) in [
        ("litellm_total_tokens_metric_total", 12.0),
        ("litellm_total_tokens_total", 12.0),
        ("litellm_input_tokens_metric_total", 5.0),
        ("litellm_output_tokens_metric_total", 7.0),
    ] {
        assert_eq!(metric(&text, name, &labels), Some(value), "{name}: {text}");
    }
    let remaining = metric(&text, "litellm_remaining_api_key_budget_metric", &key).unwrap();
    assert!(
        (remaining - (10.0 - 2.0 * GPT_A_COST)).abs() < 1e-9,
        "{remaining}"
    );
    assert_eq!(
        metric(&text, "litellm_api_key_max_budget_metric", &key),
        Some(10.0)
    );
    let remaining = metric(&text, "litellm_remaining_team_budget_metric", &team[..2]).unwrap();
    assert!(
        (remaining - (100.0 - 2.0 * GPT_A_COST)).abs() < 1e-9,
        "{remaining}"
    );
    assert_eq!(
        metric(&text, "litellm_team_max_budget_metric", &team[..2]),
        Some(100.0)
    );
    let healthy = metric(
        &text,
        "litellm_deployment_state",
        &[
            ("litellm_model_name", "gpt-a-upstream"),
            ("api_provider", "openai"),
        ],
    );
    assert_eq!(healthy, Some(0.0), "{text}");
    let failing = metric(
        &text,
        "litellm_deployment_state",
        &[("litellm_model_name", "gpt-b-upstream")],
    )
    .unwrap();
    assert!(
        failing >= 1.0,
        "the deployment that answered 500 is not healthy: {failing}"
    );
    for histogram in [
        "litellm_request_total_latency_metric",
        "litellm_llm_api_latency_metric",
    ] {
        assert!(
            metric(
                &text,
                &format!("{histogram}_bucket"),
                &[key[0], ("le", "+Inf")]
            )
            .is_some(),
            "{histogram}: {text}"
        );
    }
    assert!(
        text.contains("vaultgate_requests_total"),
        "ours stay beside them"
    );
    for secret in [keys.one.as_str(), keys.two.as_str(), MASTER] {
        assert!(!text.contains(secret), "a raw key is in the metrics");
    }
}
