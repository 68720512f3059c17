//! `vaultgate --config …`: wiring the rooms together and serving until a signal.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vaultgate_config::Config;
use vaultgate_core::{Error, Result};
use vaultgate_keys::{KeyService, KeyServiceOptions, MirrorConfig};
use vaultgate_secrets::{Env, LiveSecrets};
use vaultgate_server::{AppState, Options, VaultMirror};

use crate::{load, refuses_open};

pub async fn serve(
    path: &Path,
    host: &str,
    port: u16,
    allow_unauthenticated: bool,
) -> Result<ExitCode> {
    let config = load(path, allow_unauthenticated)?;
    if let Some(reason) = refuses_open(&config) {
        return Err(Error::Config(reason));
    }
    if config.general_settings.master_key.is_none() {
        tracing::warn!(
            "UNAUTHENTICATED: no master key is set and the gateway was told to serve without one \
             (--allow-unauthenticated): anyone who can reach this port can use every model and \
             manage keys"
        );
    }
    let env = Env::from_config(&config);
    let console = vaultgate_server::console_enabled(&config, &env)?;
    let secrets = LiveSecrets::start(&config, env).await?;
    let metrics = vaultgate_server::telemetry::install_metrics()?;
    vaultgate_secrets::metrics::describe();
    let keys = open_keys(&config, path, &secrets).await?;
    survive_file_size_limits();
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
            console,
        },
    )?);
    let refresher = Arc::clone(&secrets).spawn_refresher(shutdown.clone());

    let address: SocketAddr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| Error::Config(format!("--host {host} --port {port} is not an address")))?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| listen_error(address, &e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    tracing::info!(
        models = state.router.models().len(),
        "vaultgate listening on http://{local}"
    );
    if console {
        tracing::info!(
            "admin console on http://{local}/ui/ (general_settings.ui: false turns it off)"
        );
    }

    let app = vaultgate_server::app(state);
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        signal.cancel();
    });
    // Without TCP_NODELAY, a stream's second small write waits for the client's delayed ACK
    // (~40 ms on Linux) under Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an accepted connection");
        }
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
pub async fn open_keys(
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

/// Why the port could not be taken, with what to do about it (not a config error).
fn listen_error(address: SocketAddr, error: &std::io::Error) -> Error {
    let hint = match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another process holds this port: stop it, or choose another with --port (or PORT)"
        }
        std::io::ErrorKind::PermissionDenied => "; ports below 1024 need privileges: use --port",
        _ => "",
    };
    Error::Unavailable(format!("cannot listen on {address}: {error}{hint}"))
}

/// A write past the file-size limit (`ulimit -f`, RLIMIT_FSIZE) raises SIGXFSZ, whose default
/// action kills the process. Handled, the write fails with EFBIG instead, which the key store
/// treats like a full disk: spend stays in memory and is written once the limit allows.
fn survive_file_size_limits() {
    #[cfg(unix)]
    {
        const SIGXFSZ: i32 = 25;
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ)) {
            Ok(mut signal) => {
                tokio::spawn(async move {
                    let mut last: Option<std::time::Instant> = None;
                    let mut unlogged = 0u64;
                    while signal.recv().await.is_some() {
                        unlogged += 1;
                        if last.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(10))
                        {
                            tracing::warn!(
                                writes = unlogged,
                                "writes went past the file-size limit (SIGXFSZ) and failed"
                            );
                            last = Some(std::time::Instant::now());
                            unlogged = 0;
                        }
                    }
                });
            }
            Err(error) => tracing::debug!(%error, "cannot handle SIGXFSZ"),
        }
    }
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
