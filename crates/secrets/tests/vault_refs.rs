//! `vault://mount/path#field` references against a real OpenBao dev server: KV v2 (found by
//! asking the server, versions pinned or not), KV v1, one read per path, expiring values
//! replaced before they expire, and clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{LIMIT, bao, env, wait_until};
use vaultgate_config::{Config, ConfigValue};
use vaultgate_secrets::LiveSecrets;

fn config(values: &[&str]) -> Config {
    let mut text = String::from("model_list:\n");
    for (i, value) in values.iter().enumerate() {
        text.push_str(&format!(
            "  - model_name: m{i}\n    litellm_params:\n      model: openai/gpt-4o\n      api_key: \"{value}\"\n"
        ));
    }
    Config::parse(&text).unwrap()
}

fn value(text: &str) -> ConfigValue {
    ConfigValue::parse(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv2_fields_of_one_path_versions_and_refresh() {
    let bao = bao();
    bao.kv_put_fields(
        None,
        "secret",
        "bedrock",
        &[("access_key", "AKIA1"), ("secret_key", "s1")],
    )
    .unwrap();
    bao.bao(&["secrets", "enable", "-path=kv1", "-version=1", "kv"])
        .unwrap();
    bao.bao(&["write", "kv1/app", "token=t-one"]).unwrap();
    let refs = [
        "vault://secret/bedrock#access_key",
        "vault://secret/bedrock#secret_key",
        "vault://secret/bedrock?version=1#access_key",
        "vault://secret/data/bedrock#secret_key",
        "vault://kv1/app#token",
    ];
    // No key_management_system: the vault:// references alone connect to Vault.
    let live = LiveSecrets::start(&config(&refs), env(&bao, &[]))
        .await
        .unwrap();
    let snapshot = live.snapshot();
    let got: Vec<_> = refs
        .iter()
        .map(|r| snapshot.value(&value(r)).map(str::to_owned))
        .collect();
    assert_eq!(
        got,
        ["AKIA1", "s1", "AKIA1", "s1", "t-one"].map(|v| Some(v.to_owned()))
    );
    let readiness = live.readiness();
    assert_eq!(readiness.status, "ok");
    // One read per path: bedrock (unpinned), bedrock v1, data/bedrock, kv1/app.
    assert_eq!(readiness.paths.len(), 4, "{:?}", readiness.paths);
    assert_eq!(readiness.paths[0].fields, ["access_key", "secret_key"]);
    let shown = format!("{readiness:?}");
    assert!(
        !shown.contains("AKIA1") && !shown.contains("t-one"),
        "{shown}"
    );

    bao.kv_put_fields(
        None,
        "secret",
        "bedrock",
        &[("access_key", "AKIA2"), ("secret_key", "s2")],
    )
    .unwrap();
    bao.bao(&["write", "kv1/app", "token=t-two"]).unwrap();
    assert!(live.refresh_now().await.unwrap() >= 2);
    let snapshot = live.snapshot();
    let got: Vec<_> = refs
        .iter()
        .map(|r| snapshot.value(&value(r)).map(str::to_owned))
        .collect();
    assert_eq!(
        got,
        ["AKIA2", "s2", "AKIA1", "s2", "t-two"].map(|v| Some(v.to_owned()))
    );

    // The "upstream refused it" path re-reads at once (and then not again for a while).
    bao.kv_put_fields(
        None,
        "secret",
        "bedrock",
        &[("access_key", "AKIA3"), ("secret_key", "s3")],
    )
    .unwrap();
    assert!(live.refresh_value(&value(refs[0])).await.unwrap());
    assert_eq!(live.snapshot().value(&value(refs[1])), Some("s3"));
    assert!(!live.refresh_value(&value(refs[0])).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_with_a_ttl_are_replaced_before_they_expire() {
    let bao = bao();
    bao.bao(&["secrets", "enable", "-path=kv1", "-version=1", "kv"])
        .unwrap();
    bao.bao(&["write", "kv1/token", "token=first", "ttl=3s"])
        .unwrap();
    let reference = "vault://kv1/token#token";
    let live = LiveSecrets::start(&config(&[reference]), env(&bao, &[]))
        .await
        .unwrap();
    assert_eq!(
        live.readiness().paths[0].ttl_secs.map(|t| t <= 3),
        Some(true)
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let refresher = std::sync::Arc::clone(&live).spawn_refresher(shutdown.clone());
    bao.bao(&["write", "kv1/token", "token=second", "ttl=3s"])
        .unwrap();
    let replaced = wait_until(LIMIT, || {
        let live = std::sync::Arc::clone(&live);
        async move { live.snapshot().value(&value(reference)) == Some("second") }
    })
    .await;
    assert!(replaced, "the value was not replaced before its TTL");
    assert!(live.readiness().paths[0].reissues >= 1);
    shutdown.cancel();
    refresher.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_paths_and_fields_are_one_clear_error() {
    let bao = bao();
    bao.kv_put_fields(
        None,
        "secret",
        "app",
        &[("user", "u"), ("password", "p-secret")],
    )
    .unwrap();
    let error = LiveSecrets::start(
        &config(&["vault://secret/app#key", "vault://secret/nothing-here#key"]),
        env(&bao, &[]),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("no field `key` (fields: password, user)"),
        "{error}"
    );
    assert!(error.contains("vault://secret/nothing-here"), "{error}");
    assert!(
        error.contains("model_list[1].litellm_params.api_key"),
        "{error}"
    );
    assert!(!error.contains("p-secret"), "{error}");

    // Without any Vault login configured, the reference says what is missing.
    let error = LiveSecrets::start(
        &config(&["vault://secret/app#user"]),
        vaultgate_secrets::Env::from_map([("X", "y")]),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("vault://secret/app#user") && error.contains("no Vault login"),
        "{error}"
    );
}
