//! A moto server (PyPI's AWS mock: IAM, STS) of the test's own on a free 127.0.0.1 port,
//! stopped by its pid. Found beside the tests' Python (`VAULTGATE_PYTHON`, the venv that
//! scripts/setup.sh makes) unless `VAULTGATE_MOTO_BIN` names it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vaultgate_core::{Error, Result};

use crate::openbao::free_port;

/// moto imports every AWS service at start: seconds on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn err(message: impl Into<String>) -> Error {
    Error::Internal(message.into())
}

fn find_moto() -> PathBuf {
    if let Some(path) = std::env::var_os("VAULTGATE_MOTO_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let python = std::env::var("VAULTGATE_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python").to_owned()
    });
    PathBuf::from(python).with_file_name("moto_server")
}

/// One `moto_server` owned by a test; killed on drop.
pub struct Moto {
    port: u16,
    child: Child,
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub fn start() -> Result<Self> {
        let port = free_port()?;
        let bin = find_moto();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                err(format!(
                    "cannot start {} (pip install 'moto[server]' into .venv): {e}",
                    bin.display()
                ))
            })?;
        let moto = Self { port, child };
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(moto);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(err(format!(
            "moto did not answer on port {port} within {START_TIMEOUT:?}"
        )))
    }

    /// `http://127.0.0.1:PORT`, the endpoint of every AWS service moto plays.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
