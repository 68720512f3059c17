//! The Vault mirror when Vault misbehaves or aliases are tricky: partial policies, writes whose
//! answer is lost, aliases that address one Vault path, invisible characters, drift after
//! ordinary deletes. The fake mirror behaves like KV v2 (versions, soft deletes, cas).

use std::sync::atomic::Ordering;

use http::StatusCode;
use serde_json::{Value, json};
use sqlx::Executor;
use vaultgate_keys::KeyService;

use crate::common::{Db, Harness, error_param, s, test_options};

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_refused_metadata_write_leaves_nothing_in_vault_and_names_the_capability() {
    let h = Harness::new(Db::Sqlite, true).await;
    h.mirror().deny_metadata.store(true, Ordering::SeqCst);
    let (status, body) = h
        .post("/key/generate", json!({"key_alias": "partial"}))
        .await;
    // Vault answered (a refusal): 502, not "Vault is unavailable".
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(message(&body).contains("metadata"), "{body}");
    assert!(!message(&body).contains("unavailable"), "{body}");
    assert_eq!(body["error"]["code"], "vault_permission_denied", "{body}");
    let stored = h.mirror().secrets.lock().unwrap().get("partial").cloned();
    assert!(
        stored.as_ref().is_none_or(|s| s.versions.is_empty()),
        "a value was written for a key that does not exist: {stored:?}"
    );
    assert_eq!(h.total_keys().await, 0);

    // Regenerate with the same refusal: the old key and its copy stay as they were.
    h.mirror().deny_metadata.store(false, Ordering::SeqCst);
    let key = h.generate(json!({"key_alias": "kept"})).await;
    h.mirror().deny_metadata.store(true, Ordering::SeqCst);
    let (status, body) = h.post("/key/regenerate", json!({"key": key["key"]})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(h.mirror().value("kept"), Some(s(&key["key"])));
    assert!(h.service.authenticate(&s(&key["key"])).await.is_ok());
    h.finish().await;
}

#[tokio::test]
async fn a_write_applied_after_its_answer_was_lost_is_recognised() {
    let h = Harness::new(Db::Sqlite, true).await;
    let key = h.generate(json!({"key_alias": "slow"})).await;
    h.mirror().lose_write_answers.store(true, Ordering::SeqCst);
    let (status, regenerated) = h.post("/key/regenerate", json!({"key": key["key"]})).await;
    assert_eq!(status, StatusCode::OK, "{regenerated}");
    let new_key = s(&regenerated["key"]);
    assert_eq!(h.mirror().value("slow").as_deref(), Some(new_key.as_str()));
    assert!(h.service.authenticate(&new_key).await.is_ok());
    assert!(h.service.authenticate(&s(&key["key"])).await.is_err());
    let (status, generated) = h.post("/key/generate", json!({"key_alias": "fresh"})).await;
    assert_eq!(status, StatusCode::OK, "{generated}");
    assert_eq!(h.mirror().value("fresh"), Some(s(&generated["key"])));
    assert!(h.service.drift().await.unwrap().is_clean());
    h.finish().await;
}

#[tokio::test]
async fn a_write_of_unknown_outcome_is_undone_through_the_outbox_sqlite() {
    unknown_outcome(Db::Sqlite).await;
}

#[tokio::test]
async fn a_write_of_unknown_outcome_is_undone_through_the_outbox_postgres() {
    unknown_outcome(Db::Postgres).await;
}

/// The write lands but its answer is lost, and Vault stays unreadable: the key is not changed
/// (503), and once Vault answers the outbox puts the old key's value back.
async fn unknown_outcome(db: Db) {
    let h = Harness::new(db, true).await;
    let key = h.generate(json!({"key_alias": "dark"})).await;
    let old = s(&key["key"]);
    let plain = h.generate(json!({})).await;
    h.mirror().lose_write_answers.store(true, Ordering::SeqCst);
    h.mirror().go_dark_after_write.store(true, Ordering::SeqCst);
    for target in [&key, &plain] {
        let (status, body) = h
            .post("/key/regenerate", json!({"key": target["key"]}))
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        h.mirror().set_failing(false, false);
        h.mirror().fail_get.store(false, Ordering::SeqCst);
    }
    assert_ne!(h.mirror().value("dark").as_deref(), Some(old.as_str()));
    assert!(h.service.authenticate(&old).await.is_ok());
    let pending = h.service.pending_vault_deletions().await.unwrap();
    assert!(pending.contains(&"dark".to_string()), "{pending:?}");

    h.mirror().lose_write_answers.store(false, Ordering::SeqCst);
    h.mirror()
        .go_dark_after_write
        .store(false, Ordering::SeqCst);
    h.clock.advance_ms(60_000);
    h.service.process_outbox().await.unwrap();
    assert_eq!(h.mirror().value("dark").as_deref(), Some(old.as_str()));
    let plain_name = s(&plain["vault_secret_name"]);
    assert_eq!(h.mirror().value(&plain_name), Some(s(&plain["key"])));
    assert!(
        h.service
            .pending_vault_deletions()
            .await
            .unwrap()
            .is_empty()
    );
    assert!(h.service.drift().await.unwrap().is_clean());
    h.finish().await;
}

#[tokio::test]
async fn aliases_that_share_a_vault_path_are_refused_sqlite() {
    shared_paths(Db::Sqlite).await;
}

#[tokio::test]
async fn aliases_that_share_a_vault_path_are_refused_postgres() {
    shared_paths(Db::Postgres).await;
}

async fn shared_paths(db: Db) {
    let h = Harness::new(db, true).await;
    let x = h.generate(json!({"key_alias": "x"})).await;
    for alias in ["x ", " x", "\u{a0}x"] {
        let (status, body) = h.post("/key/generate", json!({"key_alias": alias})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{alias:?}: {body}");
        assert_eq!(error_param(&body), Some("key_alias"));
        assert!(message(&body).contains(&s(&x["key_name"])), "{body}");
    }
    h.generate(json!({"key_alias": "a/b"})).await;
    let (status, body) = h.post("/key/generate", json!({"key_alias": "a//b"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let other = h.generate(json!({"key_alias": "other"})).await;
    let (status, body) = h
        .post(
            "/key/update",
            json!({"key": other["key"], "key_alias": "x "}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(h.mirror().value("x"), Some(s(&x["key"])));

    // A rename to an alias of the same path keeps the only copy.
    let p = h.generate(json!({"key_alias": "p"})).await;
    for alias in ["p ", " p"] {
        let (status, body) = h
            .post(
                "/key/update",
                json!({"key": p["token"], "key_alias": alias}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(h.mirror().value("p"), Some(s(&p["key"])), "{alias:?}");
    }
    // Deleting one key leaves the other's copy alone.
    let (status, _) = h.post("/key/delete", json!({"keys": [x["key"]]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.mirror().value("p"), Some(s(&p["key"])));
    assert!(h.service.drift().await.unwrap().is_clean());
    h.finish().await;
}

#[tokio::test]
async fn without_a_mirror_aliases_differing_in_spaces_are_distinct_keys() {
    let h = Harness::new(Db::Sqlite, false).await;
    h.generate(json!({"key_alias": "x"})).await;
    h.generate(json!({"key_alias": "x "})).await;
    assert_eq!(h.total_keys().await, 2);
    h.finish().await;
}

#[tokio::test]
async fn keys_that_shared_a_copy_before_the_rule_are_told_apart_at_start_sqlite() {
    legacy_shared_copies(Db::Sqlite).await;
}

#[tokio::test]
async fn keys_that_shared_a_copy_before_the_rule_are_told_apart_at_start_postgres() {
    legacy_shared_copies(Db::Postgres).await;
}

/// A database from before the rule may hold `x` and `x ` as two names of one copy: the key
/// changed last keeps it, the other loses it (and shows in the drift report), and the rule holds
/// from then on.
async fn legacy_shared_copies(db: Db) {
    let h = Harness::new(db, true).await;
    let first = h.generate(json!({"key_alias": "legacy"})).await;
    let second = h.generate(json!({"key_alias": "legacy2"})).await;
    h.service.shutdown().await;
    {
        let pool = sqlx::AnyPool::connect(&h.db.url).await.unwrap();
        pool.execute("DROP INDEX keys_vault_secret_name_unique")
            .await
            .unwrap();
        sqlx::query(
            "UPDATE keys SET key_alias = 'legacy ', vault_secret_name = 'legacy ', \
             updated_at = updated_at + 1000 WHERE token = $1",
        )
        .bind(s(&second["token"]))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let service = KeyService::open(test_options(&h.db.url, h.clock.clone(), h.mirror.clone()))
        .await
        .unwrap();
    let first = service.get_key(&s(&first["token"])).await.unwrap().unwrap();
    let second = service
        .get_key(&s(&second["token"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.vault_secret_name, None);
    assert_eq!(second.vault_secret_name.as_deref(), Some("legacy"));
    let pool = sqlx::AnyPool::connect(&h.db.url).await.unwrap();
    let duplicate = sqlx::query("UPDATE keys SET vault_secret_name = 'legacy' WHERE token = $1")
        .bind(first.token.clone())
        .execute(&pool)
        .await;
    assert!(
        duplicate.is_err(),
        "the unique rule on secret names is missing"
    );
    pool.close().await;
    service.shutdown().await;
    h.db.cleanup().await;
}

#[tokio::test]
async fn aliases_with_dot_segments_or_invisible_characters_are_a_400() {
    let h = Harness::new(Db::Sqlite, true).await;
    for alias in [
        "a/./b",
        "./a",
        "a/ . /b",
        "pay\u{202E}lor",
        "zero\u{200B}width",
        "\u{FEFF}bom",
        "soft\u{AD}hyphen",
    ] {
        let (status, body) = h.post("/key/generate", json!({"key_alias": alias})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{alias:?}: {body}");
        assert_eq!(error_param(&body), Some("key_alias"), "{alias:?}");
        let (status, body) = h
            .post("/key/update", json!({"key": "sk-none", "key_alias": alias}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{alias:?}: {body}");
    }
    assert!(h.mirror().ops().is_empty(), "{:?}", h.mirror().ops());
    h.finish().await;
}

#[tokio::test]
async fn soft_deleted_copies_are_drift_only_when_a_key_owns_them() {
    let h = Harness::new(Db::Sqlite, true).await;
    let gone = h.generate(json!({"key_alias": "gone"})).await;
    let live = h.generate(json!({"key_alias": "team/a b"})).await;
    let (status, _) = h.post("/key/delete", json!({"keys": [gone["key"]]})).await;
    assert_eq!(status, StatusCode::OK);
    // Vault still lists the soft-deleted copy of the deleted key: not drift.
    let drift = h.service.drift().await.unwrap();
    assert!(drift.is_clean(), "{drift:?}");
    assert_eq!(drift.deleted_secrets, vec!["gone".to_string()]);

    // A live key's copy soft-deleted, or overwritten by another value, is drift.
    let name = s(&live["vault_secret_name"]);
    assert_eq!(name, "team/a b");
    use vaultgate_keys::SecretMirror;
    h.mirror().delete(&name).await.unwrap();
    let drift = h.service.drift().await.unwrap();
    assert_eq!(drift.keys_without_secret.len(), 1, "{drift:?}");
    assert_eq!(drift.keys_without_secret[0].problem, "deleted");
    h.mirror().overwrite(&name, "sk-someone-else");
    let drift = h.service.drift().await.unwrap();
    assert_eq!(drift.keys_without_secret[0].problem, "holds another value");
    h.finish().await;
}
