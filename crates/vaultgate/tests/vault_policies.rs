//! The README's Vault policies, checked: each HCL block of "Vault policies" is applied, as the
//! README has it, to a real OpenBao dev server, and the feature it is for runs through the real
//! binary with a token that holds only that policy (no `default` policy): start, requests,
//! token renewal, key copies, lease renewal and revocation, and `vaultgate check`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;
use vaultgate_testkit::openbao::OpenBao;

mod common;

use common::{Env, MASTER, admin, admin_get};

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const PROVIDER: &str = "sk-provider-policies-e2e";
const README: &str = include_str!("../../../README.md");

/// The HCL block after `<!-- policy: NAME -->` in the README.
fn policy(name: &str) -> String {
    let marker = format!("<!-- policy: {name} -->");
    let after = README
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README has no {marker}"))
        .1;
    let block = after
        .split_once("```hcl\n")
        .expect("an hcl block after the marker")
        .1;
    block
        .split_once("```")
        .expect("the block ends")
        .0
        .to_owned()
}

/// A token with exactly these policies (nothing from `default`).
fn token(bao: &OpenBao, policies: &[&str], ttl: &str) -> String {
    let mut args = vec![
        "token".to_owned(),
        "create".into(),
        "-field=token".into(),
        "-no-default-policy".into(),
        format!("-ttl={ttl}"),
    ];
    args.extend(policies.iter().map(|p| format!("-policy={p}")));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    bao.bao(&refs).unwrap().trim().to_owned()
}

