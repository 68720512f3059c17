//! Migrations are forward-only and safe to run twice and from two instances at once.

use std::sync::Arc;

use serde_json::json;
use vaultgate_keys::{Backend, KeyService, ManualClock};

use crate::common::{Db, TestDb, test_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_twice_and_concurrently_sqlite() {
    migrations(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_twice_and_concurrently_postgres() {
    migrations(Db::Postgres).await;
}

async fn migrations(db: Db) {
    let db = TestDb::new(db).await;
    let clock = Arc::new(ManualClock::starting_now());
    let open = || KeyService::open(test_options(&db.url, clock.clone(), None));
    // Two instances on a fresh database at the same moment.
    let (a, b, c) = tokio::join!(open(), open(), open());
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let expected = if db.url.starts_with("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    assert_eq!(a.backend(), expected);
    let generated = a.generate(json!({"key_alias": "shared"})).await.unwrap();
    let raw = generated["key"].as_str().unwrap().to_owned();
    // The other instances use the same tables.
    b.authenticate(&raw).await.unwrap();
    c.authenticate(&raw).await.unwrap();
    for service in [a, b, c] {
        service.shutdown().await;
    }
    // And again on the migrated database: nothing to do, data kept.
    let d = open().await.unwrap();
    d.authenticate(&raw).await.unwrap();
    d.shutdown().await;
    db.cleanup().await;
}

#[tokio::test]
async fn bad_database_url_is_a_config_error() {
    let err = KeyService::open(vaultgate_keys::KeyServiceOptions::new("mysql://x"))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("sqlite"), "{err}");
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let clock = Arc::new(ManualClock::starting_now());
    let service = KeyService::open(test_options("sqlite::memory:", clock, None))
        .await
        .unwrap();
    let generated = service.generate(json!({})).await.unwrap();
    service
        .authenticate(generated["key"].as_str().unwrap())
        .await
        .unwrap();
    service.shutdown().await;
}
