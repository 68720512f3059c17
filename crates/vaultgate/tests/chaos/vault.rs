//! OpenBao killed, restarted empty and restored from a backup, then sealed and unsealed, while
//! the load runs: no model request fails (the provider key is served from memory), readiness
//! says `degraded` during each fault and `healthy` after, keys cannot be created without their
//! Vault copy (503), a key deleted meanwhile loses its copy through the outbox once Vault is
//! back, and in the end every key has its copy and `vaultgate check` finds no drift.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use vaultgate_testkit::Gateway;

use crate::common::{BIN, Env, MASTER, admin, admin_get};
use crate::load::{Load, assert_all_answered, eventually};

const PROVIDER_KEY: &str = "sk-provider-chaos-vault-41d8";

/// The provider key comes from Vault (refreshed every second), the virtual keys are copied
/// under `litellm/`.
fn config(upstream: &str, database_url: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-a-upstream, api_base: '{upstream}/v1', api_key: os.environ/OPENAI_API_KEY}}
general_settings:
  master_key: {MASTER}
  database_url: "{database_url}"
  key_management_system: hashicorp_vault
  key_management_settings:
    store_virtual_keys: true
    access_mode: read_and_write
"#
    )
}

fn builder(env: &Env) -> vaultgate_testkit::GatewayBuilder {
    Gateway::builder(BIN, &config(&env.mock.url(), &env.sqlite_url()))
        .env("HCP_VAULT_ADDR", &env.bao.addr())
        .env("HCP_VAULT_TOKEN", env.bao.root_token())
        .env("HCP_VAULT_REFRESH_INTERVAL", "1")
        .dir(env.dir.path())
}

/// The overall readiness and Vault's part of it, e.g. `degraded/degraded`.
async fn vault_status(gateway: &Gateway) -> String {
    let (_, ready) = admin_get(gateway, "/health/readiness").await;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    format!(
        "{}/{}",
        text(&ready["status"]),
        text(&ready["vault"]["status"])
    )
}

async fn generate(gateway: &Gateway, alias: &str) -> (u16, Value) {
    admin(gateway, "/key/generate", json!({"key_alias": alias})).await
}

/// Every copy under `litellm/` as Vault holds it (its data fields): the operator's backup.
fn backup(env: &Env, aliases: &[&str]) -> BTreeMap<String, Value> {
    aliases
        .iter()
        .map(|alias| {
            let copy = env
                .bao
                .kv_get(None, "secret", &format!("litellm/{alias}"))
                .unwrap()
                .unwrap();
            ((*alias).to_owned(), copy["data"]["data"].clone())
        })
        .collect()
}

fn restore(env: &Env, backup: &BTreeMap<String, Value>) {
    env.bao
        .kv_put(None, "secret", "OPENAI_API_KEY", PROVIDER_KEY)
        .unwrap();
    for (alias, data) in backup {
        let fields: Vec<(&str, &str)> = data
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        env.bao
            .kv_put_fields(None, "secret", &format!("litellm/{alias}"), &fields)
            .unwrap();
    }
}

/// The keys the gateway lists, by alias, with the raw keys this test was given.
async fn assert_every_key_has_its_copy(
    env: &Env,
    gateway: &Gateway,
    raw: &BTreeMap<String, String>,
) {
    let (status, listed) = admin_get(gateway, "/key/list?return_full_object=true").await;
    assert_eq!(status, 200, "{listed}");
    let aliases: Vec<String> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_alias"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = raw.keys().cloned().collect();
    let mut listed_aliases = aliases.clone();
    expected.sort();
    listed_aliases.sort();
    assert_eq!(listed_aliases, expected, "keys stored vs keys answered 200");
    for (alias, key) in raw {
        assert_eq!(
            env.vault_copy(alias).as_deref(),
            Some(key.as_str()),
            "the key {alias} has no (or another) Vault copy"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_killed_restarted_empty_restored_and_sealed_under_load() {
    let mut env = Env::new().await;
    env.bao
        .kv_put(None, "secret", "OPENAI_API_KEY", PROVIDER_KEY)
        .unwrap();
    env.mock.require_key(Some(PROVIDER_KEY));
    let gateway = builder(&env).start().unwrap();
    let mut raw = BTreeMap::new();
    for alias in ["load", "kept", "deleted-while-sealed"] {
        let (status, body) = generate(&gateway, alias).await;
        assert_eq!(status, 200, "{body}");
        raw.insert(alias.to_owned(), body["key"].as_str().unwrap().to_owned());
    }
    let saved = backup(&env, &["load", "kept", "deleted-while-sealed"]);
    let load = Load::chat(&gateway.url, &raw["load"], "gpt-a", 4);
    load.flowing(50).await;

    // Killed: requests go on from the key in memory; keys that cannot get a copy are refused.
    env.bao.stop().unwrap();
    eventually("readiness degraded with Vault killed", async || {
        vault_status(&gateway).await == "degraded/degraded"
    })
    .await;
    let (status, body) = generate(&gateway, "during-kill").await;
    assert_eq!(status, 503, "a key without its Vault copy: {body}");
    load.flowing(50).await;

    // Back empty (a dev server keeps nothing), then restored from the backup.
    env.bao.restart().unwrap();
    load.flowing(50).await;
    restore(&env, &saved);
    eventually("readiness healthy after the restore", async || {
        vault_status(&gateway).await == "healthy/ok"
    })
    .await;
    let (status, body) = generate(&gateway, "after-restore").await;
    assert_eq!(status, 200, "{body}");
    raw.insert(
        "after-restore".into(),
        body["key"].as_str().unwrap().to_owned(),
    );

    // Sealed: the same, and a key deleted meanwhile is revoked at once, its copy removed by
    // the outbox once Vault is unsealed.
    env.bao.seal().unwrap();
    eventually("readiness degraded with Vault sealed", async || {
        vault_status(&gateway).await == "degraded/degraded"
    })
    .await;
    let (status, body) = generate(&gateway, "during-seal").await;
    assert_eq!(status, 503, "a key without its Vault copy: {body}");
    let deleted = raw.remove("deleted-while-sealed").unwrap();
    let (status, body) = admin(&gateway, "/key/delete", json!({"keys": [deleted]})).await;
    assert_eq!(status, 200, "{body}");
    load.flowing(50).await;
    env.bao.unseal().unwrap();
    eventually("readiness healthy after the unseal", async || {
        vault_status(&gateway).await == "healthy/ok"
    })
    .await;
    eventually(
        "the outbox deleting the copy of the deleted key",
        async || env.vault_copy("deleted-while-sealed").is_none(),
    )
    .await;
    load.flowing(50).await;

    let outcomes = load.stop().await;
    assert_all_answered(&outcomes, "while Vault was killed, empty or sealed");
    assert_every_key_has_its_copy(&env, &gateway, &raw).await;
    let check = builder(&env).run(&["check"]).unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && stdout.contains("in sync with Vault"),
        "{stdout}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let logs = gateway.logs();
    assert!(!logs.contains(PROVIDER_KEY), "the provider key in the logs");
    eprintln!(
        "vault chaos: {} model requests, all answered",
        outcomes.len()
    );
}
