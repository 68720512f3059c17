//! Kubernetes auth against a real dev server: a fake TokenReview API and unsigned
//! service-account JWTs.

use std::net::TcpListener;
use std::time::Duration;

use vaultgate_core::Result;

use super::{OpenBao, err, generate_client_cert};

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
