//! `vaultgate`: the command line. Parsing, wiring and nothing else.

mod bring_up;
mod check;
mod check_teams;
mod files;
mod limits;
mod migrate;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use vaultgate_config::{Config, ConfigValue, Provider, parse_model};
use vaultgate_core::{Error, Result};
use vaultgate_secrets::Env;

/// mimalloc instead of the system allocator: a request allocates and frees a few hundred small
/// blocks, and glibc malloc/free were ~15% of the gateway's instructions (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// glibc's malloc, which SQLite, aws-lc and the other C code use (Rust's allocations go to
/// mimalloc), gives each new thread an arena of its own, up to eight per core, and keeps what is
/// freed in each: with the SQLite connections' threads the gateway's RSS grew by 25 MiB over a
/// 10-minute soak, and held flat with one arena (BENCHMARKS.md). Set before any
/// other thread starts; a `MALLOC_ARENA_MAX` in the environment is left to decide.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt sets a parameter of glibc's allocator and touches no Rust memory;
        // no other thread exists yet.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// OpenAI-compatible LLM gateway whose provider keys live in HashiCorp Vault / OpenBao.
#[derive(Parser)]
#[command(version = VERSION, about, after_help = ENVIRONMENT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// LiteLLM-style config.yaml.
    #[arg(long, short, env = "CONFIG_FILE_PATH", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on (0.0.0.0: every interface; 127.0.0.1: this machine only).
    #[arg(long, default_value = "0.0.0.0", env = "HOST")]
    host: String,
    /// Port to listen on (0 picks a free one; the chosen address is logged).
    #[arg(long, short, default_value_t = 4000, env = "PORT")]
    port: u16,
    /// Log JSON lines instead of text.
    #[arg(long, env = "JSON_LOGS", global = true)]
    json_logs: bool,
    /// Threads serving requests (default: one per CPU). Fewer than the CPUs suits a machine
    /// shared with other busy processes: each thread that sleeps and wakes costs a hand-off.
    #[arg(long = "num_workers", visible_alias = "num-workers", env = "NUM_WORKERS",
          value_parser = clap::value_parser!(u16).range(1..))]
    num_workers: Option<u16>,
    /// Serve without any key when no master key is set (same as
    /// `general_settings.allow_unauthenticated: true`). Without it, the gateway refuses to start
    /// open.
    #[arg(long, global = true)]
    allow_unauthenticated: bool,
    /// Exit when Vault (or the key database) cannot be reached at start. By default the gateway
    /// serves health, reports "not ready" and retries until the secrets are in.
    #[arg(long, env = "VAULTGATE_REQUIRE_VAULT_AT_START")]
    require_vault_at_start: bool,
    /// Most client connections open at once (default: what the open-file limit allows, which is
    /// raised to its hard maximum at start). Connections over it get a 503.
    #[arg(long, env = "VAULTGATE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Seconds a client may take to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    #[arg(long, default_value_t = 30, env = "VAULTGATE_HEADER_READ_TIMEOUT",
          value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout: u64,
    /// Seconds a client may take to send a request's body once its headers are in; a slower
    /// body gets a 408.
    #[arg(long, default_value_t = 60, env = "VAULTGATE_BODY_READ_TIMEOUT",
          value_parser = clap::value_parser!(u64).range(1..))]
    body_read_timeout: u64,
    /// Seconds in-flight requests and streams get to finish after SIGTERM.
    #[arg(long, default_value_t = 30, env = "VAULTGATE_DRAIN_TIMEOUT")]
    drain_timeout: u64,
}

/// The crate version and the git commit it was built from (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VAULTGATE_GIT_COMMIT"),
    ")"
);

const ENVIRONMENT_HELP: &str = "\
Environment:
  CONFIG_FILE_PATH, HOST, PORT, NUM_WORKERS, JSON_LOGS  the options above
  LITELLM_MASTER_KEY, DATABASE_URL   used when the config does not set master_key / database_url
  HCP_VAULT_ADDR, HCP_VAULT_TOKEN, HCP_VAULT_NAMESPACE, ...  Vault / OpenBao (also BAO_*, VAULT_*)
  RUST_LOG                           log filter (default: info)
  HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE  upstream proxies and trusted CAs
