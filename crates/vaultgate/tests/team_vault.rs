//! Vault per team, end to end: the real binary, a real OpenBao with two teams in two mounts
//! (one of them in a namespace of its own), SQLite and PostgreSQL. A team's keys are copied to
//! its location; moving a key between teams or changing a team's settings moves the copies
//! (the old ones deleted); a location the gateway's token may not write is refused when the
//! settings are saved (403 naming path and capability); `check` shows each location and its
//! drift.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use vaultgate_testkit::postgres::PgSchema;

mod common;

use common::{Env, admin, admin_get};

fn copy_at(env: &Env, namespace: Option<&str>, mount: &str, path: &str) -> Option<String> {
    env.bao
        .kv_get(namespace, mount, path)
        .unwrap()
        .and_then(|answer| {
            answer
                .pointer("/data/data/key")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
}

fn team_a() -> Value {
    json!({"mount": "kv-a", "path_prefix": "team-a"})
}

fn team_b() -> Value {
    json!({"namespace": "team-b", "mount": "kv-b", "path_prefix": "keys/b"})
}

/// Two mounts: `kv-a` at the root, `kv-b` in namespace `team-b`.
fn two_mounts(env: &Env) {
    env.bao.enable_kv2(None, "kv-a").unwrap();
    env.bao.create_namespace("team-b").unwrap();
    env.bao.enable_kv2(Some("team-b"), "kv-b").unwrap();
}

async fn new_team(gateway: &vaultgate_testkit::Gateway, id: &str, settings: Value) -> (u16, Value) {
    admin(
        gateway,
        "/team/new",
        json!({"team_id": id, "metadata": {"secret_manager_settings": settings}}),
    )
    .await
}

async fn copies_follow_their_team(database_url: &str, env: &Env) {
    two_mounts(env);
    let gateway = env.gateway(database_url);
    assert_eq!(new_team(&gateway, "a", team_a()).await.0, 200);
    assert_eq!(new_team(&gateway, "b", team_b()).await.0, 200);

    let (status, a1) = admin(
        &gateway,
        "/key/generate",
        json!({"key_alias": "a1", "team_id": "a"}),
    )
    .await;
    assert_eq!(status, 200, "{a1}");
    let a1_key = a1["key"].as_str().unwrap().to_owned();
    let (_, plain) = admin(&gateway, "/key/generate", json!({"team_id": "a"})).await;
    let plain_key = plain["key"].as_str().unwrap().to_owned();
    let plain_name = format!("virtual-key-{}", plain["token"].as_str().unwrap());
    let (_, outside) = admin(&gateway, "/key/generate", json!({"key_alias": "none"})).await;

    // Each copy at its team's location, none at the gateway's.
    assert_eq!(
        copy_at(env, None, "kv-a", "team-a/a1").as_deref(),
        Some(a1_key.as_str())
    );
    assert_eq!(
        copy_at(env, None, "kv-a", &format!("team-a/{plain_name}")).as_deref(),
        Some(plain_key.as_str())
    );
    assert_eq!(copy_at(env, None, "secret", "litellm/a1"), None);
    assert_eq!(env.vault_copy("none").as_deref(), outside["key"].as_str());

    // A key moved to team b moves its copy into b's namespace; the old one is deleted.
    let (status, body) = admin(
        &gateway,
        "/key/update",
        json!({"key": a1["token"], "team_id": "b"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        copy_at(env, Some("team-b"), "kv-b", "keys/b/a1").as_deref(),
        Some(a1_key.as_str())
    );
    assert_eq!(copy_at(env, None, "kv-a", "team-a/a1"), None);

    // Team a's new settings move its remaining key.
    let (status, body) = admin(
        &gateway,
        "/team/update",
        json!({"team_id": "a", "metadata": {"secret_manager_settings": {"mount": "kv-a", "path_prefix": "moved"}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        copy_at(env, None, "kv-a", &format!("moved/{plain_name}")).as_deref(),
        Some(plain_key.as_str())
    );
    assert_eq!(
        copy_at(env, None, "kv-a", &format!("team-a/{plain_name}")),
        None
    );

    // The moved keys still work.
    for key in [&a1_key, &plain_key] {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", gateway.url))
            .bearer_auth(key)
            .json(&json!({"model": "gpt-b", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    // A key whose copy vanished cannot be moved: nothing moves, the settings stay.
    let (_, a2) = admin(
        &gateway,
        "/key/generate",
        json!({"key_alias": "a2", "team_id": "a"}),
    )
    .await;
    env.bao
        .bao(&["kv", "metadata", "delete", "-mount=kv-a", "moved/a2"])
        .unwrap();
    let (status, body) = admin(
        &gateway,
        "/team/update",
        json!({"team_id": "a", "metadata": {"secret_manager_settings": {"mount": "kv-a", "path_prefix": "again"}}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(a2["key_name"].as_str().unwrap()),
        "{body}"
    );
    assert_eq!(
        copy_at(env, None, "kv-a", &format!("again/{plain_name}")),
        None
    );
    let (_, info) = admin_get(&gateway, "/team/info?team_id=a").await;
    assert_eq!(
        info["team_info"]["metadata"]["secret_manager_settings"]["path_prefix"], "moved",
        "{info}"
    );
    let (status, _) = admin(&gateway, "/key/delete", json!({"key_aliases": ["a2"]})).await;
    assert_eq!(status, 200);
    drop(gateway);

    // check: one line per location, with its teams; drift shows on the team's line.
    let check = || {
        let output = env.builder(database_url, &[]).run(&["check"]).unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (ok, stdout) = check();
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("vault location: namespace team-b, mount kv-b, path_prefix keys/b (teams: b): 1 copies in sync"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mount kv-a, path_prefix moved (teams: a): 1 copies in sync"),
        "{stdout}"
    );
    env.bao
        .bao(&[
            "kv",
            "delete",
            "-namespace=team-b",
            "-mount=kv-b",
            "keys/b/a1",
        ])
        .unwrap();
    let (ok, stdout) = check();
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("path_prefix keys/b (teams: b): 0 copies in sync, 1 DRIFT")
            && stdout.contains("DRIFT"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn team_copies_live_at_the_teams_location_and_move_with_it_on_sqlite() {
    let env = Env::new().await;
    copies_follow_their_team(&env.sqlite_url(), &env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn team_copies_live_at_the_teams_location_and_move_with_it_on_postgres() {
    let env = Env::new().await;
    let schema = PgSchema::create().unwrap();
    copies_follow_their_team(&schema.url, &env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_location_the_token_may_not_write_is_refused_when_saved_naming_path_and_capability() {
    let env = Env::new().await;
    two_mounts(&env);
    env.bao
        .write_policy(
            None,
            "only-a",
            r#"
path "secret/data/litellm/*" { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/litellm/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "kv-a/data/team-a/*" { capabilities = ["create", "read", "update", "delete"] }
path "kv-a/metadata/team-a/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "kv-a/data/read-only/*" { capabilities = ["read"] }
path "kv-a/metadata/read-only/*" { capabilities = ["create", "read", "update", "delete", "list"] }
"#,
        )
        .unwrap();
    let token = env.bao.create_token(None, &["only-a"], "1h", None).unwrap();
    let gateway = env.gateway_with(&env.sqlite_url(), &[("HCP_VAULT_TOKEN", &token)]);

    // A new team in a mount the token cannot touch: 403, no team.
    let (status, body) = new_team(&gateway, "c", json!({"mount": "kv-b"})).await;
    assert_eq!(status, 403, "{body}");
    let text = body["error"]["message"].as_str().unwrap();
    assert!(
        text.contains("kv-b/data/litellm/vaultgate-capability-probe")
            && text.contains("\"create\""),
        "{body}"
    );
    let (status, _) = admin_get(&gateway, "/team/info?team_id=c").await;
    assert_eq!(status, 404);

    // An allowed team; moving it to a prefix it may only read is refused and moves nothing.
    assert_eq!(new_team(&gateway, "a", team_a()).await.0, 200);
    let (_, key) = admin(
        &gateway,
        "/key/generate",
        json!({"key_alias": "k", "team_id": "a"}),
    )
    .await;
    let raw = key["key"].as_str().unwrap();
    let (status, body) = admin(
        &gateway,
        "/team/update",
        json!({"team_id": "a", "metadata": {"secret_manager_settings": {"mount": "kv-a", "path_prefix": "read-only"}}}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let text = body["error"]["message"].as_str().unwrap();
    assert!(
        text.contains("kv-a/data/read-only/vaultgate-capability-probe")
            && text.contains("\"create\""),
        "{body}"
    );
    assert_eq!(
        copy_at(&env, None, "kv-a", "team-a/k").as_deref(),
        Some(raw)
    );
    let (_, info) = admin_get(&gateway, "/team/info?team_id=a").await;
    assert_eq!(
        info["team_info"]["metadata"]["secret_manager_settings"]["path_prefix"], "team-a",
        "{info}"
    );

    // A typo is a 400 with a suggestion, before Vault is asked.
    let (status, body) = new_team(&gateway, "d", json!({"mount": "kv-a", "prefix": "x"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean 'path_prefix'"),
        "{body}"
    );
}
