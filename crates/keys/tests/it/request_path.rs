//! The request path: authentication cache, expiry, models, budget, rate limits, spend batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::response::IntoResponse;
use http::StatusCode;
use serde_json::json;
use vaultgate_config::ModelInfo;
use vaultgate_core::Error;
use vaultgate_keys::{Clock, KeyRecord, KeyService};

use crate::common::{Db, Harness, s, test_options};

/// 0.001 USD per prompt token, 0.002 per completion token.
fn prices() -> ModelInfo {
    ModelInfo {
        input_cost_per_token: Some(0.001),
        output_cost_per_token: Some(0.002),
        ..ModelInfo::default()
    }
}

async fn key(h: &Harness, body: serde_json::Value) -> (String, Arc<KeyRecord>) {
    let generated = h.generate(body).await;
    let raw = s(&generated["key"]);
    let record = h.service.authenticate(&raw).await.unwrap();
    (raw, record)
}

#[tokio::test]
async fn authenticate_cache_and_invalidation() {
    let h = Harness::new(Db::Sqlite, false).await;
    let other = h.another_instance().await;
    let (raw, _) = key(&h, json!({"key_alias": "cached"})).await;
    other.authenticate(&raw).await.unwrap();

    // This instance blocks: effective here at once.
    h.post("/key/block", json!({"key": raw})).await;
    let err = h.service.authenticate(&raw).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    // The other instance serves from its cache (no store read) until its TTL.
    other.authenticate(&raw).await.unwrap();
    h.post("/key/unblock", json!({"key": raw})).await;
    h.service.authenticate(&raw).await.unwrap();

    // Unknown keys: 401 in LiteLLM's words, without the raw key.
    let err = h
        .service
        .authenticate("sk-this-key-does-not-exist")
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    let message = err.to_string();
    assert!(
        message.contains("Invalid proxy server token passed"),
        "{message}"
    );
    assert!(!message.contains("sk-this-key-does-not-exist"), "{message}");
    let err = h
        .service
        .authenticate("not-a-virtual-key")
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    // The miss is cached briefly, but creating that very key clears it on this instance.
    h.generate(json!({"key": "sk-this-key-does-not-exist"}))
        .await;
    h.service
        .authenticate("sk-this-key-does-not-exist")
        .await
        .unwrap();

    // Deleting invalidates at once here; the other instance keeps its cached copy until TTL.
    h.post("/key/delete", json!({"keys": [raw]})).await;
    assert!(h.service.authenticate(&raw).await.is_err());
    other.authenticate(&raw).await.unwrap();
    // A fresh instance reads the store: gone.
    let fresh = h.another_instance().await;
    assert!(fresh.authenticate(&raw).await.is_err());
    other.shutdown().await;
    fresh.shutdown().await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_cache_entries_are_refreshed_in_the_background() {
    let h = Harness::new(Db::Sqlite, false).await;
    // An instance whose cached records go stale at once (but may be served for an hour).
    let mut options = test_options(&h.db.url, h.clock.clone(), None);
    options.cache_ttl = std::time::Duration::ZERO;
    let eager = KeyService::open(options).await.unwrap();
    let (raw, _) = key(&h, json!({"max_budget": 5})).await;
    let (gone, _) = key(&h, json!({})).await;
    assert_eq!(
        eager.authenticate(&raw).await.unwrap().max_budget,
        Some(5.0)
    );
    eager.authenticate(&gone).await.unwrap();

    // Changed and deleted through the other instance: the eager one keeps answering from its
    // cache and picks the changes up in the background.
    h.post("/key/update", json!({"key": raw, "max_budget": 7}))
        .await;
    h.post("/key/delete", json!({"keys": [gone]})).await;
    let mut seen_update = false;
    let mut seen_delete = false;
    for _ in 0..500 {
        let record = eager.authenticate(&raw).await.unwrap();
        seen_update |= record.max_budget == Some(7.0);
        seen_delete |= eager.authenticate(&gone).await.is_err();
        if seen_update && seen_delete {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(seen_update, "the update reached the other instance");
    assert!(seen_delete, "the deletion reached the other instance");
    eager.shutdown().await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_reset_by_an_admin_elsewhere_reaches_this_instance() {
    let h = Harness::new(Db::Sqlite, false).await;
    let mut options = test_options(&h.db.url, h.clock.clone(), None);
    options.cache_ttl = std::time::Duration::ZERO;
    let serving = KeyService::open(options).await.unwrap();
    let (raw, _) = key(&h, json!({"max_budget": 0.01})).await;
    let record = serving.authenticate(&raw).await.unwrap();
    let admission = serving.admit(&record, "m", None).await.unwrap();
    serving.record_usage(&admission, "m", 20, 0, Some(&prices()));
    drop(admission);
    serving.flush_spend().await.unwrap();
    assert!(matches!(
        serving.admit(&record, "m", None).await,
        Err(Error::BudgetExceeded(_))
    ));
    // the admin API runs on the other instance
    h.clock.advance_ms(1_000);
    let (status, _) = h.post("/key/update", json!({"key": raw, "spend": 0})).await;
    assert_eq!(status, StatusCode::OK);
    let mut admitted = false;
    for _ in 0..500 {
        let record = serving.authenticate(&raw).await.unwrap();
        if serving.admit(&record, "m", None).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(admitted, "the spend reset reached the serving instance");
    serving.shutdown().await;
    h.finish().await;
}

#[tokio::test]
async fn a_budget_with_room_admits_concurrent_first_requests() {
    let h = Harness::new(Db::Sqlite, false).await;
    let (_, record) = key(&h, json!({"max_budget": 100})).await;
    // costs unknown yet, 1 USD assumed each: plenty of room for several at once
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(h.service.admit(&record, "m", None).await.unwrap());
    }
    drop(held);
    let (_, small) = key(&h, json!({"max_budget": 1.5})).await;
    let first = h.service.admit(&small, "m", None).await.unwrap();
    let err = h.service.admit(&small, "m", None).await.unwrap_err();
    assert!(err.to_string().contains("Budget nearly spent"), "{err}");
    drop(first);
    drop(h.service.admit(&small, "m", None).await.unwrap());
    h.finish().await;
}

#[tokio::test]
async fn expiry() {
    let h = Harness::new(Db::Sqlite, false).await;
    let (raw, _) = key(&h, json!({"duration": "30s"})).await;
    let (forever, _) = key(&h, json!({"duration": null})).await;
    h.clock.advance_ms(29_000);
    h.service.authenticate(&raw).await.unwrap();
    h.clock.advance_ms(2_000);
    let err = h.service.authenticate(&raw).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    assert!(err.to_string().contains("Expired Key"), "{err}");
    h.clock.advance_ms(365 * 86_400_000);
    h.service.authenticate(&forever).await.unwrap();
    // extending the duration revives it
    h.post("/key/update", json!({"key": raw, "duration": "1h"}))
        .await;
    h.service.authenticate(&raw).await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn model_access() {
    let h = Harness::new(Db::Sqlite, false).await;
    let (_, limited) = key(&h, json!({"models": ["gpt-4o", "claude-*"]})).await;
    let (_, everything) = key(&h, json!({})).await;
    let (_, proxy_all) = key(&h, json!({"models": ["all-proxy-models"]})).await;
    h.service.authorize_model(&limited, "gpt-4o").unwrap();
    h.service
        .authorize_model(&limited, "claude-sonnet-4")
        .unwrap();
    let err = h
        .service
        .authorize_model(&limited, "gpt-4o-mini")
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    let message = err.to_string();
    assert!(
        message.contains("key not allowed to access model"),
        "{message}"
    );
    assert!(
        message.contains("models=['gpt-4o', 'claude-*']"),
        "{message}"
    );
    assert!(message.contains("Tried to access gpt-4o-mini"), "{message}");
    h.service.authorize_model(&everything, "anything").unwrap();
    h.service.authorize_model(&proxy_all, "anything").unwrap();
    let all: Vec<String> = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "llama"]
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert_eq!(
        h.service.allowed_models(&limited, &all),
        vec!["gpt-4o", "claude-sonnet-4"]
    );
    assert_eq!(h.service.allowed_models(&everything, &all), all);
    assert_eq!(h.service.allowed_models(&proxy_all, &all), all);
    h.finish().await;
}

#[tokio::test]
async fn budget_exceeded_sqlite() {
    budget_exceeded(Db::Sqlite).await;
}

#[tokio::test]
async fn budget_exceeded_postgres() {
    budget_exceeded(Db::Postgres).await;
}

async fn budget_exceeded(db: Db) {
    let h = Harness::new(db, false).await;
    let (raw, record) = key(&h, json!({"max_budget": 0.05})).await;
    let admission = h.service.admit(&record, "m", None).await.unwrap();
    let cost = h
        .service
        .record_usage(&admission, "m", 30, 5, Some(&prices()));
    assert!((cost - 0.04).abs() < 1e-9, "{cost}");
    drop(admission);
    let admission = h.service.admit(&record, "m", None).await.unwrap();
    h.service
        .record_usage(&admission, "m", 10, 0, Some(&prices()));
    drop(admission);
    // spend 0.05 >= max_budget 0.05
    let err = h.service.admit(&record, "m", None).await.unwrap_err();
    assert!(matches!(err, Error::BudgetExceeded(_)), "{err:?}");
    let response = err.into_response();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // live spend is visible in info before any flush
    let (_, info) = h.get(&format!("/key/info?key={raw}")).await;
    assert!(
        (info["info"]["spend"].as_f64().unwrap() - 0.05).abs() < 1e-9,
        "{info}"
    );
    // raising the budget lets it through again
    h.post("/key/update", json!({"key": raw, "max_budget": 1}))
        .await;
    let record = h.service.authenticate(&raw).await.unwrap();
    h.service.admit(&record, "m", None).await.unwrap();
    h.finish().await;
}

fn retry_after(err: Error) -> u64 {
    let response = err.into_response();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn rpm_tpm_and_parallel_limits() {
    let h = Harness::new(Db::Sqlite, false).await;
    // align the manual clock to the start of a minute + 15 s
    let now = h.clock.now_ms();
    h.clock.set_ms(now - now.rem_euclid(60_000) + 15_000);

    let (_, rpm) = key(&h, json!({"rpm_limit": 2})).await;
    drop(h.service.admit(&rpm, "m", None).await.unwrap());
    drop(h.service.admit(&rpm, "m", None).await.unwrap());
    let err = h.service.admit(&rpm, "m", None).await.unwrap_err();
    assert!(err.to_string().contains("rpm_limit"), "{err}");
    assert_eq!(retry_after(err), 45);
    h.clock.advance_ms(45_000);
    drop(h.service.admit(&rpm, "m", None).await.unwrap());

    let (_, tpm) = key(&h, json!({"tpm_limit": 100})).await;
    let admission = h.service.admit(&tpm, "m", None).await.unwrap();
    h.service.record_usage(&admission, "m", 80, 30, None);
    drop(admission);
    let err = h.service.admit(&tpm, "m", None).await.unwrap_err();
    assert!(err.to_string().contains("tpm_limit"), "{err}");
    let wait = retry_after(err);
    assert!((1..=60).contains(&wait), "{wait}");
    h.clock.advance_ms(60_000);
    drop(h.service.admit(&tpm, "m", None).await.unwrap());

    let (_, parallel) = key(&h, json!({"max_parallel_requests": 2})).await;
    let first = h.service.admit(&parallel, "m", None).await.unwrap();
    let second = h.service.admit(&parallel, "m", None).await.unwrap();
    let err = h.service.admit(&parallel, "m", None).await.unwrap_err();
    assert!(err.to_string().contains("max_parallel_requests"), "{err}");
    assert_eq!(retry_after(err), 1);
    drop(first);
    let third = h.service.admit(&parallel, "m", None).await.unwrap();
    drop((second, third));
    h.finish().await;
}

#[tokio::test]
async fn budget_reset_on_schedule_sqlite() {
    budget_reset(Db::Sqlite).await;
}

#[tokio::test]
async fn budget_reset_on_schedule_postgres() {
    budget_reset(Db::Postgres).await;
}

async fn budget_reset(db: Db) {
    let h = Harness::new(db, false).await;
    let (raw, record) = key(&h, json!({"max_budget": 0.01, "budget_duration": "1h"})).await;
    let (idle_raw, idle) = key(&h, json!({"max_budget": 1, "budget_duration": "1d"})).await;
    let admission = h.service.admit(&record, "m", None).await.unwrap();
    h.service
        .record_usage(&admission, "m", 20, 0, Some(&prices()));
    drop(admission);
    let admission = h.service.admit(&idle, "m", None).await.unwrap();
    h.service
        .record_usage(&admission, "m", 100, 0, Some(&prices()));
    drop(admission);
    h.service.flush_spend().await.unwrap();
    assert!(matches!(
        h.service.admit(&record, "m", None).await,
        Err(Error::BudgetExceeded(_))
    ));
    let (_, info) = h.get(&format!("/key/info?key={raw}")).await;
    let reset_at = s(&info["info"]["budget_reset_at"]);

    // Reset at admit time once the period is over.
    h.clock.advance_ms(3_600_000 + 1_000);
    drop(h.service.admit(&record, "m", None).await.unwrap());
    h.service.flush_spend().await.unwrap();
    let fresh = h.another_instance().await;
    let stored = fresh.get_key(&raw).await.unwrap().unwrap();
    assert_eq!(stored.spend, 0.0);
    let (_, info) = h.get(&format!("/key/info?key={raw}")).await;
    assert!(
        s(&info["info"]["budget_reset_at"]) > reset_at,
        "a new period started"
    );

    // The scheduled pass resets keys no request touched.
    assert!((fresh.get_key(&idle_raw).await.unwrap().unwrap().spend - 0.1).abs() < 1e-9);
    h.clock.advance_ms(86_400_000);
    assert!(h.service.reset_budgets().await.unwrap() >= 1);
    h.service.flush_spend().await.unwrap();
    assert_eq!(fresh.get_key(&idle_raw).await.unwrap().unwrap().spend, 0.0);
    // Running it again right away does nothing.
    assert_eq!(h.service.reset_budgets().await.unwrap(), 0);
    fresh.shutdown().await;
    h.finish().await;
}

#[tokio::test]
async fn spend_is_batched_and_flushed_on_shutdown_sqlite() {
    spend_flushed_on_shutdown(Db::Sqlite).await;
}

#[tokio::test]
async fn spend_is_batched_and_flushed_on_shutdown_postgres() {
    spend_flushed_on_shutdown(Db::Postgres).await;
}

async fn spend_flushed_on_shutdown(db: Db) {
    let h = Harness::new(db, false).await;
    let (raw, record) = key(&h, json!({"spend": 1.5})).await;
    let mut total = 1.5;
    for i in 0..20u64 {
        let admission = h.service.admit(&record, "gpt-4o", None).await.unwrap();
        total += h
            .service
            .record_usage(&admission, "gpt-4o", 100 + i, 10, Some(&prices()));
    }
    // another instance sees only what was written: the writer has not flushed yet (1 h interval)
    let other = h.another_instance().await;
    assert_eq!(other.get_key(&raw).await.unwrap().unwrap().spend, 1.5);
    other.shutdown().await;
    h.service.shutdown().await;

    let reopened = KeyService::open(test_options(&h.db.url, h.clock.clone(), None))
        .await
        .unwrap();
    let stored = reopened.get_key(&raw).await.unwrap().unwrap();
    assert!(
        (stored.spend - total).abs() < 1e-9,
        "{} vs {total}",
        stored.spend
    );
    let logs = reopened.spend_logs(&raw).await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].requests, 20);
    assert_eq!(logs[0].prompt_tokens, (100..120).sum::<i64>());
    assert_eq!(logs[0].completion_tokens, 200);
    assert!((logs[0].spend - (total - 1.5)).abs() < 1e-9);
    // the spend survives a regenerate (same key_id)
    let regen = reopened.regenerate(Some(&raw), json!({})).await.unwrap();
    let record = reopened
        .authenticate(regen["key"].as_str().unwrap())
        .await
        .unwrap();
    let admission = reopened.admit(&record, "m", None).await.unwrap();
    let extra = reopened.record_usage(&admission, "m", 1, 0, Some(&prices()));
    reopened.shutdown().await;
    let again = KeyService::open(test_options(&h.db.url, h.clock.clone(), None))
        .await
        .unwrap();
    let stored = again
        .get_key(regen["token"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!((stored.spend - total - extra).abs() < 1e-9);
    again.shutdown().await;
    h.db.cleanup().await;
}

#[tokio::test]
async fn set_spend_by_update() {
    let h = Harness::new(Db::Sqlite, false).await;
    let (raw, record) = key(&h, json!({"max_budget": 1})).await;
    let admission = h.service.admit(&record, "m", None).await.unwrap();
    h.service
        .record_usage(&admission, "m", 1000, 0, Some(&prices()));
    drop(admission);
    assert!(h.service.admit(&record, "m", None).await.is_err());
    let (status, _) = h.post("/key/update", json!({"key": raw, "spend": 0})).await;
    assert_eq!(status, StatusCode::OK);
    let record = h.service.authenticate(&raw).await.unwrap();
    drop(h.service.admit(&record, "m", None).await.unwrap());
    h.service.flush_spend().await.unwrap();
    assert_eq!(h.service.get_key(&raw).await.unwrap().unwrap().spend, 0.0);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admissions_cannot_overspend() {
    // the default guess for a first request (1 USD) and the strict one-at-a-time mode
    concurrent_admissions(1.0).await;
    concurrent_admissions(f64::INFINITY).await;
}

async fn concurrent_admissions(unknown_request_cost_estimate: f64) {
    let mut h = Harness::new(Db::Sqlite, false).await;
    let mut options = test_options(&h.db.url, h.clock.clone(), None);
    options.unknown_request_cost_estimate = unknown_request_cost_estimate;
    h.service.shutdown().await;
    h.service = KeyService::open(options).await.unwrap();
    h.router = vaultgate_keys::routes(h.service.clone())
        .layer(axum::Extension(vaultgate_keys::Caller::Master));
    let max_budget = 1.0;
    // every request costs 0.1 (100 prompt tokens at 0.001)
    let request_cost = 0.1;
    let (raw, record) = key(&h, json!({"max_budget": max_budget})).await;
    let admitted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let service = h.service.clone();
        let record = record.clone();
        let admitted = admitted.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                match service.admit(&record, "m", None).await {
                    Ok(admission) => {
                        admitted.fetch_add(1, Ordering::SeqCst);
                        // the upstream call: other tasks run meanwhile
                        tokio::task::yield_now().await;
                        tokio::task::yield_now().await;
                        service.record_usage(&admission, "m", 100, 0, Some(&prices()));
                    }
                    Err(Error::BudgetExceeded(_)) => return,
                    Err(Error::RateLimited { .. }) => tokio::task::yield_now().await,
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let spend = h.service.get_key(&raw).await.unwrap().unwrap().spend;
    assert!(spend >= max_budget - 1e-9, "the budget was used: {spend}");
    assert!(
        spend <= max_budget + request_cost + 1e-9,
        "overspent by more than one request: {spend} ({} admitted)",
        admitted.load(Ordering::SeqCst)
    );
    h.service.flush_spend().await.unwrap();
    let other = h.another_instance().await;
    let stored = other.get_key(&raw).await.unwrap().unwrap().spend;
    assert!(
        (stored - spend).abs() < 1e-9,
        "flushed {stored} vs live {spend}"
    );
    other.shutdown().await;
    h.finish().await;
}

#[tokio::test]
async fn raw_keys_never_reach_the_logs() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // Global (not thread-local): per-thread subscribers race with callsite interest caching
    // when tests run in parallel. Other tests' output lands here too, which does no harm.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let h = Harness::new(Db::Sqlite, true).await;
    let (raw, record) = key(&h, json!({"key_alias": "logged", "max_budget": 0.001})).await;
    let admission = h.service.admit(&record, "m", None).await.unwrap();
    h.service
        .record_usage(&admission, "m", 10, 0, Some(&prices()));
    drop(admission);
    let _ = h.service.admit(&record, "m", None).await;
    let _ = h.service.authenticate("sk-unknown-secret-value").await;
    let (_, regen) = h.post("/key/regenerate", json!({"key": raw})).await;
    let raw2 = s(&regen["key"]);
    h.mirror().set_failing(true, true);
    let _ = h.post("/key/regenerate", json!({"key": raw2})).await;
    h.mirror().set_failing(false, true);
    h.post("/key/delete", json!({"keys": [raw2]})).await;
    h.finish().await;

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("virtual key generated"),
        "logging was captured: {}",
        &logs[..logs.len().min(3000)]
    );
    for secret in [raw.as_str(), raw2.as_str(), "sk-unknown-secret-value"] {
        assert!(!logs.contains(secret), "a raw key was logged");
    }
}

/// Requests only queue their usage; the writer takes the queue at its tick, unasked.
#[tokio::test]
async fn spend_reaches_the_store_at_the_tick_without_a_flush() {
    let h = Harness::new(Db::Sqlite, false).await;
    let (raw, _) = key(&h, json!({})).await;
    let mut options = test_options(&h.db.url, h.clock.clone(), None);
    options.spend_flush_interval = std::time::Duration::from_millis(50);
    let ticking = KeyService::open(options).await.unwrap();
    let record = ticking.authenticate(&raw).await.unwrap();
    let admission = ticking.admit(&record, "m", None).await.unwrap();
    ticking.record_usage(&admission, "m", 10, 0, Some(&prices()));
    drop(admission);

    let reader = h.another_instance().await;
    let mut stored = 0.0;
    for _ in 0..250 {
        stored = reader.get_key(&raw).await.unwrap().unwrap().spend;
        if stored > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!((stored - 0.01).abs() < 1e-9, "stored spend {stored}");
    reader.shutdown().await;
    ticking.shutdown().await;
    h.finish().await;
}
