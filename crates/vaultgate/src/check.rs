//! `vaultgate check`: what the gateway would find, printed without a single secret value.

use std::path::Path;
use std::process::ExitCode;

use vaultgate_config::Config;
use vaultgate_core::Result;
use vaultgate_secrets::{Env, LiveSecrets};

use crate::bring_up::open_keys;
use crate::{load, refuses_open};

pub async fn check(path: &Path, allow_unauthenticated: bool, verbose: bool) -> Result<ExitCode> {
    let config = load(path, allow_unauthenticated)?;
    println!(
        "config: {} is valid ({} models)",
        path.display(),
        config.model_list.len()
    );
    for ignored in &config.ignored {
        println!(
            "warn ignored: {} (line {}): vaultgate does not implement {}",
            ignored.path, ignored.line, ignored.feature
        );
    }
    let mut ok = true;
    match refuses_open(&config) {
        Some(reason) => {
            println!("FAIL auth: {reason}");
            ok = false;
        }
        None if config.general_settings.master_key.is_none() => {
            println!(
                "warn auth: UNAUTHENTICATED: anyone who can reach the port can use every model"
            )
        }
        None => println!("ok   auth: master key required"),
    }
    let report = vaultgate_secrets::check(&config, &Env::from_config(&config)).await;
    println!("{report}");
    ok &= report.ok;
    // Where cloud credentials will come from (nothing is fetched; never a value).
    for (level, line) in vaultgate_server::credential_sources(&config) {
        println!("{level:<4} credentials {line}");
    }
    if ok
        && config
            .general_settings
            .key_management_settings
            .store_virtual_keys
    {
        ok &= check_drift(&config, path, verbose).await;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Compares the key database with the Vault copies; prints names and hashes, never keys.
async fn check_drift(config: &Config, path: &Path, verbose: bool) -> bool {
    let drift = async {
        let secrets = LiveSecrets::start(config, Env::from_config(config)).await?;
        let Some(keys) = open_keys(config, path, &secrets).await? else {
            return Ok(None);
        };
        let drift = keys.drift().await;
        keys.shutdown().await;
        drift.map(Some)
    };
    match drift.await {
        Ok(None) => true,
        Ok(Some(drift)) => {
            for key in &drift.keys_without_secret {
                println!(
                    "drift: key {} ({}) has no Vault copy at {:?}: {}",
                    key.key_name,
                    key.key_alias
                        .as_deref()
                        .map_or_else(|| "no alias".into(), |a| format!("alias {a:?}")),
                    key.expected_secret,
                    key.problem
                );
            }
            for name in &drift.secrets_without_key {
                println!("drift: Vault secret {name:?} belongs to no key");
            }
            for name in &drift.pending_deletions {
                println!("pending: Vault secret {name:?} is queued for deletion or repair");
            }
            if verbose {
                for name in &drift.deleted_secrets {
                    println!("deleted: Vault secret {name:?} (soft-deleted or destroyed; no key)");
                }
            }
            crate::check_teams::print_locations(&drift);
            let verdict = if drift.is_clean() {
                "in sync with Vault"
            } else {
                "DRIFT"
            };
            println!("virtual keys: {verdict}");
            drift.is_clean()
        }
        Err(error) => {
            println!("virtual keys: cannot compare with Vault: {error}");
            false
        }
    }
}
