//! The shared limits against a real Redis of the test's own: two `RedisQuota`s stand for two
//! gateway instances (each with its own instance id, heartbeat and writer, and its own clock).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use vaultgate_core::Error;
use vaultgate_quota::{
    Ask, Limits, QuotaHealth, RedisOptions, RedisParts, RedisQuota, RedisSettings, Scope, ScopeKind,
};
use vaultgate_testkit::redis::RedisServer;

fn options(url: &str) -> RedisOptions {
    let settings = RedisSettings::from_parts(&RedisParts {
        url: Some(url),
        ..RedisParts::default()
    })
    .unwrap()
    .unwrap();
    let mut options = RedisOptions::new(settings);
    options.heartbeat = Duration::from_millis(200);
    options.instance_ttl = Duration::from_secs(1);
    options
}

async fn instance(url: &str) -> RedisQuota {
    RedisQuota::start(options(url)).await.unwrap()
}

fn key_ask<'a>(scope: &'a Scope, limits: Limits) -> Ask<'a> {
    Ask {
        scope,
        limits,
        label: &"key sk-...ab",
    }
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

const RPM: Limits = Limits {
    rpm: Some(20),
    tpm: None,
    parallel: None,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_holds_across_instances_whatever_their_clocks_say() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (instance(&redis.url()).await, instance(&redis.url()).await);
    // Each instance has its own scope object (as each gateway has its own key cache).
    let (key_a, key_b) = (
        Scope::new(ScopeKind::Key, "k-rpm"),
        Scope::new(ScopeKind::Key, "k-rpm"),
    );
    let mut admitted = 0;
    let mut permits = Vec::new();
    for i in 0..60 {
        // Clocks an hour apart: the shared window runs on Redis's clock.
        let (quota, scope, now) = if i % 2 == 0 {
            (&a, &key_a, 0)
        } else {
            (&b, &key_b, 3_600_000)
        };
        match quota.acquire(&[key_ask(scope, RPM)], now).await {
            Ok(permit) => {
                assert!(permit.is_shared());
                admitted += 1;
                permits.push(permit);
            }
            Err(Error::RateLimited {
                message,
                retry_after,
            }) => {
                assert!(
                    message.contains("rpm_limit 20 requests per minute"),
                    "{message}"
                );
                assert!((1..=60).contains(&retry_after));
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        admitted, 20,
        "the cluster admits the limit, not the limit per instance"
    );
    assert_eq!(a.health(), QuotaHealth::Shared);
    assert!(eventually(Duration::from_secs(3), async || a.instances_seen() == 2).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_starts_again_at_its_edge_on_redis_time() {
    let redis = RedisServer::start().unwrap();
    let mut options = options(&redis.url());
    options.window = Duration::from_secs(2);
    let quota = RedisQuota::start(options).await.unwrap();
    let key = Scope::new(ScopeKind::Key, "k-edge");
    let limits = Limits {
        rpm: Some(3),
        ..Limits::default()
    };
    // Fill a window, then wait out the Retry-After it gives.
    let retry_after = loop {
        match quota.acquire(&[key_ask(&key, limits)], 0).await {
            Ok(_) => {}
            Err(Error::RateLimited { retry_after, .. }) => break retry_after,
            Err(other) => panic!("unexpected {other}"),
        }
    };
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert!(quota.acquire(&[key_ask(&key, limits)], 0).await.is_err());
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    for _ in 0..3 {
        quota
            .acquire(&[key_ask(&key, limits)], 0)
            .await
            .expect("a new window has room for the limit again");
    }
    assert!(quota.acquire(&[key_ask(&key, limits)], 0).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_slots_are_shared_and_freed_when_a_request_ends() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (instance(&redis.url()).await, instance(&redis.url()).await);
    let (key_a, key_b) = (
        Scope::new(ScopeKind::Key, "k-par"),
        Scope::new(ScopeKind::Key, "k-par"),
    );
    let limits = Limits {
        parallel: Some(2),
        ..Limits::default()
    };
    let first = a.acquire(&[key_ask(&key_a, limits)], 0).await.unwrap();
    let _second = b.acquire(&[key_ask(&key_b, limits)], 0).await.unwrap();
    for (quota, scope) in [(&a, &key_a), (&b, &key_b)] {
        let Err(Error::RateLimited { message, .. }) =
            quota.acquire(&[key_ask(scope, limits)], 0).await
        else {
            panic!("two in flight in the cluster: full");
        };
        assert!(message.contains("max_parallel_requests 2"), "{message}");
    }
    drop(first);
    assert!(
        eventually(Duration::from_secs(2), async || b
            .acquire(&[key_ask(&key_b, limits)], 0)
            .await
            .is_ok())
        .await,
        "the slot A released is free for B"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_used_on_one_instance_fill_the_window_of_all() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (instance(&redis.url()).await, instance(&redis.url()).await);
    let (key_a, key_b) = (
        Scope::new(ScopeKind::Key, "k-tpm"),
        Scope::new(ScopeKind::Key, "k-tpm"),
    );
    let limits = Limits {
        tpm: Some(100),
        ..Limits::default()
    };
    let permit = a.acquire(&[key_ask(&key_a, limits)], 0).await.unwrap();
    permit.record_tokens(100, 0);
    drop(permit);
    assert!(
        eventually(Duration::from_secs(2), async || matches!(
            b.acquire(&[key_ask(&key_b, limits)], 0).await,
            Err(Error::RateLimited { .. })
        ))
        .await,
        "B sees the tokens A counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_scope_refuses_the_request_in_every_scope() {
    let redis = RedisServer::start().unwrap();
    let quota = instance(&redis.url()).await;
    let key = Scope::new(ScopeKind::Key, "k-multi");
    let team = Scope::new(ScopeKind::Team, "t-multi");
    let key_limits = Limits {
        rpm: Some(100),
        parallel: Some(100),
        ..Limits::default()
    };
    let team_limits = Limits {
        rpm: Some(2),
        ..Limits::default()
    };
    let asks = [
        key_ask(&key, key_limits),
        Ask {
            scope: &team,
            limits: team_limits,
            label: &"team t-multi",
        },
    ];
    let _one = quota.acquire(&asks, 0).await.unwrap();
    let _two = quota.acquire(&asks, 0).await.unwrap();
    let Err(Error::RateLimited { message, .. }) = quota.acquire(&asks, 0).await else {
        panic!("the team's rpm is used up");
    };
    assert!(message.contains("team t-multi: rpm_limit 2"), "{message}");
    let minute = redis.cli(&["TIME"]).unwrap();
    let seconds: i64 = minute.lines().next().unwrap().trim().parse().unwrap();
    let counted = redis
        .cli(&[
            "GET",
            &format!("vaultgate:q:key:k-multi:rpm:{}", seconds / 60),
        ])
        .unwrap();
    // Either 2 (same minute) or empty (the minute turned between the calls); never 3.
    assert!(matches!(counted.trim(), "2" | ""), "{counted}");
    assert_eq!(
        redis
            .cli(&["ZCARD", "vaultgate:q:key:k-multi:par"])
            .unwrap()
            .trim(),
        "2",
        "the refused request holds no slot of the key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slots_of_a_crashed_instance_expire() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (instance(&redis.url()).await, instance(&redis.url()).await);
    let (key_a, key_b) = (
        Scope::new(ScopeKind::Key, "k-crash"),
        Scope::new(ScopeKind::Key, "k-crash"),
    );
    let limits = Limits {
        parallel: Some(2),
        ..Limits::default()
    };
    // A takes both slots and dies without releasing them: no heartbeat, no writer.
    let held = [
        a.acquire(&[key_ask(&key_a, limits)], 0).await.unwrap(),
        a.acquire(&[key_ask(&key_a, limits)], 0).await.unwrap(),
    ];
    a.shutdown().await;
    std::mem::forget(held);
    assert!(b.acquire(&[key_ask(&key_b, limits)], 0).await.is_err());
    let freed = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), async || b
            .acquire(&[key_ask(&key_b, limits)], 0)
            .await
            .is_ok())
        .await,
        "A's slots are freed once A stopped its heartbeat for instance_ttl"
    );
    assert!(
        freed.elapsed() >= Duration::from_millis(500),
        "not before the ttl"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_to_a_share_of_the_limit_and_recovers() {
    let mut redis = RedisServer::start().unwrap();
    let (a, b) = (instance(&redis.url()).await, instance(&redis.url()).await);
    assert!(eventually(Duration::from_secs(3), async || a.instances_seen() == 2).await);
    redis.kill();
    let key = Scope::new(ScopeKind::Key, "k-down");
    let limits = Limits {
        rpm: Some(10),
        ..Limits::default()
    };
    let mut admitted = 0;
    let mut degraded_permits = Vec::new();
    for _ in 0..20 {
        if let Ok(permit) = a.acquire(&[key_ask(&key, limits)], 0).await {
            assert!(!permit.is_shared());
            admitted += 1;
            degraded_permits.push(permit);
        }
    }
    assert_eq!(
        admitted, 5,
        "two instances seen: each admits ceil(10 / 2) on its own"
    );
    let QuotaHealth::Degraded { error } = a.health() else {
        panic!("Redis is down: degraded");
    };
    assert!(!error.is_empty());

    redis.restart().unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || a.health()
            == QuotaHealth::Shared)
        .await,
        "reconnects by itself: {:?}",
        a.health()
    );
    let key_b = Scope::new(ScopeKind::Key, "k-down");
    let shared = b.acquire(&[key_ask(&key_b, limits)], 0).await;
    assert!(
        eventually(Duration::from_secs(10), async || b.health()
            == QuotaHealth::Shared)
        .await
    );
    drop(shared);
    let permit = b.acquire(&[key_ask(&key_b, limits)], 0).await.unwrap();
    assert!(permit.is_shared(), "shared again after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_fails_open_instead_of_holding_requests() {
    let redis = RedisServer::start().unwrap();
    let quota = instance(&redis.url()).await;
    let key = Scope::new(ScopeKind::Key, "k-slow");
    let limits = Limits {
        rpm: Some(1000),
        ..Limits::default()
    };
    assert!(
        quota
            .acquire(&[key_ask(&key, limits)], 0)
            .await
            .unwrap()
            .is_shared()
    );
    let port = redis.port().to_string();
    let sleeper = std::thread::spawn(move || {
        std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port, "DEBUG", "SLEEP", "2"])
            .output()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let permit = quota
        .acquire(&[key_ask(&key, limits)], 0)
        .await
        .expect("admitted without Redis");
    assert!(!permit.is_shared());
    assert!(matches!(quota.health(), QuotaHealth::Degraded { .. }));
    let _ = sleeper.join();
    assert!(
        eventually(Duration::from_secs(10), async || quota.health()
            == QuotaHealth::Shared)
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_redis_needs_the_password() {
    let redis = RedisServer::start_with_password("s3cret-pass").unwrap();
    let quota = instance(&redis.url()).await;
    assert_eq!(quota.health(), QuotaHealth::Shared);
    let wrong = instance(&format!("redis://:wrong@127.0.0.1:{}", redis.port())).await;
    let QuotaHealth::Degraded { error } = wrong.health() else {
        panic!("a wrong password cannot count");
    };
    assert!(!error.contains("wrong"), "{error}");
}
