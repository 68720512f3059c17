//! The permission matrix of every management route: each kind of caller (proxy admin, admin
//! viewer, internal user, internal user viewer, a key without a user) against every route, on
//! the real binary; then what callers may do with their own keys, user and teams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod plane;

use plane::{As, Env, MASTER, ok};
use serde_json::{Value, json};

/// What a caller gets from a route: allowed (any answer but 401/403), 401 or 403.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Allowed,
    Unauthorized,
    Forbidden,
}

use Expect::{Allowed as A, Forbidden as F, Unauthorized as U};

/// Every management route, with what each caller gets: proxy admin, proxy admin viewer,
/// internal user, internal user viewer, plain key (no user). Non-admins ask about objects of
/// somebody else (`other`'s key and user, team `t-other`); the admin asks about objects that do
/// not exist, so the matrix changes nothing it relies on.
fn matrix(other_key: &str) -> Vec<(&'static str, &'static str, Value, Value, [Expect; 5])> {
    let none = "sk-no-such-key-0000";
    let team = |id: &str| json!({"team_id": id});
    vec![
        (
            "POST",
            "/key/generate",
            json!({"user_id": "other"}),
            json!({"user_id": "other"}),
            [A, F, F, F, U],
        ),
        (
            "POST",
            "/key/update",
            json!({"key": none}),
            json!({"key": other_key, "metadata": {}}),
            [A, F, F, F, U],
        ),
        (
            "POST",
            "/key/delete",
            json!({"keys": [none]}),
            json!({"keys": [other_key]}),
            [A, F, F, F, U],
        ),
        (
            "POST",
            "/key/regenerate",
            json!({"key": none}),
            json!({"key": other_key}),
            [A, F, F, F, U],
        ),
        (
            "POST",
            "/key/block",
            json!({"key": none}),
            json!({"key": other_key}),
            [A, F, F, F, U],
        ),
        (
            "POST",
            "/key/unblock",
            json!({"key": none}),
            json!({"key": other_key}),
            [A, F, F, F, U],
        ),
        (
            "GET",
            "/key/info?key=KEY",
            json!(none),
            json!(other_key),
            [A, A, F, F, F],
        ),
        (
            "GET",
            "/key/list",
            json!(null),
            json!(null),
            [A, A, A, A, A],
        ),
        (
            "POST",
            "/team/new",
            json!({"team_alias": "made-by-admin"}),
            json!({"team_alias": "x"}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/team/update",
            team("t-none"),
            team("t-other"),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/team/delete",
            json!({"team_ids": ["t-none"]}),
            json!({"team_ids": ["t-other"]}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/team/block",
            team("t-none"),
            team("t-other"),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/team/unblock",
            team("t-none"),
            team("t-other"),
            [A, F, U, U, U],
        ),
        (
            "GET",
            "/team/info?team_id=TEAM",
            json!("t-none"),
            json!("t-other"),
            [A, A, F, F, F],
        ),
        (
            "GET",
            "/team/list",
            json!(null),
            json!(null),
            [A, A, U, U, U],
        ),
        (
            "GET",
            "/v2/team/list",
            json!(null),
            json!(null),
            [A, A, U, U, U],
        ),
        (
            "POST",
            "/team/member_add",
            json!({"team_id": "t-none", "member": {"role": "user", "user_id": "z"}}),
            json!({"team_id": "t-other", "member": {"role": "user", "user_id": "z"}}),
            [A, F, F, F, U],
        ),
        (
            "POST",
            "/team/member_delete",
            json!({"team_id": "t-none", "user_id": "other"}),
            json!({"team_id": "t-other", "user_id": "other"}),
            [A, F, F, F, U],
        ),
        (
            "POST",
            "/team/member_update",
            json!({"team_id": "t-none", "user_id": "other", "role": "admin"}),
            json!({"team_id": "t-other", "user_id": "other", "role": "admin"}),
            [A, F, F, F, U],
        ),
        (
            "POST",
            "/team/model/add",
            json!({"team_id": "t-none", "models": ["gpt-b"]}),
            json!({"team_id": "t-other", "models": ["gpt-b"]}),
            [A, F, F, F, U],
        ),
        (
            "POST",
            "/team/model/delete",
            json!({"team_id": "t-none", "models": ["gpt-a"]}),
            json!({"team_id": "t-other", "models": ["gpt-a"]}),
            [A, F, F, F, U],
        ),
        (
            "POST",
            "/user/new",
            json!({"user_id": "made-by-admin", "auto_create_key": false}),
            json!({"user_id": "x"}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/user/update",
            json!({"user_id": "u-none"}),
            json!({"user_id": "other", "user_role": "proxy_admin"}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/user/delete",
            json!({"user_ids": ["u-none"]}),
            json!({"user_ids": ["other"]}),
            [A, F, U, U, U],
        ),
        (
            "GET",
            "/user/info?user_id=USER",
            json!("u-none"),
            json!("other"),
            [A, A, F, F, F],
        ),
        (
            "GET",
            "/user/list",
            json!(null),
            json!(null),
            [A, A, U, U, U],
        ),
        (
            "POST",
            "/organization/new",
            json!({"organization_alias": "made-by-admin"}),
            json!({"organization_alias": "x"}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/organization/update",
            json!({"organization_id": "o-none"}),
            json!({"organization_id": "o-other"}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/organization/delete",
            json!({"organization_ids": ["o-none"]}),
            json!({"organization_ids": ["o-other"]}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/organization/member_add",
            json!({"organization_id": "o-none", "member": {"user_id": "z"}}),
            json!({"organization_id": "o-other", "member": {"user_id": "z"}}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/organization/member_update",
            json!({"organization_id": "o-none", "user_id": "z", "role": "org_admin"}),
            json!({"organization_id": "o-other", "user_id": "z", "role": "org_admin"}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/organization/member_delete",
            json!({"organization_id": "o-none", "user_id": "z"}),
            json!({"organization_id": "o-other", "user_id": "z"}),
            [A, F, U, U, U],
        ),
        (
            "GET",
            "/organization/info?organization_id=o-other",
            json!(null),
            json!(null),
            [A, A, U, U, U],
        ),
        (
            "GET",
            "/organization/list",
            json!(null),
            json!(null),
            [A, A, U, U, U],
        ),
        (
            "POST",
            "/end_user/new",
            json!({"user_id": "made-by-admin"}),
            json!({"user_id": "x"}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/end_user/update",
            json!({"user_id": "e-none"}),
            json!({"user_id": "e-other"}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/end_user/delete",
            json!({"user_ids": ["e-none"]}),
            json!({"user_ids": ["e-other"]}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/end_user/block",
            json!({"user_ids": ["made-by-admin"]}),
            json!({"user_ids": ["e-other"]}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/end_user/unblock",
            json!({"user_ids": ["made-by-admin"]}),
            json!({"user_ids": ["e-other"]}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/customer/new",
            json!({"user_id": "made-by-admin-2"}),
            json!({"user_id": "x"}),
            [A, F, U, U, U],
        ),
        (
            "GET",
            "/end_user/info?end_user_id=e-other",
            json!(null),
            json!(null),
            [A, A, U, U, U],
        ),
        (
            "GET",
            "/end_user/list",
            json!(null),
            json!(null),
            [A, A, U, U, U],
        ),
        (
            "POST",
            "/budget/new",
            json!({"budget_id": "made-by-admin"}),
            json!({"budget_id": "x"}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/budget/update",
            json!({"budget_id": "b-none"}),
            json!({"budget_id": "b-other", "max_budget": 1}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/budget/delete",
            json!({"id": "b-none"}),
            json!({"id": "b-other"}),
            [A, F, U, U, U],
        ),
        (
            "POST",
            "/budget/info",
            json!({"budgets": ["b-other"]}),
            json!({"budgets": ["b-other"]}),
            [A, A, U, U, U],
        ),
        (
            "GET",
            "/budget/list",
            json!(null),
            json!(null),
            [A, A, U, U, U],
        ),
    ]
}

async fn call(client: &As<'_>, method: &str, path: &str, body: &Value) -> (u16, Value) {
    if method == "GET" {
        let path = match body.as_str() {
            Some(value) => path
                .replace("KEY", value)
                .replace("TEAM", value)
                .replace("USER", value),
            None => path.to_owned(),
        };
        client.get(&path).await
    } else {
        client.post(path, body.clone()).await
    }
}

#[tokio::test]
async fn permission_matrix_of_every_management_route() {
    let env = Env::new().await;
    let gateway = env.gateway(&env.sqlite_url());
    let admin = As::new(&gateway, MASTER);
    // Somebody else's things, which non-admins must not touch.
    for (path, body) in [
        (
            "/user/new",
            json!({"user_id": "other", "auto_create_key": false}),
        ),
        (
            "/team/new",
            json!({"team_id": "t-other", "team_alias": "other", "models": ["gpt-a"]}),
        ),
        (
            "/organization/new",
            json!({"organization_id": "o-other", "organization_alias": "other"}),
        ),
        ("/end_user/new", json!({"user_id": "e-other"})),
        ("/budget/new", json!({"budget_id": "b-other"})),
    ] {
        let (s, b) = admin.post(path, body).await;
        ok(s, &b);
    }
    let (s, other) = admin
        .post(
            "/key/generate",
            json!({"user_id": "other", "team_id": "t-other"}),
        )
        .await;
    ok(s, &other);
    let other_token = other["token"].as_str().unwrap().to_owned();

    // One caller of each kind: a user of each role with a key, and a key without a user.
    let mut callers = Vec::new();
    for role in [
        "proxy_admin",
        "proxy_admin_viewer",
        "internal_user",
        "internal_user_viewer",
    ] {
        let (s, user) = admin
            .post(
                "/user/new",
                json!({"user_id": format!("u-{role}"), "user_role": role}),
            )
            .await;
        ok(s, &user);
        callers.push((role, user["key"].as_str().unwrap().to_owned()));
    }
    let (s, plain) = admin.post("/key/generate", json!({})).await;
    ok(s, &plain);
    callers.push(("plain key", plain["key"].as_str().unwrap().to_owned()));

    let mut failures = Vec::new();
    for (method, path, admin_body, other_body, expected) in matrix(&other_token) {
        for ((role, key), expect) in callers.iter().zip(expected) {
            let body = if *role == "proxy_admin" {
                &admin_body
            } else {
                &other_body
            };
            let (status, answer) = call(&As::new(&gateway, key), method, path, body).await;
            let got = match status {
                401 => U,
                403 => F,
                _ => A,
            };
            if got != expect {
                failures.push(format!(
                    "{method} {path} as {role}: expected {expect:?}, got {status} {answer}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing of somebody else's changed.
    let (s, info) = admin.get(&format!("/key/info?key={other_token}")).await;
    ok(s, &info);
    let (s, team) = admin.get("/team/info?team_id=t-other").await;
    ok(s, &team);
    assert_eq!(team["team_info"]["models"], json!(["gpt-a"]));
    assert!(
        team["team_info"]["members_with_roles"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (_, user) = admin.get("/user/info?user_id=other").await;
    assert_eq!(user["user_info"]["user_role"], "internal_user");

    // What callers may do with their own things.
    let internal = As::new(&gateway, &callers[2].1);
    let (s, own) = internal.get("/key/info").await;
    ok(s, &own);
    let own_token = own["key"].as_str().unwrap().to_owned();
    let (s, b) = internal
        .post(
            "/key/update",
            json!({"key": own_token, "metadata": {"mine": true}}),
        )
        .await;
    ok(s, &b);
    let (s, b) = internal
        .post("/key/generate", json!({"key_alias": "second"}))
        .await;
    ok(s, &b);
    assert_eq!(b["user_id"], "u-internal_user");
    let (s, b) = internal.get("/key/list").await;
    ok(s, &b);
    assert_eq!(b["total_count"], 2, "{b}");
    let (s, b) = internal.get("/user/info").await;
    ok(s, &b);
    assert_eq!(b["user_id"], "u-internal_user");
    let (s, b) = internal.get("/team/list?user_id=u-internal_user").await;
    ok(s, &b);
    let plain = As::new(&gateway, &callers[4].1);
    let (s, b) = plain.get("/key/info").await;
    ok(s, &b);
    // A team admin may manage the team's members and models, a plain member may not.
    let (s, b) = admin
        .post("/team/member_add", json!({"team_id": "t-other", "member": [{"role": "admin", "user_id": "u-internal_user"}, {"role": "user", "user_id": "u-internal_user_viewer"}]}))
        .await;
    ok(s, &b);
    let (s, b) = internal
        .post(
            "/team/model/add",
            json!({"team_id": "t-other", "models": ["gpt-b"]}),
        )
        .await;
    ok(s, &b);
    let (s, b) = internal.get("/team/info?team_id=t-other").await;
    ok(s, &b);
    let viewer_member = As::new(&gateway, &callers[3].1);
    let (s, b) = viewer_member.get("/team/info?team_id=t-other").await;
    ok(s, &b);
    // Model routes: the admin viewer may not call models; the others may.
    let (s, m) = As::new(&gateway, &callers[1].1).chat("gpt-a", None).await;
    assert_eq!(s, 403, "{m}");
    assert_eq!(internal.chat("gpt-a", None).await.0, 200);
    assert_eq!(viewer_member.chat("gpt-a", None).await.0, 200);
}
