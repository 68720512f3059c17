//! `vaultgate --config …`: wiring the rooms together and serving until a signal.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vaultgate_core::{Error, Result};
use vaultgate_server::{Starting, listen};

use crate::bring_up::{bring_up, details_access, is_outage, retry_until_up};
use crate::{load, refuses_open};

/// How to serve, from the command line.
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    pub allow_unauthenticated: bool,
    /// Exit when Vault (or the database) cannot be reached at start, instead of serving health
    /// and retrying.
    pub require_vault_at_start: bool,
    /// `None`: derived from the open-file limit.
    pub max_connections: Option<usize>,
    pub header_read_timeout: std::time::Duration,
    pub body_read_timeout: std::time::Duration,
    pub drain_timeout: std::time::Duration,
}

pub async fn serve(path: &Path, options: &ServeOptions) -> Result<ExitCode> {
    let config = load(path, options.allow_unauthenticated)?;
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
    let console =
        vaultgate_server::console_enabled(&config, &vaultgate_secrets::Env::from_config(&config))?;
    let metrics = vaultgate_server::telemetry::install_metrics()?;
    vaultgate_secrets::metrics::describe();
    survive_file_size_limits();
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        signal.cancel();
    });
    let (host, port) = (&options.host, options.port);
    let address: SocketAddr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| Error::Config(format!("--host {host} --port {port} is not an address")))?;

    let limits = listen::Limits {
        header_read_timeout: options.header_read_timeout,
        body_read_timeout: options.body_read_timeout,
        max_connections: crate::files::connection_limit(options.max_connections),
        drain_timeout: options.drain_timeout,
    };
    let first = bring_up(&config, path, &metrics, console, &shutdown).await;
    let first_error = match first {
        Err(failed) if is_outage(&failed.error) && !options.require_vault_at_start => failed.error,
        Err(failed) => return Err(failed.error),
        Ok(running) => {
            let listener = bind(address)?;
            tracing::info!(
                models = running.state.router.models().len(),
                "vaultgate listening on http://{}",
                local_address(&listener)?
            );
            log_console(console, &listener)?;
            let app = vaultgate_server::app(Arc::clone(&running.state));
            listen::serve(listener, app, limits, shutdown.clone()).await?;
            shutdown.cancel();
            running.stop().await;
            tracing::info!("stopped");
            return Ok(ExitCode::SUCCESS);
        }
    };

    // Vault (or the database) is down: serve health and a "not ready" readiness, retry in the
    // background, serve model requests from the moment the secrets are in.
    let listener = bind(address)?;
    tracing::warn!(
        error = %first_error,
        "NOT READY: start-up failed; serving health and retrying (--require-vault-at-start exits instead)"
    );
    tracing::info!(
        "vaultgate listening on http://{} (not ready yet)",
        local_address(&listener)?
    );
    log_console(console, &listener)?;
    let starting = Starting::new(first_error.to_string(), details_access(&config));
    let retries = tokio::spawn(retry_until_up(
        config,
        path.to_owned(),
        metrics,
        console,
        shutdown.clone(),
        starting.clone(),
    ));
    listen::serve(listener, starting, limits, shutdown.clone()).await?;
    shutdown.cancel();
    let retried = retries
        .await
        .map_err(|e| Error::Internal(format!("start-up task failed: {e}")))?;
    if let Some(running) = retried? {
        running.stop().await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn log_console(console: bool, listener: &tokio::net::TcpListener) -> Result<()> {
    if console {
        tracing::info!(
            "admin console on http://{}/ui/ (general_settings.ui: false turns it off)",
            local_address(listener)?
        );
    }
    Ok(())
}

/// Pending connections the kernel queues for us (capped by `net.core.somaxconn`). The default
/// of 128 overflows under a burst of new connections, and each dropped handshake costs its
/// client a one-second retransmit.
const LISTEN_BACKLOG: u32 = 4096;

fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener> {
    let bound = || {
        let socket = if address.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }?;
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        socket.listen(LISTEN_BACKLOG)
    };
    bound().map_err(|e| listen_error(address, &e))
}

fn local_address(listener: &tokio::net::TcpListener) -> Result<SocketAddr> {
    listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))
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
