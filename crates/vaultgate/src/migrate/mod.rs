//! `vaultgate migrate litellm`: copies a LiteLLM proxy's keys, teams, users, organizations,
//! end users and budgets (with their spend) from LiteLLM's database into the store the config
//! names, in one transaction. Keys keep working with the raw keys people already hold: both
//! gateways store only the SHA-256 of a key.

mod mapping;
mod notes;
mod rows;
mod source;

use std::path::Path;
use std::process::ExitCode;

use vaultgate_config::{Config, ConfigValue};
use vaultgate_core::{Error, Result};
use vaultgate_keys::import::{self, Change, ImportReport, KINDS};
use vaultgate_secrets::{Env, LiveSecrets};

use self::notes::Notes;
use self::source::Source;
use crate::bring_up::{reads_from_vault_at_all, store_url};

/// Runs the migration from `from` into the store of the config at `path`.
pub async fn litellm(path: &Path, from: &str, dry_run: bool) -> Result<ExitCode> {
    let config = crate::load(path, false)?;
    let source = Source::parse(from)?;
    let target = target_url(&config, path, dry_run).await?;
    println!(
        "Reading the LiteLLM database {} (schema {})",
        source.shown, source.schema
    );
    let tables = source.read().await?;
    let (snapshot, notes) = mapping::snapshot(&tables)?;
    println!(
        "  {} keys, {} teams ({} memberships), {} users, {} organizations ({} memberships), \
         {} end users, {} budgets",
        snapshot.keys.len(),
        snapshot.teams.len(),
        snapshot.team_members.len(),
        snapshot.users.len(),
        snapshot.organizations.len(),
        snapshot.organization_members.len(),
        snapshot.end_users.len(),
        snapshot.budgets.len()
    );
    println!(
        "{} {}",
        if dry_run {
            "Comparing with"
        } else {
            "Writing into"
        },
        shown_store(&target)
    );
    let report = import::import(&target, &snapshot, dry_run).await?;
    print_report(&report, &notes, dry_run, !snapshot.keys.is_empty(), &config);
    Ok(ExitCode::SUCCESS)
}

/// The store the gateway would open with this config. A dry run against a SQLite file that
/// does not exist yet compares with an empty in-memory store, so it creates nothing.
async fn target_url(config: &Config, path: &Path, dry_run: bool) -> Result<String> {
    let configured = match &config.general_settings.database_url {
        None => None,
        Some(ConfigValue::Literal(url)) => Some(url.clone()),
        Some(ConfigValue::Reference(name)) if !reads_from_vault_at_all(config, name) => {
            let url = Env::from_config(config).get(name).ok_or_else(|| {
                Error::Config(format!(
                    "general_settings.database_url names os.environ/{name}, which is not set"
                ))
            })?;
            Some(url)
        }
        Some(value) => {
            let secrets = LiveSecrets::start(config, Env::from_config(config)).await?;
            let url = secrets.snapshot().value(value).map(str::to_owned);
            secrets.revoke_leases().await;
            Some(url.ok_or_else(|| {
                Error::Config("general_settings.database_url resolved to nothing".into())
            })?)
        }
    };
    let url = store_url(path, configured);
    if dry_run && url.starts_with("sqlite:") {
        let file = url
            .trim_start_matches("sqlite:")
            .trim_start_matches("//")
            .split('?')
            .next()
            .unwrap_or_default();
        if !file.is_empty() && !file.contains(":memory:") && !Path::new(file).exists() {
            return Ok("sqlite::memory:".into());
        }
    }
    Ok(url)
}

/// The store URL without a password.
fn shown_store(url: &str) -> String {
    if url == "sqlite::memory:" {
        return "a new SQLite store (none exists yet)".into();
    }
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn records(n: usize) -> String {
    if n == 1 {
        "1 record".into()
    } else {
        format!("{n} records")
    }
}

fn print_report(
    report: &ImportReport,
    notes: &Notes,
    dry_run: bool,
    any_keys: bool,
    config: &Config,
) {
    if dry_run {
        for outcome in &report.outcomes {
            match &outcome.change {
                Change::New => println!("  + {} {}", outcome.kind, outcome.name),
                Change::Updated(columns) => println!(
                    "  ~ {} {}: {}",
                    outcome.kind,
                    outcome.name,
                    columns.join(", ")
                ),
                Change::Unchanged => {}
                Change::Skipped(why) => {
                    println!("  ! {} {}: skipped, {why}", outcome.kind, outcome.name)
                }
            }
        }
    } else {
        for outcome in &report.outcomes {
            if let Change::Skipped(why) = &outcome.change {
                println!("  ! {} {}: skipped, {why}", outcome.kind, outcome.name);
            }
        }
    }
    println!("Summary{}:", if dry_run { " (dry run)" } else { "" });
    for kind in KINDS {
        let [new, updated, unchanged, skipped] = report.counts(kind);
        if new + updated + unchanged + skipped == 0 {
            continue;
        }
        let mut parts = Vec::new();
        for (n, what) in [
            (new, "new"),
            (updated, "updated"),
            (unchanged, "unchanged"),
            (skipped, "skipped"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        println!("  {:<22} {}", format!("{kind}s"), parts.join(", "));
    }
    for note in notes.lines() {
        println!("  note: {note}");
    }
    if any_keys {
        let mirror = config
            .general_settings
            .key_management_settings
            .store_virtual_keys;
        println!(
            "  note: LiteLLM keeps only the SHA-256 of each key, so vaultgate cannot write Vault \
             copies of migrated keys{}. The keys work as before; regenerate one to give it a copy.",
            if mirror {
                " (store_virtual_keys); `vaultgate check` lists them as keys without a copy \
                 unless LiteLLM already wrote one at the same name"
            } else {
                ""
            }
        );
    }
    let changes = report.changes();
    match (dry_run, changes) {
        (_, 0) => {
            println!("Nothing to change: the vaultgate store already holds this LiteLLM data.")
        }
        (true, n) => println!(
            "Dry run: {} would be written; nothing was changed.",
            records(n)
        ),
        (false, n) => println!(
            "Done: {} written in one transaction. Running gateways see them within a minute \
             (or restart them).",
            records(n)
        ),
    }
}
