//! Every log line at every level, every error and every Debug output of a busy run is searched
//! for the secret values it handled: none may appear.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{LIMIT, bao, config, env, wait_until};
use tokio_util::sync::CancellationToken;
use vaultgate_core::secret;
use vaultgate_secrets::{LiveSecrets, VaultClient, VaultSettings, check};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_in_logs_errors_or_debug() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let bao = bao();
    let token = "vg-static-token-a8d3f1c2";
    bao.bao(&[
        "token",
        "create",
        &format!("-id={token}"),
        "-policy=root",
        "-ttl=1h",
    ])
    .unwrap();
    bao.write_policy(None, "gateway", "path \"secret/*\" { capabilities = [\"read\", \"create\", \"update\", \"delete\", \"list\"] }").unwrap();
    let (role_id, secret_id) = bao
        .enable_approle(None, "gw", "gateway", "1h", "4h")
        .unwrap();
    bao.kv_put(None, "secret", "PROVIDER_A", "sk-provider-a-5c1e")
        .unwrap();

    let mut outputs = Vec::new();
    // Token auth, start-up, rotation, refresh, a missing name, check.
    let env_token = env(
        &bao,
        &[
            ("HCP_VAULT_TOKEN", token),
            ("HCP_VAULT_REFRESH_INTERVAL", "1"),
            ("FROM_ENV", "env-value-77b2"),
        ],
    );
    let cfg = config(
        &["PROVIDER_A", "FROM_ENV"],
        "{store_virtual_keys: true, access_mode: read_and_write}",
    );
    let live = LiveSecrets::start(&cfg, env_token.clone()).await.unwrap();
    let _refresher = live.clone().spawn_refresher(CancellationToken::new());
    bao.kv_put(None, "secret", "PROVIDER_A", "sk-rotated-a-9f0d")
        .unwrap();
    assert!(
        wait_until(LIMIT, || async {
            live.snapshot().get("PROVIDER_A") == Some("sk-rotated-a-9f0d")
        })
        .await
    );
    outputs.push(format!(
        "{live:?} {:?} {:?}",
        live.snapshot(),
        live.readiness()
    ));
    let vault = live.vault().unwrap();
    vault
        .write_secret(
            "litellm/vk",
            &secret("sk-virtual-key-31aa"),
            Some("d"),
            &BTreeMap::new(),
        )
        .await
        .unwrap();
    outputs.push(format!("{vault:?} {:?}", vault.settings()));
    let missing = LiveSecrets::start(&config(&["NOWHERE"], ""), env_token.clone())
        .await
        .unwrap_err();
    outputs.push(format!("{missing} {missing:?}"));
    outputs.push(check(&cfg, &env_token).await.to_string());

    // AppRole: login, a revoked token (403, re-login), a bad secret id.
    let env_role = env(
        &bao,
        &[
            ("HCP_VAULT_TOKEN", ""),
            ("HCP_VAULT_APPROLE_ROLE_ID", &role_id),
            ("HCP_VAULT_APPROLE_SECRET_ID", &secret_id),
        ],
    );
    let settings = VaultSettings::from_env(&env_role).unwrap().unwrap();
    outputs.push(format!("{settings:?}"));
    let client = VaultClient::connect(settings).await.unwrap();
    // A 403 re-logs in only with a token older than 2 s (younger means a policy problem).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    bao.bao(&["token", "revoke", "-mode=path", "auth/approle"])
        .unwrap();
    client.read_secret("PROVIDER_A").await.unwrap();
    let bad = env_role
        .clone()
        .with("HCP_VAULT_APPROLE_SECRET_ID", "bad-secret-id-4e4e");
    let error = VaultClient::connect(VaultSettings::from_env(&bad).unwrap().unwrap())
        .await
        .unwrap_err();
    outputs.push(format!("{error} {error:?}"));

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("logged in to Vault"),
        "the capture must see our logs:\n{logs}"
    );
    assert!(logs.contains("secret changed in Vault"), "{logs}");
    let everything = format!("{logs}\n{}", outputs.join("\n"));
    for value in [
        token,
        secret_id.as_str(),
        "bad-secret-id-4e4e",
        "sk-provider-a-5c1e",
        "sk-rotated-a-9f0d",
        "env-value-77b2",
        "sk-virtual-key-31aa",
    ] {
        assert!(
            !everything.contains(value),
            "secret {value:?} leaked:\n{everything}"
        );
    }
}
