//! The `/key/*` API end to end through the router, on SQLite and PostgreSQL.

use http::StatusCode;
use serde_json::{Value, json};
use vaultgate_keys::hash_key;

use crate::common::{Db, Harness, error_param, s};

#[tokio::test]
async fn lifecycle_sqlite() {
    lifecycle(Db::Sqlite).await;
}

#[tokio::test]
async fn lifecycle_postgres() {
    lifecycle(Db::Postgres).await;
}

async fn lifecycle(db: Db) {
    let h = Harness::new(db, false).await;

    // generate with every field
    let generated = h
        .generate(json!({
            "key_alias": "alice",
            "duration": "30d",
            "models": ["gpt-4o", "claude-sonnet"],
            "max_budget": 10.5,
            "budget_duration": "30d",
            "spend": 0.25,
            "metadata": {"owner": "alice", "nested": {"n": 1}},
            "tpm_limit": 1000,
            "rpm_limit": 10,
            "max_parallel_requests": 2,
            "user_id": "u1",
            "team_id": "t1",
            "tags": ["prod", "a"],
            "blocked": false
        }))
        .await;
    let raw = s(&generated["key"]);
    assert!(raw.starts_with("sk-") && raw.len() >= 25, "{raw}");
    assert!(
        raw[3..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    let token = s(&generated["token"]);
    assert_eq!(token, hash_key(&raw));
    assert_eq!(
        generated["key_name"],
        json!(format!("sk-...{}", &raw[raw.len() - 4..]))
    );
    assert_eq!(generated["key_alias"], "alice");
    assert_eq!(generated["models"], json!(["gpt-4o", "claude-sonnet"]));
    assert_eq!(generated["max_budget"], 10.5);
    assert_eq!(generated["spend"], 0.25);
    assert_eq!(generated["budget_duration"], "30d");
    assert!(generated["budget_reset_at"].is_string());
    assert_eq!(generated["metadata"]["nested"]["n"], 1);
    assert_eq!(generated["tpm_limit"], 1000);
    assert_eq!(generated["rpm_limit"], 10);
    assert_eq!(generated["max_parallel_requests"], 2);
    assert_eq!(generated["user_id"], "u1");
    assert_eq!(generated["team_id"], "t1");
    assert_eq!(generated["tags"], json!(["prod", "a"]));
    assert_eq!(generated["blocked"], false);
    assert_eq!(generated["duration"], "30d");
    let expires = s(&generated["expires"]);
    let created = s(&generated["created_at"]);
    assert!(expires > created, "{expires} vs {created}");
    assert!(generated["updated_at"].is_string());

    // info by raw key and by hash
    for by in [raw.clone(), token.clone()] {
        let (status, info) = h.get(&format!("/key/info?key={by}")).await;
        assert_eq!(status, StatusCode::OK, "{info}");
        assert_eq!(info["key"], json!(token));
        assert_eq!(info["info"]["key_alias"], "alice");
        assert_eq!(info["info"]["max_budget"], 10.5);
        assert_eq!(info["info"]["spend"], 0.25);
        assert_eq!(info["info"]["expires"], json!(expires));
        assert!(
            !info.to_string().contains(&raw),
            "info must not show the raw key"
        );
    }
    let record = h.service.authenticate(&raw).await.unwrap();
    assert_eq!(record.key_alias.as_deref(), Some("alice"));

    // a custom key, and a generated key with no fields
    let custom = h
        .generate(json!({"key": "sk-my-custom-key-0001", "user_id": "u2", "team_id": "t2"}))
        .await;
    assert_eq!(custom["key"], "sk-my-custom-key-0001");
    assert_eq!(custom["key_name"], "sk-...0001");
    assert_eq!(custom["expires"], Value::Null);
    h.service
        .authenticate("sk-my-custom-key-0001")
        .await
        .unwrap();
    let bare = h.generate(json!({})).await;
    assert_eq!(bare["models"], json!([]));
    assert_eq!(bare["max_budget"], Value::Null);

    // more keys for paging and filters: 3 for u2, 2 for t3
    for i in 0..3 {
        h.generate(json!({"user_id": "u2", "key_alias": format!("u2-{i}")}))
            .await;
    }
    for _ in 0..2 {
        h.generate(json!({"team_id": "t3"})).await;
    }
    assert_eq!(h.total_keys().await, 8);
    let (status, page1) = h.get("/key/list?page=1&size=3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page1["total_count"], 8);
    assert_eq!(page1["total_pages"], 3);
    assert_eq!(page1["current_page"], 1);
    assert_eq!(page1["keys"].as_array().unwrap().len(), 3);
    assert!(
        page1["keys"][0].is_string(),
        "tokens unless return_full_object"
    );
    let (_, page3) = h.get("/key/list?page=3&size=3").await;
    assert_eq!(page3["keys"].as_array().unwrap().len(), 2);
    assert_eq!(page3["current_page"], 3);
    let (_, page4) = h.get("/key/list?page=4&size=3").await;
    assert_eq!(page4["keys"], json!([]));
    let mut all: Vec<String> = Vec::new();
    for page in 1..=3 {
        let (_, p) = h.get(&format!("/key/list?page={page}&size=3")).await;
        all.extend(p["keys"].as_array().unwrap().iter().map(s));
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 8, "pages cover every key once");
    let (_, by_user) = h.get("/key/list?user_id=u2&return_full_object=true").await;
    assert_eq!(by_user["total_count"], 4);
    assert!(
        by_user["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["user_id"] == "u2")
    );
    assert!(by_user["keys"][0]["key_name"].is_string());
    let (_, by_team) = h.get("/key/list?team_id=t3").await;
    assert_eq!(by_team["total_count"], 2);
    let (_, by_alias) = h.get("/key/list?key_alias=alice").await;
    assert_eq!(by_alias["keys"], json!([token]));
    let (_, both) = h.get("/key/list?user_id=u2&team_id=t2").await;
    assert_eq!(both["total_count"], 1);
    // LiteLLM's key_hash finds one key by its raw value or its hash, and nothing is no error.
    for by in [&raw, &token] {
        let (status, one) = h.get(&format!("/key/list?key_hash={by}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one["keys"], json!([token]), "key_hash={by}");
    }
    let (status, none) = h.get("/key/list?key_hash=sk-no-such-key-at-all").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["total_count"], 0);
    let (_, other_user) = h.get(&format!("/key/list?key_hash={raw}&user_id=u2")).await;
    assert_eq!(other_user["total_count"], 0, "filters combine");

    // update: rename the alias, change limits and models, clear a field with null
    let (status, updated) = h
        .post(
            "/key/update",
            json!({"key": token, "key_alias": "alice-2", "max_budget": 20, "models": ["gpt-4o-mini"],
                   "rpm_limit": null, "metadata": {"owner": "bob"}, "tags": ["x"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["key"], json!(token));
    assert_eq!(updated["key_alias"], "alice-2");
    assert_eq!(updated["max_budget"], 20.0);
    assert_eq!(updated["rpm_limit"], Value::Null);
    assert_eq!(updated["tpm_limit"], 1000, "untouched fields stay");
    let (_, info) = h.get(&format!("/key/info?key={raw}")).await;
    assert_eq!(info["info"]["key_alias"], "alice-2");
    assert_eq!(info["info"]["models"], json!(["gpt-4o-mini"]));
    assert_eq!(info["info"]["metadata"], json!({"owner": "bob"}));
    assert_eq!(info["info"]["tags"], json!(["x"]));
    assert_eq!(info["info"]["user_id"], "u1");
    let (_, old_alias) = h.get("/key/list?key_alias=alice").await;
    assert_eq!(old_alias["total_count"], 0);
    // the request path sees the update at once
    let record = h.service.authenticate(&raw).await.unwrap();
    assert_eq!(record.models, vec!["gpt-4o-mini".to_string()]);
    assert_eq!(record.max_budget, Some(20.0));
    // update by raw key, and the duration
    let (status, updated) = h
        .post("/key/update", json!({"key": raw, "duration": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["expires"], Value::Null);

    // block / unblock
    let (status, blocked) = h.post("/key/block", json!({"key": raw})).await;
    assert_eq!(status, StatusCode::OK, "{blocked}");
    assert_eq!(blocked["blocked"], true);
    let err = h.service.authenticate(&raw).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    assert!(err.to_string().contains("blocked"), "{err}");
    let (status, unblocked) = h.post("/key/unblock", json!({"key": token})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(unblocked["blocked"], false);
    h.service.authenticate(&raw).await.unwrap();

    // regenerate through the body: new raw key, same settings, old key stops working
    let (status, regen) = h.post("/key/regenerate", json!({"key": raw})).await;
    assert_eq!(status, StatusCode::OK, "{regen}");
    let raw2 = s(&regen["key"]);
    assert_ne!(raw2, raw);
    assert_eq!(regen["token"], json!(hash_key(&raw2)));
    assert_eq!(regen["key_alias"], "alice-2");
    assert_eq!(regen["max_budget"], 20.0);
    assert_eq!(regen["user_id"], "u1");
    assert_eq!(
        h.service.authenticate(&raw).await.unwrap_err().status(),
        StatusCode::UNAUTHORIZED
    );
    let rec2 = h.service.authenticate(&raw2).await.unwrap();
    assert_eq!(
        rec2.key_id, record.key_id,
        "the key keeps its identity (and spend)"
    );
    let (status, _) = h.get(&format!("/key/info?key={token}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the old hash is gone");

    // regenerate through the path, by hash, with new settings and a chosen value
    let token2 = s(&regen["token"]);
    let (status, regen) = h
        .post(
            &format!("/key/{token2}/regenerate"),
            json!({"max_budget": 5, "new_key": "sk-chosen-value-9999"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{regen}");
    assert_eq!(regen["key"], "sk-chosen-value-9999");
    assert_eq!(regen["max_budget"], 5.0);
    assert_eq!(regen["key_alias"], "alice-2");
    assert!(h.service.authenticate(&raw2).await.is_err());
    h.service
        .authenticate("sk-chosen-value-9999")
        .await
        .unwrap();
    // path route with a raw key and no body
    let (status, regen) = h.post_raw("/key/sk-chosen-value-9999/regenerate", "").await;
    assert_eq!(status, StatusCode::OK, "{regen}");
    let raw3 = s(&regen["key"]);
    h.service.authenticate(&raw3).await.unwrap();

    // delete by raw key, by hash and by alias
    let custom_token = s(&custom["token"]);
    let (status, deleted) = h.post("/key/delete", json!({"keys": [raw3.clone()]})).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["deleted_keys"], json!([hash_key(&raw3)]));
    assert!(!deleted.to_string().contains(&raw3));
    assert_eq!(
        h.service.authenticate(&raw3).await.unwrap_err().status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, deleted) = h
        .post("/key/delete", json!({"keys": [custom_token.clone()]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["deleted_keys"], json!([custom_token]));
    assert!(
        h.service
            .authenticate("sk-my-custom-key-0001")
            .await
            .is_err()
    );
    let (status, deleted) = h
        .post("/key/delete", json!({"key_aliases": ["u2-0", "u2-1"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["deleted_keys"].as_array().unwrap().len(), 2);
    assert_eq!(h.total_keys().await, 4);
    let (status, _) = h.get(&format!("/key/info?key={raw3}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    h.finish().await;
}

#[tokio::test]
async fn bad_input_sqlite() {
    bad_input(Db::Sqlite).await;
}

#[tokio::test]
async fn bad_input_postgres() {
    bad_input(Db::Postgres).await;
}

async fn bad_input(db: Db) {
    let h = Harness::new(db, false).await;
    let generate_cases = [
        (json!({"max_budget": -1}), "max_budget"),
        (json!({"max_budget": "ten"}), "max_budget"),
        (json!({"spend": -0.5}), "spend"),
        (json!({"duration": "forever"}), "duration"),
        (json!({"duration": "30x"}), "duration"),
        (json!({"budget_duration": "1y2"}), "budget_duration"),
        (json!({"models": "gpt-4o"}), "models"),
        (json!({"tpm_limit": -5}), "tpm_limit"),
        (json!({"rpm_limit": 2.5}), "rpm_limit"),
        (
            json!({"max_parallel_requests": "2"}),
            "max_parallel_requests",
        ),
        (json!({"metadata": "x"}), "metadata"),
        (json!({"tags": [1, 2]}), "tags"),
        (json!({"blocked": "no"}), "blocked"),
        (json!({"user_id": 5}), "user_id"),
        (json!({"team_id": []}), "team_id"),
        (json!({"key_alias": ""}), "key_alias"),
        (json!({"key_alias": "../etc"}), "key_alias"),
        (json!({"key": "pk-not-a-virtual-key"}), "key"),
        (json!({"key": 42}), "key"),
        // a valid field next to a bad one: still nothing persisted
        (json!({"key_alias": "fine", "max_budget": -3}), "max_budget"),
    ];
    for (body, field) in generate_cases {
        let (status, response) = h.post("/key/generate", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {response}");
        assert_eq!(error_param(&response), Some(field), "{body} -> {response}");
        assert_eq!(response["error"]["type"], "invalid_request_error");
    }
    for bad_json in ["{", "[1,2]", "\"text\"", "{\"max_budget\": }"] {
        let (status, response) = h.post_raw("/key/generate", bad_json).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad_json}");
        assert_eq!(
            response["error"]["type"], "invalid_request_error",
            "{response}"
        );
    }
    assert_eq!(h.total_keys().await, 0, "nothing persisted by bad requests");

    // duplicate alias and duplicate custom key
    let first = h
        .generate(json!({"key_alias": "team-a", "key": "sk-first-custom-key"}))
        .await;
    let (status, response) = h
        .post("/key/generate", json!({"key_alias": "team-a"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&response), Some("key_alias"), "{response}");
    let (status, response) = h
        .post("/key/generate", json!({"key": "sk-first-custom-key"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&response), Some("key"), "{response}");
    let other = h.generate(json!({"key_alias": "team-b"})).await;
    assert_eq!(h.total_keys().await, 2);

    // update: duplicate alias, bad fields, unknown key, missing key
    let token = s(&first["token"]);
    let (status, response) = h
        .post(
            "/key/update",
            json!({"key": token, "key_alias": "team-b", "max_budget": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&response), Some("key_alias"));
    for (body, field) in [
        (json!({"key": token, "max_budget": -1}), "max_budget"),
        (json!({"key": token, "duration": "tomorrow"}), "duration"),
        (json!({"key": token, "models": [""]}), "models"),
        (json!({"max_budget": 1}), "key"),
        (json!({"key": 7}), "key"),
    ] {
        let (status, response) = h.post("/key/update", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_param(&response), Some(field), "{body} -> {response}");
    }
    let (_, info) = h.get(&format!("/key/info?key={token}")).await;
    assert_eq!(
        info["info"]["key_alias"], "team-a",
        "a failed update changes nothing"
    );
    assert_eq!(info["info"]["max_budget"], Value::Null);
    let (status, response) = h
        .post(
            "/key/update",
            json!({"key": "sk-unknown-key", "max_budget": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{response}");
    assert!(
        !response.to_string().contains("sk-unknown-key"),
        "raw keys are not echoed"
    );

    // info / list parameters
    let (status, response) = h.get("/key/info").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&response), Some("key"));
    let (status, _) = h.get(&format!("/key/info?key={}", "0".repeat(64))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (query, field) in [
        ("page=0", "page"),
        ("page=x", "page"),
        ("size=-1", "size"),
        ("size=5000", "size"),
        ("return_full_object=maybe", "return_full_object"),
    ] {
        let (status, response) = h.get(&format!("/key/list?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(error_param(&response), Some(field), "{query} -> {response}");
    }

    // delete: nothing named, wrong types, one unknown key among known ones deletes nothing
    let (status, response) = h.post("/key/delete", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&response), Some("keys"));
    let (status, response) = h.post("/key/delete", json!({"keys": "abc"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&response), Some("keys"));
    let (status, response) = h.post("/key/delete", json!({"key_aliases": [3]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&response), Some("key_aliases"));
    let (status, _) = h
        .post("/key/delete", json!({"keys": [token, "sk-no-such-key"]}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h
        .post("/key/delete", json!({"key_aliases": ["team-a", "nobody"]}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(h.total_keys().await, 2, "a failed delete deletes nothing");

    // regenerate / block: bad and unknown keys
    let (status, response) = h.post("/key/regenerate", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&response), Some("key"));
    let (status, response) = h
        .post("/key/regenerate", json!({"key": token, "new_key": "nope"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&response), Some("new_key"));
    let other_raw = s(&other["key"]);
    let (status, response) = h
        .post(
            "/key/regenerate",
            json!({"key": token, "new_key": other_raw}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{response}");
    assert_eq!(error_param(&response), Some("new_key"));
    let (status, _) = h.post("/key/sk-nothing-here/regenerate", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, response) = h.post("/key/block", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_param(&response), Some("key"));
    let (status, _) = h
        .post("/key/unblock", json!({"key": "sk-nothing-here"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    h.service.authenticate("sk-first-custom-key").await.unwrap();

    h.finish().await;
}

/// Nullable floats through one PostgreSQL connection, in the order that once broke prepared
/// statements (NULL budget first, then a number).
#[tokio::test]
async fn nullable_budget_on_one_connection_postgres() {
    let db = crate::common::TestDb::new(Db::Postgres).await;
    let clock = std::sync::Arc::new(vaultgate_keys::ManualClock::starting_now());
    let mut options = crate::common::test_options(&db.url, clock, None);
    options.max_connections = 1;
    let service = vaultgate_keys::KeyService::open(options).await.unwrap();
    let a = service.generate(json!({})).await.unwrap();
    let b = service.generate(json!({"max_budget": 2.5})).await.unwrap();
    assert_eq!(b["max_budget"], 2.5);
    let token = a["token"].as_str().unwrap();
    service
        .update(json!({"key": token, "max_budget": null}))
        .await
        .unwrap();
    let updated = service
        .update(json!({"key": token, "max_budget": 4}))
        .await
        .unwrap();
    assert_eq!(updated["max_budget"], 4.0);
    service
        .update(json!({"key": token, "max_budget": null}))
        .await
        .unwrap();
    service
        .regenerate(Some(token), json!({"max_budget": 1.5}))
        .await
        .unwrap();
    service.generate(json!({"max_budget": null})).await.unwrap();
    service.generate(json!({"max_budget": 7})).await.unwrap();
    service.shutdown().await;
    db.cleanup().await;
}
