//! The real `vaultgate` binary, started on 127.0.0.1 port 0 with a temp config.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a gateway may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running gateway process; killed when dropped.
pub struct Gateway {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    logs: Arc<Mutex<String>>,
    /// The temp dir the gateway runs in, unless the test gave its own.
    _dir: Option<tempfile::TempDir>,
    pub config_path: std::path::PathBuf,
}

/// How to start a gateway.
pub struct GatewayBuilder {
    bin: String,
    config: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
    rust_log: String,
    dir: Option<std::path::PathBuf>,
}

impl Gateway {
    /// `bin` is `env!("CARGO_BIN_EXE_vaultgate")` of the calling test.
    pub fn builder(bin: &str, config: &str) -> GatewayBuilder {
        GatewayBuilder {
            bin: bin.to_owned(),
            config: config.to_owned(),
            env: Vec::new(),
            args: Vec::new(),
            rust_log: "info".into(),
            dir: None,
        }
    }

    /// Everything the gateway logged so far (stderr).
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for a graceful exit.
    pub fn stop(mut self) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// Requests to a running gateway, as tests make them: the status and the JSON body (`Null`
/// when the body is not JSON); `Err` only when no answer came.
impl Gateway {
    pub async fn get_json(
        &self,
        path: &str,
        key: &str,
    ) -> Result<(u16, serde_json::Value), String> {
        let request = reqwest::Client::new().get(format!("{}{path}", self.url));
        answer(request.bearer_auth(key)).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value), String> {
        let request = reqwest::Client::new().post(format!("{}{path}", self.url));
        answer(request.bearer_auth(key).json(body)).await
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Result<(u16, serde_json::Value), String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status().as_u16();
    Ok((
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    ))
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayBuilder {
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_owned();
        self
    }

    /// Run in this directory, which the test keeps (SQLite files survive a restart).
    pub fn dir(mut self, dir: &std::path::Path) -> Self {
        self.dir = Some(dir.to_owned());
        self
    }

    fn command(&self, dir: &std::path::Path) -> std::io::Result<(Command, std::path::PathBuf)> {
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, &self.config)?;
        let mut command = Command::new(&self.bin);
        command
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir)
            .env("RUST_LOG", &self.rust_log)
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        Ok((command, config_path))
    }

    /// Starts the gateway and waits until it listens. Errors carry its logs.
    pub fn start(self) -> Result<Gateway, String> {
        let owned = match self.dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().map_err(|e| e.to_string())?),
        };
        let dir = match (&self.dir, &owned) {
            (Some(path), _) => path.clone(),
            (None, Some(temp)) => temp.path().to_owned(),
            (None, None) => return Err("no directory".into()),
        };
        let (mut command, config_path) = self.command(&dir).map_err(|e| e.to_string())?;
        command
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(&self.args);
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin))?;
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(
                        address
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                if let Ok(mut logs) = sink.lock() {
                    logs.push_str(&line);
                    logs.push('\n');
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(address) = rx.recv_timeout(Duration::from_millis(50)) {
                let url = format!("http://{address}");
                return Ok(Gateway {
                    child,
                    url,
                    logs,
                    _dir: owned,
                    config_path,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let logs = logs.lock().map(|l| l.clone()).unwrap_or_default();
                return Err(format!(
                    "gateway exited with {status} before listening:\n{logs}"
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let logs = logs.lock().map(|l| l.clone()).unwrap_or_default();
                return Err(format!(
                    "gateway did not listen within {START_TIMEOUT:?}:\n{logs}"
                ));
            }
        }
    }

    /// Runs `vaultgate <args> --config …` to completion (e.g. `check`), with a bounded wait.
    pub fn run(self, args: &[&str]) -> Result<Output, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (mut command, _) = self.command(dir.path()).map_err(|e| e.to_string())?;
        let mut child = command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + START_TIMEOUT;
        while child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("command did not finish in time".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().map_err(|e| e.to_string())
    }
}
