//! A Redis server of the test's own (`redis-server` on a free port, nothing kept on disk),
//! stopped by its pid: tests never touch the machine's shared Redis.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vaultgate_core::{Error, Result};

use crate::openbao::free_port;

/// How long a (re)started server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(20);

fn err(message: impl Into<String>) -> Error {
    Error::Internal(message.into())
}

/// One `redis-server` owned by a test; killed on drop.
pub struct RedisServer {
    port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// A server on a free port of 127.0.0.1.
    pub fn start() -> Result<Self> {
        Self::launch(None)
    }

    /// A server that asks for `password` (`requirepass`).
    pub fn start_with_password(password: &str) -> Result<Self> {
        Self::launch(Some(password.to_owned()))
    }

    fn launch(password: Option<String>) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| err(format!("tempdir: {e}")))?;
        let mut server = Self {
            port: free_port()?,
            password,
            dir,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<()> {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            // DEBUG SLEEP makes a slow Redis in tests.
            .args(["--enable-debug-command", "local"])
            .args(["--dir"])
            .arg(self.dir.path())
            .args(["--logfile"])
            .arg(self.dir.path().join("redis.log"));
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                err(format!(
                    "cannot start redis-server (apt-get install redis-server): {e}"
                ))
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.cli(&["PING"]).is_ok_and(|out| out.trim() == "PONG") {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(err(format!(
                    "redis-server exited with {status}: {}",
                    std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
                )));
            }
            if Instant::now() > deadline {
                return Err(err("redis-server did not answer PING in time"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:password@]127.0.0.1:PORT`
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs `redis-cli` against this server; its stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(password) = &self.password {
            command.env("REDISCLI_AUTH", password);
        }
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| err(format!("cannot run redis-cli: {e}")))?;
        if !output.status.success() {
            return Err(err(String::from_utf8_lossy(&output.stderr).into_owned()));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Kills the server (SIGKILL, by its pid): its data is gone, the port is free.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
