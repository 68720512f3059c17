//! Reading, writing and resolving secrets against a real OpenBao dev server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::{bao, config, env};
use vaultgate_config::ConfigValue;
use vaultgate_core::{Error, ExposeSecret, secret};
use vaultgate_secrets::{Env, LiveSecrets, SecretOrigin, VaultClient, VaultSettings, check};

fn reference(name: &str) -> ConfigValue {
    ConfigValue::Reference(name.into())
}

async fn client(env: &Env) -> VaultClient {
    VaultClient::connect(VaultSettings::from_env(env).unwrap().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_admin_with_kv_v2_at_secret_as_in_the_seed() {
    let bao = bao();
    bao.create_namespace("admin").unwrap();
    bao.enable_kv2(Some("admin"), "secret").unwrap();
    bao.kv_put(
        Some("admin"),
        "secret",
        "AZURE_API_KEY",
        "sk-azure-from-vault",
    )
    .unwrap();
    // The same name in the root namespace must not be the one read.
    bao.kv_put(None, "secret", "AZURE_API_KEY", "sk-wrong-namespace")
        .unwrap();

    let env = env(&bao, &[("HCP_VAULT_NAMESPACE", "admin")]);
    let live = LiveSecrets::start(&config(&["AZURE_API_KEY"], ""), env)
        .await
        .unwrap();
    let snapshot = live.snapshot();
    assert_eq!(
        snapshot.value(&reference("AZURE_API_KEY")),
        Some("sk-azure-from-vault")
    );
    assert_eq!(
        snapshot.value(&ConfigValue::Literal("plain".into())),
        Some("plain")
    );
    let expected_path = format!("{}/v1/admin/secret/data/AZURE_API_KEY", bao.addr());
    assert_eq!(
        snapshot.origin("AZURE_API_KEY"),
        Some(&SecretOrigin::Vault {
            path: expected_path
        })
    );
    assert_eq!(live.readiness().status, "ok");
    assert_eq!(
        live.readiness().token_ttl_secs,
        None,
        "root token never expires"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_mount_and_path_prefix() {
    let bao = bao();
    bao.enable_kv2(None, "kv-gw").unwrap();
    bao.kv_put(
        None,
        "kv-gw",
        "gateway/prod/OPENAI_API_KEY",
        "sk-openai-prod",
    )
    .unwrap();
    let env = env(
        &bao,
        &[
            ("HCP_VAULT_MOUNT_NAME", "/kv-gw/"),
            ("HCP_VAULT_PATH_PREFIX", " gateway/prod/ "),
        ],
    );
    let client = client(&env).await;
    assert_eq!(
        client.secret_path("OPENAI_API_KEY").unwrap(),
        format!("{}/v1/kv-gw/data/gateway/prod/OPENAI_API_KEY", bao.addr())
    );
    let value = client.read_secret("OPENAI_API_KEY").await.unwrap().unwrap();
    assert_eq!(value.expose_secret(), "sk-openai-prod");
    assert!(client.read_secret("NOT_THERE").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_fallback_and_one_error_listing_every_missing_name() {
    let bao = bao();
    bao.kv_put(None, "secret", "IN_VAULT", "vault-value-1")
        .unwrap();
    let cfg = config(
        &[
            "IN_VAULT",
            "ONLY_ENV",
            "MISSING_ONE",
            "MISSING_TWO",
            "MISSING_TWO",
        ],
        "",
    );

    let base = env(&bao, &[("ONLY_ENV", "env-value-2")]);
    let error = LiveSecrets::start(&cfg, base.clone()).await.unwrap_err();
    let Error::Config(message) = &error else {
        panic!("expected a config error, got {error:?}")
    };
    assert!(message.starts_with("2 secret reference(s)"), "{message}");
    for expected in [
        format!("MISSING_ONE (used at model_list[2].litellm_params.api_key): not in Vault at {}/v1/secret/data/MISSING_ONE", bao.addr()),
        "MISSING_TWO (used at model_list[3].litellm_params.api_key, model_list[4].litellm_params.api_key)".into(),
        format!("{}/v1/secret/data/MISSING_TWO", bao.addr()),
    ] {
        assert!(message.contains(&expected), "missing {expected:?} in:\n{message}");
    }
    assert!(
        !message.contains("IN_VAULT") && !message.contains("ONLY_ENV"),
        "{message}"
    );
    assert!(
        !message.contains("vault-value-1") && !message.contains("env-value-2"),
        "{message}"
    );

    let env = base
        .with("MISSING_ONE", "env-3")
        .with("MISSING_TWO", "env-4");
    let live = LiveSecrets::start(&cfg, env).await.unwrap();
    let snapshot = live.snapshot();
    assert_eq!(
        snapshot.value(&reference("IN_VAULT")),
        Some("vault-value-1")
    );
    assert_eq!(snapshot.value(&reference("ONLY_ENV")), Some("env-value-2"));
    assert_eq!(snapshot.origin("ONLY_ENV"), Some(&SecretOrigin::Env));
    assert_eq!(snapshot.value(&reference("MISSING_TWO")), Some("env-4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_vault_references_come_from_the_environment() {
    let cfg = vaultgate_config::Config::parse(
        "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, api_key: os.environ/K1}\n\
         general_settings: {master_key: os.environ/MASTER}\n",
    )
    .unwrap();
    let error = LiveSecrets::start(&cfg, Env::from_map([("K1", "v1")]))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("MASTER (used at general_settings.master_key): not in the environment (no Vault configured)"), "{message}");
    let live = LiveSecrets::start(&cfg, Env::from_map([("K1", "v1"), ("MASTER", "sk-m")]))
        .await
        .unwrap();
    assert_eq!(live.snapshot().value(&reference("MASTER")), Some("sk-m"));
    assert_eq!(live.readiness().status, "disabled");
    assert!(live.vault().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_configured_without_login_is_a_config_error() {
    let error = LiveSecrets::start(&config(&["A"], ""), Env::from_map([("A", "x")]))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Config(m) if m.contains("HCP_VAULT_TOKEN")),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_only_reads_the_environment_only() {
    let bao = bao();
    bao.kv_put(None, "secret", "PROVIDER_KEY", "from-vault")
        .unwrap();
    let cfg = config(&["PROVIDER_KEY"], "{access_mode: write_only}");
    let live = LiveSecrets::start(&cfg, env(&bao, &[("PROVIDER_KEY", "from-env")]))
        .await
        .unwrap();
    assert_eq!(
        live.snapshot().value(&reference("PROVIDER_KEY")),
        Some("from-env")
    );
    assert_eq!(
        live.snapshot().origin("PROVIDER_KEY"),
        Some(&SecretOrigin::Env)
    );
    // The client is still there for writes.
    let vault = live.vault().expect("vault client for writes");
    vault
        .write_secret("litellm/w", &secret("raw"), None, &BTreeMap::new())
        .await
        .unwrap();
    // And a refresh reads nothing.
    assert_eq!(live.refresh_now().await.unwrap(), 0);
    assert!(!live.refresh_one("PROVIDER_KEY").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_keys_limit_vault_reads() {
    let bao = bao();
    bao.kv_put(None, "secret", "HOSTED", "hosted-from-vault")
        .unwrap();
    bao.kv_put(None, "secret", "NOT_HOSTED", "should-not-be-read")
        .unwrap();
    let cfg = config(&["HOSTED", "NOT_HOSTED"], "{hosted_keys: [HOSTED]}");
    let live = LiveSecrets::start(&cfg, env(&bao, &[("NOT_HOSTED", "from-env")]))
        .await
        .unwrap();
    let snapshot = live.snapshot();
    assert_eq!(
        snapshot.value(&reference("HOSTED")),
        Some("hosted-from-vault")
    );
    assert_eq!(snapshot.value(&reference("NOT_HOSTED")), Some("from-env"));

    let error = LiveSecrets::start(&cfg, env(&bao, &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("NOT_HOSTED") && error.contains("not listed in hosted_keys"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_list_delete_and_unsafe_names() {
    let bao = bao();
    bao.create_namespace("admin").unwrap();
    bao.enable_kv2(Some("admin"), "secret").unwrap();
    let env = env(&bao, &[("HCP_VAULT_NAMESPACE", "admin")]);
    let client = client(&env).await;

    let metadata = BTreeMap::from([("team".to_owned(), "ml".to_owned())]);
    client
        .write_secret(
            "litellm/virtual-key-1",
            &secret("sk-virtual-1"),
            Some("made by a test"),
            &metadata,
        )
        .await
        .unwrap();
    let stored = bao
        .kv_get(Some("admin"), "secret", "litellm/virtual-key-1")
        .unwrap()
        .unwrap();
    assert_eq!(stored["data"]["data"]["key"], "sk-virtual-1");
    assert_eq!(stored["data"]["data"]["description"], "made by a test");
    assert_eq!(stored["data"]["metadata"]["custom_metadata"]["team"], "ml");
    let read = client
        .read_secret("litellm/virtual-key-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.expose_secret(), "sk-virtual-1");

    client
        .write_secret("litellm/alias-two", &secret("sk-2"), None, &BTreeMap::new())
        .await
        .unwrap();
    let mut listed = client.list_secrets("litellm").await.unwrap();
    listed.sort();
    assert_eq!(listed, ["alias-two", "virtual-key-1"]);
    assert!(
        client
            .list_secrets("empty-folder/")
            .await
            .unwrap()
            .is_empty()
    );

    client.delete_secret("litellm/virtual-key-1").await.unwrap();
    assert!(
        client
            .read_secret("litellm/virtual-key-1")
            .await
            .unwrap()
            .is_none(),
        "soft-deleted"
    );
    client.delete_secret("litellm/never-existed").await.unwrap();
    client.destroy_secret("litellm/alias-two").await.unwrap();
    assert_eq!(
        client.list_secrets("litellm/").await.unwrap(),
        ["virtual-key-1"]
    );

    for bad in ["../escape", "a/../b", "new\nline", "x\u{2028}y", ""] {
        let error = client.read_secret(bad).await.unwrap_err();
        assert!(
            matches!(error, Error::BadRequest { .. }),
            "{bad:?}: {error:?}"
        );
        assert!(
            client
                .write_secret(bad, &secret("v"), None, &BTreeMap::new())
                .await
                .is_err()
        );
    }

    // A value stored under another field name is reported, without the value.
    bao.kv_put_fields(
        Some("admin"),
        "secret",
        "wrong-shape",
        &[("value", "hidden-value")],
    )
    .unwrap();
    let error = client
        .read_secret("wrong-shape")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no field `key`") && !error.contains("hidden-value"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_sources_and_mirror_capability_without_values() {
    let bao = bao();
    bao.kv_put(None, "secret", "FOUND", "found-value-xyz")
        .unwrap();
    let cfg = config(
        &["FOUND", "FALLBACK", "ABSENT"],
        "{store_virtual_keys: true, access_mode: read_and_write}",
    );
    let report = check(&cfg, &env(&bao, &[("FALLBACK", "fallback-value-xyz")])).await;
    let text = report.to_string();
    eprintln!("{text}");
    assert!(!report.ok, "{text}");
    assert!(text.contains("method token"), "{text}");
    assert!(
        text.contains(&format!(
            "FOUND: found in Vault at {}/v1/secret/data/FOUND",
            bao.addr()
        )),
        "{text}"
    );
    assert!(
        text.contains("FALLBACK: not in Vault at") && text.contains("environment fallback"),
        "{text}"
    );
    assert!(text.contains("FAIL ABSENT: MISSING"), "{text}");
    assert!(
        text.contains(
            "ok   virtual key mirror: capabilities on secret/data/litellm/vaultgate-check: [root]"
        ),
        "{text}"
    );
    assert!(!text.contains("value-xyz"), "{text}");

    // A read-only token: everything found, but the mirror cannot write.
    bao.write_policy(
        None,
        "reader",
        "path \"secret/data/*\" { capabilities = [\"read\"] }",
    )
    .unwrap();
    let token = bao.create_token(None, &["reader"], "1h", None).unwrap();
    let env = env(
        &bao,
        &[
            ("HCP_VAULT_TOKEN", token.as_str()),
            ("FALLBACK", "f"),
            ("ABSENT", "a"),
        ],
    );
    let report = check(&cfg, &env).await;
    let text = report.to_string();
    assert!(!report.ok, "{text}");
    assert!(text.contains("policies [default, reader]"), "{text}");
    assert!(
        text.contains("FAIL virtual key mirror") && text.contains("[read]"),
        "{text}"
    );

    // Rights on the data path alone are not enough: the metadata and the listing are probed
    // too, and the policy lines to add are printed.
    bao.write_policy(
        None,
        "reader",
        "path \"secret/data/*\" { capabilities = [\"read\", \"create\", \"update\", \"delete\"] }",
    )
    .unwrap();
    let report = check(&cfg, &env).await;
    let text = report.to_string();
    assert!(!report.ok, "{text}");
    assert!(
        text.contains(
            "ok   virtual key mirror: capabilities on secret/data/litellm/vaultgate-check"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "needs [create, read, update, delete] on secret/metadata/litellm/vaultgate-check"
        ) && text.contains("needs [list] on secret/metadata/litellm/;"),
        "{text}"
    );
    let hcl = r#"path "secret/metadata/litellm/*" { capabilities = ["create", "read", "update", "delete", "list"] }"#;
    assert!(text.contains(hcl), "{text}");
    assert!(!text.contains(r#"path "secret/data/litellm/*""#), "{text}");

    // The printed line, added as printed, is enough.
    bao.write_policy(
        None,
        "reader",
        &format!("path \"secret/data/*\" {{ capabilities = [\"read\", \"create\", \"update\", \"delete\"] }}\n{hcl}"),
    )
    .unwrap();
    let report = check(&cfg, &env).await;
    assert!(report.ok, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_read_error_falls_back_to_env_but_shows_in_readiness() {
    let bao = bao();
    bao.kv_put(None, "secret", "ALLOWED", "a").unwrap();
    bao.kv_put(None, "secret", "DENIED", "vault-denied-value")
        .unwrap();
    bao.write_policy(
        None,
        "narrow",
        "path \"secret/data/ALLOWED\" { capabilities = [\"read\"] }",
    )
    .unwrap();
    let token = bao.create_token(None, &["narrow"], "1h", None).unwrap();
    let env = env(
        &bao,
        &[("HCP_VAULT_TOKEN", token.as_str()), ("DENIED", "env-value")],
    );
    let live = LiveSecrets::start(&config(&["ALLOWED", "DENIED"], ""), env.clone())
        .await
        .unwrap();
    assert_eq!(live.snapshot().get("DENIED"), Some("env-value"));
    assert_eq!(live.snapshot().origin("DENIED"), Some(&SecretOrigin::Env));
    let readiness = live.readiness();
    assert_eq!(readiness.status, "degraded");
    assert!(readiness.last_error.unwrap().contains("403"));

    // Without the environment value, start-up names the failure and the path.
    let env = common::env(&bao, &[("HCP_VAULT_TOKEN", token.as_str())]);
    let message = LiveSecrets::start(&config(&["ALLOWED", "DENIED"], ""), env)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains(&format!("DENIED (used at model_list[1].litellm_params.api_key): Vault read at {}/v1/secret/data/DENIED failed", bao.addr())), "{message}");
    assert!(message.contains("permission denied"), "{message}");
}
