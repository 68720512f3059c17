//! LiteLLM's management plane end to end: the real binary on SQLite and the local PostgreSQL,
//! the mock upstream; teams, users, organizations, end users and budgets through their routes,
//! bad input giving a clear 4xx with nothing half-written, enforcement on model requests (the
//! first exceeded limit answers, naming it), and the permission matrix of every route.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use vaultgate_testkit::postgres::PgSchema;

mod plane;

use plane::{As, Env, MASTER, bad, flushed, ok};

async fn plane(database_url: &str, env: &Env) {
    let gateway = env.gateway(database_url);
    let admin = As::new(&gateway, MASTER);

    // Organizations: one, with a budget; bad input names the field.
    let (s, org) = admin
        .post(
            "/organization/new",
            json!({"organization_alias": "acme", "organization_id": "org-acme", "max_budget": 100, "models": ["gpt-a", "gpt-b"]}),
        )
        .await;
    ok(s, &org);
    assert_eq!(org["litellm_budget_table"]["max_budget"], 100.0);
    let (s, b) = admin
        .post("/organization/new", json!({"organization_alias": "acme"}))
        .await;
    bad(s, &b, 400, "already used");
    let (s, b) = admin
        .post(
            "/organization/new",
            json!({"organization_alias": "x", "max_budget": -1}),
        )
        .await;
    bad(s, &b, 400, "max_budget");

    // Teams: created in the organization, with a default member budget.
    let (s, team) = admin
        .post(
            "/team/new",
            json!({"team_id": "t-eng", "team_alias": "eng", "organization_id": "org-acme",
                   "models": ["gpt-a"], "max_budget": 50, "team_member_budget": 20,
                   "metadata": {"cost_center": "42"}}),
        )
        .await;
    ok(s, &team);
    assert_eq!(team["team_alias"], "eng");
    assert_eq!(team["team_member_budget_table"]["max_budget"], 20.0);
    for (body, status, needle) in [
        (json!({"team_alias": "eng"}), 400, "already used"),
        (json!({"team_id": "t-eng"}), 400, "already exists"),
        (
            json!({"team_alias": "n", "organization_id": "org-none"}),
            400,
            "does not exist",
        ),
        (
            json!({"team_alias": "n", "max_budget": -5}),
            400,
            "max_budget",
        ),
        (
            json!({"team_alias": "n", "organization_id": "org-acme", "max_budget": 500}),
            400,
            "organization's max_budget",
        ),
        (
            json!({"team_alias": "n", "organization_id": "org-acme", "models": ["gpt-z"]}),
            400,
            "organization's allowed models",
        ),
        (
            json!({"team_alias": "n", "members_with_roles": [{"role": "owner", "user_id": "u"}]}),
            400,
            "not a team role",
        ),
        (
            json!({"team_alias": "n", "budget_duration": "soon"}),
            400,
            "not a duration",
        ),
    ] {
        let (s, b) = admin.post("/team/new", body.clone()).await;
        bad(s, &b, status, needle);
    }
    // Nothing half-written: still one team, and no user from the refused member list.
    let (_, teams) = admin.get("/v2/team/list").await;
    assert_eq!(teams["total"], 1, "{teams}");
    let (s, _) = admin.get("/user/info?user_id=u").await;
    assert_eq!(s, 404);

    // Users: two internal users, each with a key made by /user/new.
    let (s, alice) = admin
        .post("/user/new", json!({"user_id": "alice", "user_email": "alice@example.com", "key_alias": "alice-key"}))
        .await;
    ok(s, &alice);
    let alice_key = alice["key"].as_str().unwrap().to_owned();
    assert_eq!(alice["user_role"], "internal_user");
    let (s, bob) = admin
        .post(
            "/user/new",
            json!({"user_id": "bob", "auto_create_key": false}),
        )
        .await;
    ok(s, &bob);
    assert!(bob["key"].is_null());
    for (body, needle) in [
        (json!({"user_id": "alice"}), "already exists"),
        (json!({"user_email": "ALICE@example.com"}), "already exists"),
        (
            json!({"user_id": "carol", "user_role": "superuser"}),
            "not a role",
        ),
        (
            json!({"user_id": "carol", "teams": ["t-none"]}),
            "does not exist",
        ),
    ] {
        let (s, b) = admin.post("/user/new", body.clone()).await;
        bad(s, &b, 400, needle);
    }
    let (s, _) = admin.get("/user/info?user_id=carol").await;
    assert_eq!(s, 404, "a refused /user/new left a user behind");

    // Members: by id and by email, one or many; duplicates and bad roles refused.
    let (s, added) = admin
        .post(
            "/team/member_add",
            json!({"team_id": "t-eng", "member": [{"role": "admin", "user_email": "alice@example.com"}, {"role": "user", "user_id": "bob"}]}),
        )
        .await;
    ok(s, &added);
    assert_eq!(
        added["members_with_roles"].as_array().unwrap().len(),
        2,
        "{added}"
    );
    let (s, b) = admin
        .post(
            "/team/member_add",
            json!({"team_id": "t-eng", "member": {"role": "user", "user_id": "bob"}}),
        )
        .await;
    bad(s, &b, 400, "already in team");
    let (s, b) = admin
        .post(
            "/team/member_add",
            json!({"team_id": "t-eng", "member": {"role": "boss", "user_id": "dan"}}),
        )
        .await;
    bad(s, &b, 400, "not a team role");
    let (s, b) = admin
        .post(
            "/team/member_add",
            json!({"team_id": "t-none", "member": {"role": "user", "user_id": "dan"}}),
        )
        .await;
    bad(s, &b, 404, "Team not found");
    let (s, _) = admin.get("/user/info?user_id=dan").await;
    assert_eq!(s, 404, "a refused member_add left a user behind");

    // A key each in the team.
    let (s, k) = admin
        .post(
            "/key/generate",
            json!({"user_id": "alice", "team_id": "t-eng"}),
        )
        .await;
    ok(s, &k);
    let alice_team = As::new(&gateway, k["key"].as_str().unwrap());
    let (s, k) = admin
        .post(
            "/key/generate",
            json!({"user_id": "bob", "team_id": "t-eng", "models": ["gpt-a", "gpt-b"]}),
        )
        .await;
    ok(s, &k);
    let bob_team = As::new(&gateway, k["key"].as_str().unwrap());

    // The team's models intersect the key's.
    let (s, m) = bob_team.chat("gpt-b", None).await;
    assert_eq!(s, 401, "{m}");
    assert!(
        m.contains("Team not allowed to access model. Team=t-eng"),
        "{m}"
    );
    assert_eq!(alice_team.chat("gpt-a", None).await.0, 200);
    let (_, models) = bob_team.get("/v1/models").await;
    assert_eq!(models["data"].as_array().unwrap().len(), 1, "{models}");

    // Member budget: bob's own budget in the team is hit first.
    let (s, u) = admin
        .post(
            "/team/member_update",
            json!({"team_id": "t-eng", "user_id": "bob", "max_budget_in_team": 0.001}),
        )
        .await;
    ok(s, &u);
    assert_eq!(bob_team.chat("gpt-a", None).await.0, 200);
    let (s, m) = bob_team.chat("gpt-a", None).await;
    assert_eq!(s, 400, "{m}");
    assert!(m.contains("User=bob in Team=t-eng"), "{m}");
    // Alice is still within her (default) member budget.
    assert_eq!(alice_team.chat("gpt-a", None).await.0, 200);

    // Team budget: once spent, every key of the team is refused, naming the team.
    let (s, u) = admin
        .post(
            "/team/update",
            json!({"team_id": "t-eng", "max_budget": 0.0001}),
        )
        .await;
    ok(s, &u);
    assert_eq!(u["data"]["max_budget"], 0.0001);
    let (s, m) = alice_team.chat("gpt-a", None).await;
    assert_eq!(s, 400, "{m}");
    assert!(m.contains("Budget has been exceeded! Team=t-eng"), "{m}");
    let (s, _) = admin
        .post(
            "/team/update",
            json!({"team_id": "t-eng", "max_budget": 40}),
        )
        .await;
    assert_eq!(s, 200);

    // Blocking a team blocks its keys at once; unblocking lets them in again.
    let (s, b) = admin.post("/team/block", json!({"team_id": "t-eng"})).await;
    ok(s, &b);
    assert_eq!(b["blocked"], true);
    let (s, m) = alice_team.chat("gpt-a", None).await;
    assert_eq!(s, 401, "{m}");
    assert!(m.contains("Team=t-eng is blocked"), "{m}");
    let (s, _) = admin
        .post("/team/unblock", json!({"team_id": "t-eng"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(alice_team.chat("gpt-a", None).await.0, 200);

    // End users with a budget of their own, and one on a shared budget.
    let (s, e) = admin
        .post(
            "/end_user/new",
            json!({"user_id": "cust-1", "max_budget": 0.001}),
        )
        .await;
    ok(s, &e);
    let (s, b) = admin
        .post("/end_user/new", json!({"user_id": "cust-1"}))
        .await;
    bad(s, &b, 400, "already exists");
    let (s, b) = admin
        .post(
            "/end_user/new",
            json!({"user_id": "cust-2", "allowed_model_region": "mars"}),
        )
        .await;
    bad(s, &b, 400, "not a region");
    let personal = As::new(&gateway, &alice_key);
    assert_eq!(personal.chat("gpt-a", Some("cust-1")).await.0, 200);
    let (s, m) = personal.chat("gpt-a", Some("cust-1")).await;
    assert_eq!(s, 400, "{m}");
    assert!(m.contains("End User=cust-1 over budget"), "{m}");
    assert_eq!(personal.chat("gpt-a", Some("cust-free")).await.0, 200);
    let (s, budget) = admin
        .post(
            "/budget/new",
            json!({"budget_id": "shared-small", "max_budget": 5, "rpm_limit": 100}),
        )
        .await;
    ok(s, &budget);
    let (s, b) = admin
        .post("/budget/new", json!({"budget_id": "shared-small"}))
        .await;
    bad(s, &b, 400, "already exists");
    let (s, e) = admin
        .post(
            "/customer/new",
            json!({"user_id": "cust-3", "budget_id": "shared-small"}),
        )
        .await;
    ok(s, &e);
    assert_eq!(e["litellm_budget_table"]["max_budget"], 5.0);
    let (s, b) = admin
        .post(
            "/end_user/new",
            json!({"user_id": "cust-4", "budget_id": "nope"}),
        )
        .await;
    bad(s, &b, 400, "does not exist");
    let (s, b) = admin
        .post("/budget/delete", json!({"id": "shared-small"}))
        .await;
    bad(s, &b, 400, "in use");
    let (s, list) = admin.get("/budget/list").await;
    ok(s, &list);
    assert!(list.as_array().unwrap().len() >= 3, "{list}");
    let (s, b) = admin
        .post("/end_user/block", json!({"user_ids": ["cust-3"]}))
        .await;
    ok(s, &b);
    let (s, m) = personal.chat("gpt-a", Some("cust-3")).await;
    assert_eq!(s, 401, "{m}");
    assert!(m.contains("End User=cust-3 is blocked"), "{m}");

    // Reads: team info with keys and memberships, paging, user info with keys and teams.
    // The spend writer's batches reach the store (bounded wait: the tick is 1 s, CI is loaded).
    for _ in 0..30 {
        let (_, e) = admin.get("/end_user/info?end_user_id=cust-free").await;
        if e["spend"].as_f64().unwrap_or(0.0) > 0.0 {
            break;
        }
        flushed().await;
    }
    let (s, info) = admin.get("/team/info?team_id=t-eng").await;
    ok(s, &info);
    assert_eq!(info["keys"].as_array().unwrap().len(), 2);
    assert_eq!(info["team_memberships"].as_array().unwrap().len(), 2);
    assert!(info["team_info"]["spend"].as_f64().unwrap() > 0.0, "{info}");
    let (s, t) = admin
        .post("/team/new", json!({"team_alias": "aaa-first"}))
        .await;
    ok(s, &t);
    let (_, page) = admin.get("/v2/team/list?page=1&page_size=1").await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["total_pages"], 2);
    assert_eq!(page["teams"][0]["team_alias"], "aaa-first");
    let (_, page) = admin.get("/v2/team/list?page=2&page_size=1").await;
    assert_eq!(page["teams"][0]["team_alias"], "eng");
    let (_, list) = admin.get("/team/list?user_id=bob").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (s, user) = admin.get("/user/info?user_id=alice").await;
    ok(s, &user);
    assert_eq!(user["keys"].as_array().unwrap().len(), 2);
    assert_eq!(user["teams"][0]["team_id"], "t-eng");
    assert!(user["user_info"]["spend"].as_f64().unwrap() > 0.0, "{user}");
    let (s, users) = admin.get("/user/list?page_size=1").await;
    ok(s, &users);
    assert_eq!(users["total"], 2);
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
    let (s, org) = admin
        .get("/organization/info?organization_id=org-acme")
        .await;
    ok(s, &org);
    assert_eq!(org["teams"].as_array().unwrap().len(), 1);
    assert!(org["spend"].as_f64().unwrap() > 0.0, "{org}");
    let (s, e) = admin.get("/end_user/info?end_user_id=cust-free").await;
    ok(s, &e);
    assert!(
        e["spend"].as_f64().unwrap() > 0.0,
        "spend of an unregistered end user: {e}"
    );
    let (s, b) = admin
        .post(
            "/organization/delete",
            json!({"organization_ids": ["org-acme"]}),
        )
        .await;
    bad(s, &b, 400, "still has 1 team");

    // Removing a member removes their keys of the team.
    let (s, _) = admin
        .post(
            "/team/member_delete",
            json!({"team_id": "t-eng", "user_id": "bob"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(bob_team.chat("gpt-a", None).await.0, 401);
    let (s, b) = admin
        .post(
            "/team/member_delete",
            json!({"team_id": "t-eng", "user_id": "bob"}),
        )
        .await;
    bad(s, &b, 400, "User not found in team");

    // Deleting a user deletes their keys; deleting a team deletes its keys.
    let (s, d) = admin
        .post("/user/delete", json!({"user_ids": ["alice"]}))
        .await;
    ok(s, &d);
    assert_eq!(d["deleted_keys"].as_array().unwrap().len(), 2, "{d}");
    assert_eq!(personal.chat("gpt-a", None).await.0, 401);
    let (s, k) = admin
        .post("/key/generate", json!({"team_id": "t-eng"}))
        .await;
    ok(s, &k);
    let team_key = As::new(&gateway, k["key"].as_str().unwrap());
    let (s, d) = admin
        .post("/team/delete", json!({"team_ids": ["t-eng"]}))
        .await;
    ok(s, &d);
    assert_eq!(d["deleted_keys"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(team_key.chat("gpt-a", None).await.0, 401);
    let (s, b) = admin
        .post("/team/delete", json!({"team_ids": ["t-eng"]}))
        .await;
    bad(s, &b, 404, "Team not found");
    let (s, _) = admin
        .post(
            "/organization/delete",
            json!({"organization_ids": ["org-acme"]}),
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn management_plane_on_sqlite() {
    let env = Env::new().await;
    plane(&env.sqlite_url(), &env).await;
}

#[tokio::test]
async fn management_plane_on_postgres() {
    let env = Env::new().await;
    let schema = PgSchema::create().unwrap();
    plane(&schema.url, &env).await;
}