See README.md for every setting.";

#[derive(Subcommand)]
enum Command {
    /// Validate the config, connect to Vault and resolve every secret reference (never printing
    /// a value). Exits non-zero on any problem.
    Check {
        /// Also list what is not a problem, such as the soft-deleted Vault copies of deleted keys.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Copy another gateway's keys, teams, users, organizations and budgets into the store the
    /// config names.
    Migrate {
        #[command(subcommand)]
        from: MigrateFrom,
    },
}

#[derive(Subcommand)]
enum MigrateFrom {
    /// From a LiteLLM proxy's PostgreSQL database: virtual keys (the raw keys people hold keep
    /// working), teams and their members, internal users, organizations, end users and budgets,
    /// with spend, limits, models, metadata, expiry and blocked state. All in one transaction;
    /// running it again changes nothing. Nothing is written to LiteLLM's database.
    Litellm {
        /// LiteLLM's DATABASE_URL: postgres://user:password@host:5432/litellm (a Prisma
        /// ?schema=NAME is honoured; the password may come from PGPASSWORD instead).
        #[arg(long, value_name = "POSTGRES_URL")]
        from: String,
        /// Print what would be written, record by record, and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    one_malloc_arena();
    let cli = Cli::parse();
    init_logging(cli.json_logs);
    // One serving thread is a single-threaded runtime: the same one thread, without the
    // work-stealing scheduler's bookkeeping and cross-thread wake-ups.
    let mut runtime = match cli.num_workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(workers) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(usize::from(workers));
            runtime
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all();
    let runtime = match runtime.build() {
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
            Some(Command::Check { verbose }) => {
                check::check(&path, cli.allow_unauthenticated, verbose).await
            }
            Some(Command::Migrate {
                from: MigrateFrom::Litellm { from, dry_run },
            }) => migrate::litellm(&path, &from, dry_run).await,
            None => {
                let options = serve::ServeOptions {
                    host: cli.host.clone(),
                    port: cli.port,
                    allow_unauthenticated: cli.allow_unauthenticated,
                    require_vault_at_start: cli.require_vault_at_start,
                    max_connections: cli
                        .max_connections
                        .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                    header_read_timeout: Duration::from_secs(cli.header_read_timeout),
                    body_read_timeout: Duration::from_secs(cli.body_read_timeout),
                    drain_timeout: Duration::from_secs(cli.drain_timeout),
                };
                serve::serve(&path, &options).await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("vaultgate: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    // PostgreSQL's notices ("relation already exists, skipping" on every start) are not news.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
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

/// Loads the config, with LiteLLM's environment defaults and `--allow-unauthenticated`, warning
/// about each LiteLLM setting that is ignored.
fn load(path: &Path, allow_unauthenticated: bool) -> Result<Config> {
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
    if allow_unauthenticated {
        config.general_settings.allow_unauthenticated = true;
    }
    for entry in &mut config.model_list {
        let is_set = |name: &str| env.get(name).is_some_and(|v| !v.is_empty());
        let params = &mut entry.litellm_params;
        match parse_model(&params.model) {
            Ok((Provider::Bedrock, _)) => params.aws.fill_from_env(is_set),
            Ok((Provider::VertexAi, _)) => params.vertex.fill_from_env(is_set),
            _ => {}
        }
    }
    for ignored in &config.ignored {
        tracing::warn!(
            setting = %ignored.path, line = ignored.line,
            "LiteLLM setting ignored: vaultgate does not implement {}", ignored.feature
        );
    }
    Ok(config)
}

/// Why the gateway will not start open, or `None` when it has a master key or was told to.
fn refuses_open(config: &Config) -> Option<String> {
    let general = &config.general_settings;
    (general.master_key.is_none() && !general.allow_unauthenticated).then(|| {
        "no authentication is configured: general_settings.master_key (or LITELLM_MASTER_KEY) \
         is not set, so anyone who can reach the port could use every model and manage keys. \
         Set a master key, or say that the gateway is meant to be open with \
         --allow-unauthenticated (or general_settings.allow_unauthenticated: true)"
            .to_owned()
    })
}