async fn wait_for<F, Fut>(limit: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn chat(gateway: &Gateway, model: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(MASTER)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn check_passes(builder: vaultgate_testkit::GatewayBuilder) {
    let output = builder.run(&["check"]).unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "check failed:\n{text}");
}

// Multi-threaded: the mock upstream (the RabbitMQ API Vault calls) must answer while the test
// blocks on a child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_only_policy_serves_provider_keys_and_renews_its_token() {
    let bao = OpenBao::start().unwrap();
    let mock = MockUpstream::start().await.unwrap();
    mock.require_key(Some(PROVIDER));
    bao.kv_put(None, "secret", "OPENAI_API_KEY", PROVIDER)
        .unwrap();
    bao.kv_put(None, "secret", "team/openai", PROVIDER).unwrap();
    bao.write_policy(None, "vg-read", &policy("read-only"))
        .unwrap();
    let check_token = token(&bao, &["vg-read"], "1h");
    let config = format!(
        "model_list:\n\
         - model_name: env-ref\n  litellm_params: {{model: openai/m, api_base: '{base}/v1', api_key: os.environ/OPENAI_API_KEY}}\n\
         - model_name: vault-ref\n  litellm_params: {{model: openai/m, api_base: '{base}/v1', api_key: 'vault://secret/team/openai#key'}}\n\
         general_settings:\n  master_key: {MASTER}\n  key_management_system: hashicorp_vault\n",
        base = mock.url()
    );
    let builder = |token: &str| {
        Gateway::builder(BIN, &config)
            .env("HCP_VAULT_ADDR", &bao.addr())
            .env("HCP_VAULT_TOKEN", token)
    };
    check_passes(builder(&check_token));
    // Short enough that the gateway renews it during the test.
    let gateway = builder(&token(&bao, &["vg-read"], "10s")).start().unwrap();
    for model in ["env-ref", "vault-ref"] {
        let (status, body) = chat(&gateway, model).await;
        assert_eq!(status, 200, "{model}: {body}\n{}", gateway.logs());
    }
    let renewed = wait_for(Duration::from_secs(30), || async {
        let (_, vault) = admin_get(&gateway, "/admin/vault").await;
        vault["renewals"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    let (_, vault) = admin_get(&gateway, "/admin/vault").await;
    assert!(
        renewed,
        "the token was not renewed: {vault}\n{}",
        gateway.logs()
    );
    assert_eq!(vault["auth_error"], Value::Null, "{vault}");
    assert_eq!(vault["status"], "ok", "{vault}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_virtual_keys_policy_writes_moves_and_deletes_copies() {
    let env = Env::new().await;
    env.bao
        .write_policy(None, "vg-read", &policy("read-only"))
        .unwrap();
    env.bao
        .write_policy(None, "vg-mirror", &policy("store-virtual-keys"))
        .unwrap();
    let token = token(&env.bao, &["vg-read", "vg-mirror"], "1h");
    let url = env.sqlite_url();
    let vault = [("HCP_VAULT_TOKEN", token.as_str())];
    let gateway = env.gateway_with(&url, &vault);

    let (s, key) = admin(
        &gateway,
        "/key/generate",
        json!({"key_alias": "apps/one", "models": ["gpt-a"]}),
    )
    .await;
    assert_eq!(s, 200, "{key}\n{}", gateway.logs());
    let raw = key["key"].as_str().unwrap().to_owned();
    assert_eq!(env.vault_copy("apps/one").as_deref(), Some(raw.as_str()));

    let (s, body) = admin(
        &gateway,
        "/key/update",
        json!({"key": raw, "key_alias": "apps/two"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(env.vault_copy("apps/two").as_deref(), Some(raw.as_str()));
    assert_eq!(env.vault_copy("apps/one"), None);

    let (s, body) = admin(&gateway, "/key/regenerate", json!({"key": raw})).await;
    assert_eq!(s, 200, "{body}");
    let new = body["key"].as_str().unwrap().to_owned();
    assert_eq!(env.vault_copy("apps/two").as_deref(), Some(new.as_str()));

    let (s, second) = admin(&gateway, "/key/generate", json!({})).await;
    assert_eq!(s, 200, "{second}");
    check_passes(env.builder(&url, &vault));

    let (s, body) = admin(&gateway, "/key/delete", json!({"keys": [new]})).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(env.vault_copy("apps/two"), None);
    let (_, drift) = admin_get(&gateway, "/admin/vault/drift").await;
    assert_eq!(drift["clean"], true, "{drift}");
    assert_eq!(
        drift["pending_deletions"],
        json!([]),
        "a delete was queued, not done: {drift}"
    );
    check_passes(env.builder(&url, &vault));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamic_engine_policy_issues_renews_and_revokes_leases() {
    let bao = OpenBao::start().unwrap();
    let mock = MockUpstream::start().await.unwrap();
    mock.require_issued_credentials();
    // Renewable 3 s leases, 60 s at most.
    bao.enable_rabbitmq(&mock.url(), 3, 60).unwrap();
    let dynamic =
        policy("dynamic-engine").replace("aws/creds/bedrock-role", "rabbitmq/creds/gateway");
    assert!(dynamic.contains("rabbitmq/creds/gateway"));
    bao.write_policy(None, "vg-dynamic", &dynamic).unwrap();
    // The token lines of the read-only policy, without its KV line.
    let read_only = policy("read-only");
    let token_lines = &read_only[read_only.find("# The gateway's own token").unwrap()..];
    bao.write_policy(None, "vg-token", token_lines).unwrap();
    let token = token(&bao, &["vg-dynamic", "vg-token"], "1h");
    let config = format!(
        "model_list:\n  - model_name: leased\n    litellm_params: {{model: openai/m, api_base: '{}/v1', api_key: 'vault://rabbitmq/creds/gateway#password'}}\n\
         general_settings:\n  master_key: {MASTER}\n",
        mock.url()
    );
    let builder = || {
        Gateway::builder(BIN, &config)
            .env("HCP_VAULT_ADDR", &bao.addr())
            .env("HCP_VAULT_TOKEN", &token)
    };
    check_passes(builder());
    let gateway = builder().start().unwrap();
    let (status, body) = chat(&gateway, "leased").await;
    assert_eq!(status, 200, "{body}\n{}", gateway.logs());
    let renewed = wait_for(Duration::from_secs(30), || async {
        let (_, readiness) = admin_get(&gateway, "/health/readiness").await;
        readiness["vault"]["paths"][0]["renewals"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    })
    .await;
    let (_, readiness) = admin_get(&gateway, "/health/readiness").await;
    assert!(renewed, "no renewal: {readiness}\n{}", gateway.logs());
    assert_eq!(
        readiness["vault"]["paths"][0]["last_error"],
        Value::Null,
        "{readiness}"
    );
    let (status, body) = chat(&gateway, "leased").await;
    assert_eq!(status, 200, "{body}");

    // A graceful stop revokes the lease: Vault deletes the user it created.
    assert!(gateway.stop().is_some_and(|s| s.success()));
    let users = mock.rabbitmq_users();
    assert!(users.live.is_empty(), "a lease was left behind: {users:?}");
}
