//! `vaultgate`: the command line. Parsing, wiring and nothing else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use vaultgate_config::{Config, ConfigValue};
use vaultgate_core::{Error, Result};
use vaultgate_keys::{KeyService, KeyServiceOptions, MirrorConfig};
use vaultgate_secrets::{Env, LiveSecrets};
use vaultgate_server::{AppState, Options, VaultMirror};

/// OpenAI-compatible LLM gateway whose provider keys live in HashiCorp Vault / OpenBao.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// LiteLLM-style config.yaml.
    #[arg(long, short, env = "CONFIG_FILE_PATH", global = true)]
    config: Option<PathBuf>,
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// Port to listen on (0 picks a free one; the chosen address is logged).
    #[arg(long, short, default_value_t = 4000, env = "PORT")]
    port: u16,
    /// Log JSON lines instead of text.
    #[arg(long, env = "JSON_LOGS", global = true)]
    json_logs: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config, connect to Vault and resolve every secret reference (never printing
    /// a value). Exits non-zero on any problem.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.json_logs);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vaultgate: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let path = cli
            .config
            .clone()
            .ok_or_else(|| Error::Config("--config PATH is required".into()))?;
        match cli.command {
            Some(Command::Check) => check(&path).await,
            None => serve(&path, &cli.host, cli.port).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("vaultgate: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load(path: &Path) -> Result<Config> {
    let mut config = Config::load(path)?;
    // LiteLLM takes these from the environment when the config does not name them.
    let env = Env::from_config(&config);
    let general = &mut config.general_settings;
    for (setting, variable) in [
        (&mut general.master_key, "LITELLM_MASTER_KEY"),
        (&mut general.database_url, "DATABASE_URL"),
    ] {
        if setting.is_none() && env.get(variable).is_some() {
            *setting = Some(ConfigValue::Reference(variable.to_owned()));
        }
    }
    if !config.unknown_keys.is_empty() {
        tracing::warn!(
            "config settings vaultgate does not support yet are ignored: {}",
            config.unknown_keys.join(", ")
        );
    }
    Ok(config)
}

async fn serve(path: &Path, host: &str, port: u16) -> Result<ExitCode> {
    let config = load(path)?;
    let secrets = LiveSecrets::start(&config, Env::from_config(&config)).await?;
    if config.general_settings.master_key.is_none() {
        tracing::warn!(
            "NO MASTER KEY: general_settings.master_key is not set, so anyone who can reach this \
             port can use every model. Set it before exposing the gateway."
        );
    }
    let metrics = vaultgate_server::telemetry::install_metrics()?;
    vaultgate_secrets::metrics::describe();
    let keys = open_keys(&config, path, &secrets).await?;
    let shutdown = CancellationToken::new();
    let outbox = keys
        .as_ref()
        .map(|keys| keys.spawn_outbox_worker(shutdown.clone()));
    let state = Arc::new(AppState::new(
        &config,
        Arc::clone(&secrets),
        Options {
            metrics,
            keys: keys.clone(),
        },
    )?);
    let refresher = Arc::clone(&secrets).spawn_refresher(shutdown.clone());

    let address: SocketAddr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| Error::Config(format!("--host {host} --port {port} is not an address")))?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {address}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    tracing::info!(
        models = state.router.models().len(),
        "vaultgate listening on http://{local}"
    );

    let app = vaultgate_server::app(state);
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        signal.cancel();
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .map_err(|e| Error::Internal(format!("server error: {e}")))?;
    shutdown.cancel();
    let _ = refresher.await;
    if let Some(vault) = secrets.vault() {
        vault.shutdown();
    }
    if let Some(keys) = keys {
        if let Some(outbox) = outbox {
            let _ = outbox.await;
        }
        // Writes every recorded spend before exit.
        keys.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The database URL: `general_settings.database_url` (or `DATABASE_URL`), else a SQLite file
/// next to the config. SQLite files are created when missing.
fn database_url(config: &Config, config_path: &Path, secrets: &LiveSecrets) -> Result<String> {
    let url = match &config.general_settings.database_url {
        Some(value) => secrets
            .snapshot()
            .value(value)
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::Config("general_settings.database_url resolved to nothing".into())
            })?,
        None => {
            let dir = config_path.parent().filter(|d| !d.as_os_str().is_empty());
            let file = dir.unwrap_or(Path::new(".")).join("vaultgate.db");
            format!("sqlite://{}", file.display())
        }
    };
    if url.starts_with("sqlite:") && !url.contains("mode=") {
        let separator = if url.contains('?') { '&' } else { '?' };
        return Ok(format!("{url}{separator}mode=rwc"));
    }
    Ok(url)
}

/// The virtual key service, when a master key makes key management possible.
async fn open_keys(
    config: &Config,
    config_path: &Path,
    secrets: &LiveSecrets,
) -> Result<Option<KeyService>> {
    if config.general_settings.master_key.is_none() {
        return Ok(None);
    }
    let mut options = KeyServiceOptions::new(database_url(config, config_path, secrets)?);
    let settings = &config.general_settings.key_management_settings;
    if settings.store_virtual_keys {
        let vault = secrets.vault().cloned().ok_or_else(|| {
            Error::Config(
                "key_management_settings.store_virtual_keys needs a Vault: set HCP_VAULT_ADDR \
                 and a way to log in"
                    .into(),
            )
        })?;
        let mirror = VaultMirror::new(vault, settings.virtual_key_prefix());
        options = options.with_mirror(
            MirrorConfig::new(Arc::new(mirror)).with_description(settings.description.clone()),
        );
    }
    KeyService::open(options).await.map(Some)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn check(path: &Path) -> Result<ExitCode> {
    let config = load(path)?;
    println!(
        "config: {} is valid ({} models)",
        path.display(),
        config.model_list.len()
    );
    let report = vaultgate_secrets::check(&config, &Env::from_config(&config)).await;
    println!("{report}");
    let mut ok = report.ok;
    if ok
        && config
            .general_settings
            .key_management_settings
            .store_virtual_keys
    {
        ok &= check_drift(&config, path).await;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Compares the key database with the Vault copies; prints names and hashes, never keys.
async fn check_drift(config: &Config, path: &Path) -> bool {
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
                    "drift: key {} ({}) has no Vault copy at {}",
                    key.key_name,
                    key.key_alias.as_deref().unwrap_or("no alias"),
                    key.expected_secret
                );
            }
            for name in &drift.secrets_without_key {
                println!("drift: Vault secret {name} belongs to no key");
            }
            for name in &drift.pending_deletions {
                println!("pending: Vault secret {name} is queued for deletion");
            }
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
