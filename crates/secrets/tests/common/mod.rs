//! Shared helpers for the OpenBao integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::time::{Duration, Instant};

use vaultgate_config::Config;
use vaultgate_secrets::Env;
use vaultgate_testkit::openbao::OpenBao;

/// A started dev server (panics with the reason when `bao` cannot run).
pub fn bao() -> OpenBao {
    OpenBao::start().expect("start OpenBao dev server")
}

/// Env for token auth against `bao` with short retries, plus `extra`.
pub fn env(bao: &OpenBao, extra: &[(&str, &str)]) -> Env {
    let mut pairs: Vec<(String, String)> = vec![
        ("HCP_VAULT_ADDR".into(), bao.addr()),
        ("HCP_VAULT_TOKEN".into(), bao.root_token().into()),
        ("VAULT_MAX_RETRIES".into(), "1".into()),
        ("VAULT_CLIENT_TIMEOUT".into(), "5".into()),
    ];
    for (k, v) in extra {
        pairs.retain(|(name, _)| name != k);
        pairs.push(((*k).into(), (*v).into()));
    }
    Env::from_map(pairs)
}

/// A config with one model per reference name (as `api_key`) and Vault enabled.
pub fn config(names: &[&str], key_management_settings: &str) -> Config {
    let mut text = String::from("model_list:\n");
    for (i, name) in names.iter().enumerate() {
        text.push_str(&format!(
            "  - model_name: m{i}\n    litellm_params:\n      model: openai/gpt-4o\n      api_key: os.environ/{name}\n"
        ));
    }
    text.push_str("general_settings:\n  key_management_system: hashicorp_vault\n");
    if !key_management_settings.is_empty() {
        text.push_str(&format!(
            "  key_management_settings: {key_management_settings}\n"
        ));
    }
    Config::parse(&text).unwrap()
}

/// Polls `check` every 100 ms until it holds or `limit` passes (bounded; the caller asserts).
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Generous bound for background work: tests wait for an outcome, never measure time.
pub const LIMIT: Duration = Duration::from_secs(40);
