//! `vaultgate check`: what Vault and the environment would give the gateway, without starting
//! it and without printing any value.

use std::fmt;

use vaultgate_config::Config;

use crate::client::VaultClient;
use crate::env::Env;
use crate::live::{
    connect_vault, optional_uses, reads_from_vault, reference_uses, vault_configured,
};

/// A printable report and whether everything needed was found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub ok: bool,
    pub lines: Vec<String>,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        write!(f, "secrets: {}", if self.ok { "OK" } else { "FAILED" })
    }
}

/// What the Vault copies of virtual keys need on each path (the README's `store_virtual_keys`
/// policy): `(path probed, policy path to grant, capabilities)`, for a copy's data and metadata
/// and for listing the copies (drift).
fn mirror_needs(vault: &VaultClient, prefix: &str) -> Result<Vec<Need>, String> {
    let probe = format!("{prefix}vaultgate-check");
    let data = vault
        .policy_path("data", &probe)
        .map_err(|e| e.to_string())?;
    let metadata = vault
        .policy_path("metadata", &probe)
        .map_err(|e| e.to_string())?;
    let glob = |path: &str| format!("{}*", path.trim_end_matches("vaultgate-check"));
    let folder = metadata.trim_end_matches("vaultgate-check").to_owned();
    Ok(vec![
        Need {
            grant: glob(&data),
            probe: data,
            caps: &["create", "read", "update", "delete"],
        },
        Need {
            grant: glob(&metadata),
            probe: metadata,
            caps: &["create", "read", "update", "delete"],
        },
        Need {
            grant: glob(&folder),
            probe: folder,
            caps: &["list"],
        },
    ])
}

struct Need {
    probe: String,
    grant: String,
    caps: &'static [&'static str],
}

/// Probes every path the mirror uses; on a gap, the exact policy lines to add.
async fn check_mirror(vault: &VaultClient, prefix: &str, lines: &mut Vec<String>) -> bool {
    let needs = match mirror_needs(vault, prefix) {
        Ok(needs) => needs,
        Err(error) => {
            lines.push(format!("FAIL virtual key mirror: {error}"));
            return false;
        }
    };
    // The policy paths that lack something, in the order of `needs`.
    let mut grants: Vec<&str> = Vec::new();
    for need in &needs {
        let caps = match vault.capabilities_self(&need.probe).await {
            Ok(caps) => caps,
            Err(error) => {
                lines.push(format!(
                    "FAIL virtual key mirror: capabilities-self: {error} (check needs update on \
                     sys/capabilities-self to see the token's rights)"
                ));
                return false;
            }
        };
        let root = caps.iter().any(|c| c == "root");
        let lacking: Vec<&str> = need
            .caps
            .iter()
            .copied()
            .filter(|c| !root && !caps.iter().any(|x| x == c))
            .collect();
        if lacking.is_empty() {
            lines.push(format!(
                "ok   virtual key mirror: capabilities on {}: [{}]",
                need.probe,
                caps.join(", ")
            ));
            continue;
        }
        lines.push(format!(
            "FAIL virtual key mirror: store_virtual_keys needs [{}] on {}; the token has [{}]",
            lacking.join(", "),
            need.probe,
            caps.join(", ")
        ));
        if !grants.contains(&need.grant.as_str()) {
            grants.push(&need.grant);
        }
    }
    if grants.is_empty() {
        return true;
    }
    lines.push("     add to the token's policy (see the README's Vault policies):".into());
    for grant in grants {
        // Everything the mirror needs under that path, so the block replaces the old one.
        let caps: Vec<String> = ["create", "read", "update", "delete", "list"]
            .into_iter()
            .filter(|cap| {
                needs
                    .iter()
                    .any(|n| n.grant == grant && n.caps.contains(cap))
            })
            .map(|cap| format!("\"{cap}\""))
            .collect();
        lines.push(format!(
            "       path \"{grant}\" {{ capabilities = [{}] }}",
            caps.join(", ")
        ));
    }
    false
}

