//! Two real gateway binaries on one PostgreSQL schema and a Redis of the test's own behave as
//! one gateway for the keys' rate limits: requests alternate between them, and the limits hold
//! for the pair.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "shared_limits/common.rs"]
mod common;

use std::time::Duration;

use common::{Pair, chat, key};
use serde_json::json;
use vaultgate_mock_upstream::Script;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpm_limit_holds_across_two_instances() {
    let pair = Pair::start().await;
    assert!(
        pair.a
            .logs()
            .contains("rate limits are shared across instances through Redis"),
        "{}",
        pair.a.logs()
    );
    let key = key(&pair.a, json!({"rpm_limit": 20})).await;
    pair.wait_for_minute_room();
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..60 {
        let gateway = if i % 2 == 0 { &pair.a } else { &pair.b };
        let response = chat(gateway, &key).await;
        match response.status().as_u16() {
            200 => admitted += 1,
            429 => {
                refused += 1;
                let retry_after: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&retry_after), "{retry_after}");
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("rpm_limit 20 requests per minute"),
                    "{message}"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // One shared window: 20 of 60, give or take 10% (two windows of their own would admit 40).
    assert!(
        (18..=22).contains(&admitted),
        "{admitted} admitted, {refused} refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_parallel_requests_holds_across_two_instances_and_slots_come_back() {
    let pair = Pair::start().await;
    let key = key(&pair.a, json!({"max_parallel_requests": 2})).await;
    // Admitted requests wait long at the upstream, holding their slots meanwhile.
    for _ in 0..6 {
        pair.mock.push(Script {
            delay: Duration::from_secs(6),
            ..Script::default()
        });
    }
    let calls = (0..6).map(|i| {
        let gateway = if i % 2 == 0 { &pair.a } else { &pair.b };
        let key = key.clone();
        async move { chat(gateway, &key).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(calls).await;
    pair.mock.clear_scripts();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((ok, limited), (2, 4), "{statuses:?}");
    // The finished requests gave their slots back, on both instances.
    for gateway in [&pair.a, &pair.b, &pair.a] {
        assert_eq!(chat(gateway, &key).await.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_log_says_limits_are_per_instance() {
    let pair = Pair::start_without_redis().await;
    assert!(
        pair.a.logs().contains("counted per instance"),
        "{}",
        pair.a.logs()
    );
    let key = key(&pair.a, json!({"rpm_limit": 2})).await;
    common::wait_for_local_minute_room();
    assert_eq!(chat(&pair.a, &key).await.status(), 200);
    assert_eq!(chat(&pair.a, &key).await.status(), 200);
    assert_eq!(chat(&pair.a, &key).await.status(), 429);
}
