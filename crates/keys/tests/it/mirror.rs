//! The Vault mirror with a recording fake: copies written before keys exist, deletions retried
//! through the persistent outbox, alias renames and regeneration moving the copy, drift.

use http::StatusCode;
use serde_json::json;
use vaultgate_keys::{KeyService, hash_key};

use crate::common::{Db, Harness, s, test_options};

#[tokio::test]
async fn generate_and_delete_mirror_sqlite() {
    generate_and_delete(Db::Sqlite).await;
}

#[tokio::test]
async fn generate_and_delete_mirror_postgres() {
    generate_and_delete(Db::Postgres).await;
}

async fn generate_and_delete(db: Db) {
    let h = Harness::new(db, true).await;
    let aliased = h
        .generate(json!({"key_alias": "billing-app", "duration": "1h"}))
        .await;
    let raw = s(&aliased["key"]);
    let token = s(&aliased["token"]);
    assert_eq!(
        h.mirror().value("billing-app").as_deref(),
        Some(raw.as_str())
    );
    let meta = h.mirror().metadata("billing-app").unwrap();
    assert_eq!(meta["key_alias"], "billing-app");
    assert_eq!(meta["token"], token);
    assert_eq!(meta["created_at"], s(&aliased["created_at"]));
    assert_eq!(meta["expires"], s(&aliased["expires"]));
    assert_eq!(
        h.mirror().secrets.lock().unwrap()["billing-app"].versions[0]
            .description
            .as_deref(),
        Some("vaultgate test key"),
        "the configured description is stored beside the key"
    );
    assert_eq!(aliased["vault_secret_name"], "billing-app");

    let plain = h.generate(json!({})).await;
    let plain_raw = s(&plain["key"]);
    let plain_name = format!("virtual-key-{}", hash_key(&plain_raw));
    assert_eq!(
        h.mirror().value(&plain_name).as_deref(),
        Some(plain_raw.as_str())
    );
    assert_eq!(
        h.mirror().metadata(&plain_name).unwrap()["expires"],
        "never"
    );

    // a failing write: 503, no key, no secret
    h.mirror().set_failing(true, false);
    let (status, response) = h
        .post("/key/generate", json!({"key_alias": "will-fail"}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{response}");
    assert!(
        response["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Vault"),
        "{response}"
    );
    assert_eq!(h.total_keys().await, 2);
    let (_, listed) = h.get("/key/list?key_alias=will-fail").await;
    assert_eq!(listed["total_count"], 0);
    assert!(h.mirror().value("will-fail").is_none());
    h.mirror().set_failing(false, false);
    // the alias is free afterwards
    h.generate(json!({"key_alias": "will-fail"})).await;

    // delete removes the copies, aliased or not
    let (status, _) = h
        .post("/key/delete", json!({"keys": [raw, plain_raw]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.mirror().value("billing-app").is_none());
    assert!(h.mirror().value(&plain_name).is_none());
    assert!(
        h.service
            .pending_vault_deletions()
            .await
            .unwrap()
            .is_empty()
    );
    let ops = h.mirror().ops();
    assert!(ops.contains(&"delete billing-app".to_string()), "{ops:?}");
    assert!(ops.contains(&format!("delete {plain_name}")), "{ops:?}");
    assert!(h.service.drift().await.unwrap().is_clean());

    h.finish().await;
}

#[tokio::test]
async fn failed_vault_delete_revokes_at_once_and_outbox_retries() {
    let h = Harness::new(Db::Sqlite, true).await;
    let key = h.generate(json!({"key_alias": "to-revoke"})).await;
    let raw = s(&key["key"]);
    h.service.authenticate(&raw).await.unwrap(); // cached
    h.mirror().set_failing(false, true);
    let (status, response) = h
        .post("/key/delete", json!({"key_aliases": ["to-revoke"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{response}");
    // revoked at once even though Vault still has the copy
    assert_eq!(
        h.service.authenticate(&raw).await.unwrap_err().status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(h.mirror().value("to-revoke").is_some());
    assert_eq!(
        h.service.pending_vault_deletions().await.unwrap(),
        vec!["to-revoke".to_string()]
    );
    let drift = h.service.drift().await.unwrap();
    assert_eq!(drift.pending_deletions, vec!["to-revoke".to_string()]);
    assert!(
        drift.secrets_without_key.is_empty(),
        "queued deletions are not orphans"
    );

    // retries while Vault still fails keep the entry
    for _ in 0..3 {
        h.clock.advance_ms(60_000);
        assert_eq!(h.service.process_outbox().await.unwrap(), 0);
    }
    assert_eq!(h.service.pending_vault_deletions().await.unwrap().len(), 1);
    // not due yet: nothing is tried
    let deletes_before = h
        .mirror()
        .ops()
        .iter()
        .filter(|o| o.starts_with("delete"))
        .count();
    h.service.process_outbox().await.unwrap();
    let deletes_after = h
        .mirror()
        .ops()
        .iter()
        .filter(|o| o.starts_with("delete"))
        .count();
    assert_eq!(
        deletes_before, deletes_after,
        "backoff: an entry is retried only when due"
    );

    h.mirror().set_failing(false, false);
    h.clock.advance_ms(60_000);
    assert_eq!(h.service.process_outbox().await.unwrap(), 1);
    assert!(h.mirror().value("to-revoke").is_none());
    assert!(
        h.service
            .pending_vault_deletions()
            .await
            .unwrap()
            .is_empty()
    );
    h.finish().await;
}

#[tokio::test]
async fn once_vault_is_back_the_queue_is_worked_within_seconds_whatever_the_backoff() {
    // The default backoff: 1 s doubling up to 5 min.
    let h = Harness::with_options(Db::Sqlite, true, |options| {
        options.outbox_retry_min = std::time::Duration::from_secs(1);
        options.outbox_retry_max = std::time::Duration::from_secs(300);
    })
    .await;
    let first = h.generate(json!({"key_alias": "first"})).await;
    let second = h.generate(json!({"key_alias": "second"})).await;
    h.mirror().set_failing(false, true);
    for key in [&first, &second] {
        let (status, _) = h
            .post("/key/delete", json!({"keys": [s(&key["token"])]}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    // A long outage: each failed retry doubles the entries' backoff, to over a minute.
    for _ in 0..7 {
        h.clock.advance_ms(300_000);
        assert_eq!(h.service.process_outbox().await.unwrap(), 0);
    }
    assert_eq!(h.service.pending_vault_deletions().await.unwrap().len(), 2);

    // Vault is back. Two seconds later, long before any backoff ends, the oldest entry is
    // tried, and its success takes the rest of the queue with it.
    h.mirror().set_failing(false, false);
    h.clock.advance_ms(1_000);
    assert_eq!(
        h.service.process_outbox().await.unwrap(),
        0,
        "tried at most every 2 s"
    );
    h.clock.advance_ms(1_500);
    assert_eq!(h.service.process_outbox().await.unwrap(), 2);
    assert!(h.mirror().value("first").is_none());
    assert!(h.mirror().value("second").is_none());
    assert!(
        h.service
            .pending_vault_deletions()
            .await
            .unwrap()
            .is_empty()
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_worker_retries_until_vault_works() {
    let h = Harness::new(Db::Sqlite, true).await;
    let plain = h.generate(json!({})).await;
    let name = format!("virtual-key-{}", s(&plain["token"]));
    h.mirror().set_failing(false, true);
    let (status, _) = h
        .post("/key/delete", json!({"keys": [s(&plain["token"])]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = h.service.spawn_outbox_worker(stop.clone());
    // Let the worker fail a few times.
    let mut attempts = 0;
    for _ in 0..500 {
        attempts = h
            .mirror()
            .ops()
            .iter()
            .filter(|o| **o == format!("delete {name}"))
            .count();
        if attempts >= 3 {
            break;
        }
        h.clock.advance_ms(1_000);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(attempts >= 3, "worker retried {attempts} times");
    assert_eq!(
        h.service.pending_vault_deletions().await.unwrap(),
        vec![name.clone()]
    );
    h.mirror().set_failing(false, false);
    let mut done = false;
    for _ in 0..500 {
        if h.service
            .pending_vault_deletions()
            .await
            .unwrap()
            .is_empty()
        {
            done = true;
            break;
        }
        h.clock.advance_ms(1_000);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(done, "the worker finished the deletion once Vault worked");
    assert!(h.mirror().value(&name).is_none());
    stop.cancel();
    worker.await.unwrap();
    h.finish().await;
}

#[tokio::test]
async fn outbox_survives_reopening_the_store() {
    let h = Harness::new(Db::Sqlite, true).await;
    let key = h.generate(json!({"key_alias": "persisted"})).await;
    h.mirror().set_failing(false, true);
    let (status, _) = h
        .post("/key/delete", json!({"keys": [s(&key["token"])]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    h.service.shutdown().await;

    // a new process: same database, Vault works again
    h.mirror().set_failing(false, false);
    let reopened = KeyService::open(test_options(&h.db.url, h.clock.clone(), h.mirror.clone()))
        .await
        .unwrap();
    assert_eq!(
        reopened.pending_vault_deletions().await.unwrap(),
        vec!["persisted".to_string()]
    );
    h.clock.advance_ms(60_000);
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = reopened.spawn_outbox_worker(stop.clone());
    let mut done = false;
    for _ in 0..500 {
        if reopened.pending_vault_deletions().await.unwrap().is_empty() {
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(done);
    assert!(h.mirror().value("persisted").is_none());
    stop.cancel();
    worker.await.unwrap();
    reopened.shutdown().await;
    h.db.cleanup().await;
}

#[tokio::test]
async fn reusing_an_alias_cancels_its_queued_deletion() {
    let h = Harness::new(Db::Sqlite, true).await;
    let old = h.generate(json!({"key_alias": "reused"})).await;
    h.mirror().set_failing(false, true);
    h.post("/key/delete", json!({"keys": [s(&old["token"])]}))
        .await;
    h.mirror().set_failing(false, false);
    let new = h.generate(json!({"key_alias": "reused"})).await;
    h.clock.advance_ms(3_600_000);
    h.service.process_outbox().await.unwrap();
    assert_eq!(
        h.mirror().value("reused"),
        Some(s(&new["key"])),
        "the new copy survives"
    );
    assert!(
        h.service
            .pending_vault_deletions()
            .await
            .unwrap()
            .is_empty()
    );
    h.finish().await;
}

#[tokio::test]
async fn alias_rename_and_regenerate_move_the_copy_sqlite() {
    rename_and_regenerate(Db::Sqlite).await;
}

#[tokio::test]
async fn alias_rename_and_regenerate_move_the_copy_postgres() {
    rename_and_regenerate(Db::Postgres).await;
}

async fn rename_and_regenerate(db: Db) {
    let h = Harness::new(db, true).await;
    let key = h.generate(json!({"key_alias": "old-name"})).await;
    let raw = s(&key["key"]);
    let token = s(&key["token"]);

    // rename with the key given by hash: the value is read back from Vault
    let (status, response) = h
        .post(
            "/key/update",
            json!({"key": token, "key_alias": "new-name"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!(h.mirror().value("new-name").as_deref(), Some(raw.as_str()));
    assert!(h.mirror().value("old-name").is_none());
    assert_eq!(
        h.mirror().metadata("new-name").unwrap()["key_alias"],
        "new-name"
    );
    assert_eq!(response["vault_secret_name"], "new-name");

    // rename with the raw key: no read of the old copy needed
    let (status, _) = h
        .post(
            "/key/update",
            json!({"key": raw, "key_alias": "third-name"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        h.mirror().value("third-name").as_deref(),
        Some(raw.as_str())
    );
    assert!(h.mirror().value("new-name").is_none());
    // Vault unreadable: a write needs the copy's version (check-and-set), so 503, nothing
    // changed, with the hash or the raw key
    h.mirror()
        .fail_get
        .store(true, std::sync::atomic::Ordering::SeqCst);
    for key in [&token, &raw] {
        let (status, response) = h
            .post("/key/update", json!({"key": key, "key_alias": "fourth"}))
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{response}");
    }
    assert!(h.mirror().value("fourth").is_none());
    let (_, info) = h.get(&format!("/key/info?key={token}")).await;
    assert_eq!(info["info"]["key_alias"], "third-name");
    h.mirror()
        .fail_get
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // an update that does not touch the alias does not write to Vault
    let puts_before = h
        .mirror()
        .ops()
        .iter()
        .filter(|o| o.starts_with("put"))
        .count();
    h.post("/key/update", json!({"key": token, "max_budget": 3}))
        .await;
    assert_eq!(
        puts_before,
        h.mirror()
            .ops()
            .iter()
            .filter(|o| o.starts_with("put"))
            .count()
    );

    // removing the alias moves the copy to virtual-key-<hash>
    let (status, _) = h
        .post("/key/update", json!({"key": token, "key_alias": null}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        h.mirror().value(&format!("virtual-key-{token}")).as_deref(),
        Some(raw.as_str())
    );
    assert!(h.mirror().value("third-name").is_none());
    h.post("/key/update", json!({"key": token, "key_alias": "app"}))
        .await;

    // regenerate an aliased key: same name, new value; the old key no longer works
    let (status, regen) = h.post("/key/regenerate", json!({"key": token})).await;
    assert_eq!(status, StatusCode::OK, "{regen}");
    let raw2 = s(&regen["key"]);
    assert_eq!(h.mirror().value("app").as_deref(), Some(raw2.as_str()));
    assert!(h.service.authenticate(&raw).await.is_err());
    // a failing write on regenerate: 503 and the current key keeps working
    h.mirror().set_failing(true, false);
    let (status, _) = h.post("/key/regenerate", json!({"key": raw2})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    h.service.authenticate(&raw2).await.unwrap();
    assert_eq!(h.mirror().value("app").as_deref(), Some(raw2.as_str()));
    h.mirror().set_failing(false, false);

    // regenerate a key without alias: the copy follows the new hash
    let plain = h.generate(json!({})).await;
    let old_name = format!("virtual-key-{}", s(&plain["token"]));
    let (status, regen) = h
        .post(
            &format!("/key/{}/regenerate", s(&plain["token"])),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let new_name = format!("virtual-key-{}", s(&regen["token"]));
    assert_eq!(h.mirror().value(&new_name), Some(s(&regen["key"])));
    assert!(h.mirror().value(&old_name).is_none());

    // renaming onto an alias in use is refused before Vault is touched
    let ops_before = h.mirror().ops().len();
    let (status, _) = h
        .post(
            "/key/update",
            json!({"key": s(&regen["token"]), "key_alias": "app"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ops_before, h.mirror().ops().len());
    assert!(h.service.drift().await.unwrap().is_clean());
    h.finish().await;
}

#[tokio::test]
async fn drift_reports_both_directions() {
    let h = Harness::new(Db::Sqlite, true).await;
    let a = h.generate(json!({"key_alias": "a"})).await;
    h.generate(json!({"key_alias": "b"})).await;
    // a key whose copy vanished, and a secret nobody owns
    h.mirror().secrets.lock().unwrap().remove("a");
    h.mirror().overwrite("stray", "sk-stray");
    let drift = h.service.drift().await.unwrap();
    assert!(!drift.is_clean());
    assert_eq!(drift.keys_without_secret.len(), 1);
    assert_eq!(drift.keys_without_secret[0].expected_secret, "a");
    assert_eq!(drift.keys_without_secret[0].token, s(&a["token"]));
    assert_eq!(drift.secrets_without_key, vec!["stray".to_string()]);
    h.finish().await;
}

#[tokio::test]
async fn no_mirror_means_no_vault_calls_and_empty_drift() {
    let h = Harness::new(Db::Sqlite, false).await;
    let key = h.generate(json!({"key_alias": "local"})).await;
    assert!(key["vault_secret_name"].is_null());
    assert!(h.service.drift().await.unwrap().is_clean());
    let worker = h
        .service
        .spawn_outbox_worker(tokio_util::sync::CancellationToken::new());
    worker.await.unwrap();
    h.finish().await;
}