/// Logs in, reports the token, and resolves each reference the way start-up would.
pub async fn check(config: &Config, env: &Env) -> CheckReport {
    let mut lines = Vec::new();
    let mut ok = true;
    let uses = reference_uses(config);
    let optional = optional_uses(config);

    let vault = if vault_configured(config) || !config.vault_references().is_empty() {
        match connect_vault(config, env).await {
            Ok(vault) => vault,
            Err(error) => {
                lines.push(format!("FAIL vault: {error}"));
                ok = false;
                None
            }
        }
    } else {
        lines.push("ok   vault: not configured (general_settings.key_management_system unset); references come from the environment".into());
        None
    };

    if let Some(vault) = &vault {
        let s = vault.settings();
        lines.push(format!(
            "ok   vault: {} (auth {}, secret namespace {}, mount {}, path prefix {})",
            s.addr,
            s.auth.method(),
            s.secret_namespace.as_deref().unwrap_or("-"),
            s.mount,
            s.path_prefix.as_deref().unwrap_or("-"),
        ));
        match vault.token_info().await {
            Ok(info) => lines.push(format!(
                "ok   token: method {}, ttl {}, renewable {}, policies [{}]",
                info.method,
                if info.ttl_secs == 0 {
                    "never expires".to_owned()
                } else {
                    format!("{}s", info.ttl_secs)
                },
                info.renewable,
                info.policies.join(", ")
            )),
            Err(error) => {
                lines.push(format!("FAIL token lookup: {error}"));
                ok = false;
            }
        }
    }

    // (name, places, optional, may be read from Vault)
    let all = uses
        .iter()
        .map(|(name, places)| (name, places, false, true));
    let defaults = optional
        .iter()
        .map(|o| (&o.name, &o.places, true, o.secret));
    for (name, places, optional, secret) in all.chain(defaults) {
        let used_at = places.join(", ");
        let mut vault_note = None;
        if let Some(vault) = vault
            .as_ref()
            .filter(|_| secret && reads_from_vault(config, name))
        {
            let path = vault.secret_path(name).unwrap_or_else(|e| e.to_string());
            match vault.read_secret(name).await {
                Ok(Some(_)) => {
                    lines.push(format!(
                        "ok   {name}: found in Vault at {path} (used at {used_at})"
                    ));
                    continue;
                }
                Ok(None) => vault_note = Some(format!("not in Vault at {path}")),
                Err(error) => vault_note = Some(format!("Vault read at {path} failed: {error}")),
            }
        }
        let from_env = env.get(name).is_some();
        match (from_env, vault_note) {
            (true, Some(note)) => lines.push(format!(
                "warn {name}: {note}; environment fallback (used at {used_at})"
            )),
            (true, None) => lines.push(format!(
                "ok   {name}: from the environment (used at {used_at})"
            )),
            (false, _) if optional => lines.push(format!(
                "ok   {name}: not set (optional provider default; used at {used_at})"
            )),
            (false, note) => {
                ok = false;
                let note = note.map(|n| format!("{n}; ")).unwrap_or_default();
                lines.push(format!(
                    "FAIL {name}: MISSING: {note}not in the environment (used at {used_at})"
                ));
            }
        }
    }

    for source in crate::paths::path_sources(config) {
        let Some(vault) = &vault else {
            ok = false;
            lines.push(format!(
                "FAIL vault://{}: no Vault to read it from (used at {})",
                source.path,
                source.places()
            ));
            continue;
        };
        match source.read(vault).await {
            Ok((_, read)) => {
                let status = source.status(vault);
                let life = match (&read.lease, status.ttl_secs) {
                    (Some(lease), _) => format!(
                        ", leased for {}s{}",
                        lease.duration.as_secs(),
                        if lease.renewable { ", renewable" } else { "" }
                    ),
                    (None, Some(ttl)) => format!(", good for {ttl}s"),
                    (None, None) => String::new(),
                };
                lines.push(format!(
                    "ok   {}: fields [{}]{life} (used at {})",
                    status.path,
                    status.fields.join(", "),
                    source.places()
                ));
                // Credentials issued only to be checked are given back at once.
                if let Some(lease) = source.take_lease()
                    && let Err(error) = vault.revoke_lease(&lease).await
                {
                    lines.push(format!(
                        "warn {}: revoking the checked lease: {error}",
                        status.path
                    ));
                }
            }
            Err(error) => {
                ok = false;
                lines.push(format!(
                    "FAIL vault://{}: {error} (used at {})",
                    source.path,
                    source.places()
                ));
            }
        }
    }

    let kms = &config.general_settings.key_management_settings;
    if kms.store_virtual_keys
        && let Some(vault) = &vault
    {
        ok &= check_mirror(vault, &kms.virtual_key_prefix(), &mut lines).await;
    }
    if let Some(vault) = &vault {
        vault.shutdown();
    }
    CheckReport { ok, lines }
}
