//! Two real gateway binaries on one PostgreSQL schema and a Redis of the test's own behave as
//! one gateway for the keys' rate limits: requests alternate between them, and the limits hold
//! for the pair.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "shared_limits/common.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Pair, chat, chat_with, key, metric, readiness_until};
use serde_json::json;
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;

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
    let mut remaining: Vec<u64> = Vec::new();
    for i in 0..60 {
        let gateway = if i % 2 == 0 { &pair.a } else { &pair.b };
        let response = chat(gateway, &key).await;
        match response.status().as_u16() {
            200 => {
                admitted += 1;
                let header = &response.headers()["x-ratelimit-remaining-requests"];
                remaining.push(header.to_str().unwrap().parse().unwrap());
            }
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
    // Each answer says what the pair has left (two windows of their own would repeat values).
    assert!(
        remaining.windows(2).all(|w| w[1] < w[0]) && remaining[0] <= 19,
        "{remaining:?}"
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

/// Requests alternating between the instances from four workers (10 ms apart each) until `stop`;
/// every status (0: no answer at all).
async fn load(gateways: [&Gateway; 2], key: &str, stop: &AtomicBool) -> Vec<u16> {
    let client = reqwest::Client::new();
    let worker = |first: usize| {
        let client = &client;
        async move {
            let mut statuses = Vec::new();
            // Bounded: the test stops it within seconds, this is only the backstop.
            for i in first..first + 3_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let answer = chat_with(client, gateways[i % 2], key, false).await;
                statuses.push(answer.map_or(0, |r| r.status().as_u16()));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            statuses
        }
    };
    futures_util::future::join_all((0..4).map(worker))
        .await
        .concat()
}

/// A slow stream answered by `gateway` (its parallel slot held while the response lives).
async fn slow_stream(mock: &MockUpstream, gateway: &Gateway, key: &str) -> reqwest::Response {
    mock.push(Script {
        chunk_delay: Duration::from_secs(60),
        ..Script::default()
    });
    chat_with(&reqwest::Client::new(), gateway, key, true)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_fails_no_request() {
    let mut pair = Pair::start().await;
    // Limits far above the load, so every request goes through Redis and none is refused.
    let busy = key(
        &pair.a,
        json!({"rpm_limit": 1_000_000, "max_parallel_requests": 1_000}),
    )
    .await;
    let single = key(&pair.a, json!({"max_parallel_requests": 1})).await;
    for gateway in [&pair.a, &pair.b] {
        readiness_until(gateway, Duration::from_secs(10), |r| {
            r["redis"]["status"] == "connected" && r["redis"]["instances"] == 2
        })
        .await;
    }
    let Pair {
        redis, mock, a, b, ..
    } = &mut pair;
    let (a, b, mock) = (&*a, &*b, &*mock);
    let redis = redis.as_mut().unwrap();
    let stop = AtomicBool::new(false);
    let control = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        redis.kill();
        let killed = Instant::now();
        for gateway in [a, b] {
            let ready = readiness_until(gateway, Duration::from_secs(5), |r| {
                r["redis"]["status"] == "degraded"
            })
            .await;
            assert_eq!(ready["status"], "degraded", "{ready}");
            assert!(
                !ready["redis"]["error"].as_str().unwrap().is_empty(),
                "{ready}"
            );
            assert!(
                ready["redis"]["limits"]
                    .as_str()
                    .unwrap()
                    .contains("ceil(limit / 2)"),
                "{ready}"
            );
        }
        eprintln!("readiness degraded {:?} after the kill", killed.elapsed());
        tokio::time::sleep(Duration::from_secs(1)).await;
        for gateway in [a, b] {
            assert!(metric(gateway, "vaultgate_quota_redis_errors_total").await > 0.0);
            assert!(metric(gateway, "vaultgate_quota_fail_open_total").await > 0.0);
        }
        redis.restart().unwrap();
        for gateway in [a, b] {
            let ready = readiness_until(gateway, Duration::from_secs(15), |r| {
                r["redis"]["status"] == "connected"
            })
            .await;
            assert_eq!(ready["status"], "healthy", "{ready}");
        }
        stop.store(true, Ordering::Relaxed);
    };
    let (statuses, ()) = tokio::join!(load([a, b], &busy, &stop), control);
    let failed: Vec<_> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        statuses.len()
    );
    assert!(statuses.len() > 40, "{} requests", statuses.len());

    // Shared again: a slot held on a is seen by b.
    let held = slow_stream(mock, a, &single).await;
    assert_eq!(held.status(), 200);
    let refused = chat(b, &single).await;
    assert_eq!(refused.status(), 429, "the one slot is taken, on a");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slots_of_an_instance_killed_with_9_expire() {
    let Pair {
        redis: _redis,
        schema: _schema,
        mock,
        a,
        b,
    } = Pair::start().await;
    let key = key(&a, json!({"max_parallel_requests": 2})).await;
    readiness_until(&a, Duration::from_secs(10), |r| {
        r["redis"]["instances"] == 2
    })
    .await;
    // b holds both slots with streams that are still running when it dies.
    let first = slow_stream(&mock, &b, &key).await;
    let second = slow_stream(&mock, &b, &key).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    assert_eq!(chat(&a, &key).await.status(), 429, "both slots are b's");
    drop(b); // SIGKILL: no release is ever sent
    let killed = Instant::now();
    assert_eq!(
        chat(&a, &key).await.status(),
        429,
        "the dead instance's slots are still counted"
    );
    // They expire once its heartbeat is 5 s old.
    let mut freed = false;
    while killed.elapsed() < Duration::from_secs(12) {
        if chat(&a, &key).await.status() == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(freed, "the slots did not expire");
    eprintln!("slots freed {:?} after the kill", killed.elapsed());
    drop((first, second));
    // a has the key's whole max_parallel_requests again, and no more.
    let one = slow_stream(&mock, &a, &key).await;
    let two = slow_stream(&mock, &a, &key).await;
    assert_eq!((one.status().as_u16(), two.status().as_u16()), (200, 200));
    assert_eq!(chat(&a, &key).await.status(), 429);
}
