//! The Vault copies of virtual keys when Vault is not on its best day, end to end: the real
//! binary, a real OpenBao (behind a small proxy of this test's own that delays or drops
//! answers), SQLite and PostgreSQL. A policy without metadata rights, a write applied after the
//! gateway gave up on it, aliases that address one Vault path, and `check` after deletes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vaultgate_testkit::postgres::PgSchema;

mod common;

use common::{Env, admin, admin_get};

/// What the proxy does to Vault's answers.
#[derive(Default, Clone, Copy)]
struct Faults {
    /// Hold the answer to every data write (applied by Vault) this long.
    delay_data_writes: Option<Duration>,
    /// After a data write went through, drop every later connection (until cleared).
    dark_after_data_write: bool,
    dark: bool,
}

/// A proxy in front of OpenBao, one request per connection (`Connection: close` upstream).
struct FaultyVault {
    addr: String,
    faults: Arc<Mutex<Faults>>,
}

impl FaultyVault {
    async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let faults = Arc::new(Mutex::new(Faults::default()));
        let shared = faults.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream.clone(), shared.clone()));
            }
        });
        Self { addr, faults }
    }

    fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }
}

async fn relay(mut client: TcpStream, upstream: String, faults: Arc<Mutex<Faults>>) {
    let Some(request) = read_request(&mut client).await else {
        return;
    };
    if faults.lock().unwrap().dark {
        return; // dropped: the client sees the connection closed
    }
    let head = String::from_utf8_lossy(&request).into_owned();
    let first = head.lines().next().unwrap_or_default().to_owned();
    let data_write = first.starts_with("POST ") && first.contains("/data/");
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    if server
        .write_all(&with_connection_close(&request))
        .await
        .is_err()
    {
        return;
    }
    let mut answer = Vec::new();
    let _ = server.read_to_end(&mut answer).await;
    if data_write {
        let now = *faults.lock().unwrap();
        if now.dark_after_data_write {
            faults.lock().unwrap().dark = true;
        }
        if let Some(delay) = now.delay_data_writes {
            tokio::time::sleep(delay).await;
        }
    }
    let _ = client.write_all(&answer).await;
    let _ = client.shutdown().await;
}

/// One HTTP/1.1 request: head and a `Content-Length` body.
async fn read_request(client: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf)
}

fn with_connection_close(request: &[u8]) -> Vec<u8> {
    let head_end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&request[..head_end]);
    let mut out: String = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&request[head_end + 4..]);
    bytes
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Until `done` holds, for at most 20 s.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_metadata_rights_gets_a_502_naming_the_policy_line_and_leaves_nothing() {
    let env = Env::new().await;
    env.bao
        .write_policy(
            None,
            "data-only",
            r#"path "secret/data/litellm/*" { capabilities = ["create", "read", "update", "delete"] }"#,
        )
        .unwrap();
    let token = env
        .bao
        .create_token(None, &["data-only"], "1h", None)
        .unwrap();
    let gateway = env.gateway_with(&env.sqlite_url(), &[("HCP_VAULT_TOKEN", &token)]);
    let (status, body) = admin(&gateway, "/key/generate", json!({"key_alias": "partial"})).await;
    assert_eq!(status, 502, "{body}");
    let text = message(&body);
    assert!(
        text.contains("secret/metadata/litellm/partial") && text.contains(r#""create", "update""#),
        "{body}"
    );
    assert_eq!(body["error"]["code"], "vault_permission_denied", "{body}");
    // Nothing in Vault, not even a soft-deletable version, and no key.
    assert!(
        env.bao
            .kv_get(None, "secret", "litellm/partial")
            .unwrap()
            .is_none()
    );
    let versions = env.bao.bao(&[
        "kv",
        "metadata",
        "get",
        "-format=json",
        "-mount=secret",
        "litellm/partial",
    ]);
    assert!(versions.is_err(), "a copy was left behind: {versions:?}");
    let (_, listed) = admin_get(&gateway, "/key/list").await;
    assert_eq!(listed["total_count"], 0, "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vault_write_answered_too_late_is_kept_and_one_of_unknown_outcome_is_undone() {
    let env = Env::new().await;
    let proxy = FaultyVault::start(&env.bao.addr()).await;
    let gateway = env.gateway_with(
        &env.sqlite_url(),
        &[
            ("HCP_VAULT_ADDR", &proxy.addr),
            ("VAULT_CLIENT_TIMEOUT", "400ms"),
        ],
    );
    let (status, key) = admin(&gateway, "/key/generate", json!({"key_alias": "slow"})).await;
    assert_eq!(status, 200, "{key}");
    let old = key["key"].as_str().unwrap().to_owned();

    // Vault applies the new value but answers after the gateway stopped waiting (and the
    // client's retries meet the applied version): the regenerate stands.
    proxy.set(Faults {
        delay_data_writes: Some(Duration::from_millis(900)),
        ..Faults::default()
    });
    let (status, regenerated) = admin(&gateway, "/key/regenerate", json!({"key": old})).await;
    assert_eq!(status, 200, "{regenerated}");
    let new = regenerated["key"].as_str().unwrap().to_owned();
    assert_eq!(env.vault_copy("slow").as_deref(), Some(new.as_str()));

    // Vault applies the write and then goes dark: the key is not changed (503), and once
    // Vault answers again the outbox puts the key's own value back.
    proxy.set(Faults {
        delay_data_writes: Some(Duration::from_millis(900)),
        dark_after_data_write: true,
        dark: false,
    });
    let (status, body) = admin(&gateway, "/key/regenerate", json!({"key": new})).await;
    assert_eq!(status, 503, "{body}");
    assert_ne!(env.vault_copy("slow").as_deref(), Some(new.as_str()));
    proxy.set(Faults::default());
    assert!(
        eventually(|| env.vault_copy("slow").as_deref() == Some(new.as_str())).await,
        "the Vault copy still holds a key that does not exist\n{}",
        gateway.logs()
    );
    let (status, info) = admin_get(&gateway, &format!("/key/info?key={new}")).await;
    assert_eq!(status, 200, "{info}");
}

#[tokio::test(flavor = "multi_thread")]
async fn aliases_that_share_a_vault_path_or_hide_characters_are_refused_on_postgres() {
    let env = Env::new().await;
    let schema = PgSchema::create().unwrap();
    let gateway = env.gateway(&schema.url);
    let (_, x) = admin(&gateway, "/key/generate", json!({"key_alias": "x"})).await;
    for alias in ["x ", " x", "x/", "a/./b", "pay\u{202E}roll", "zero\u{200B}"] {
        let (status, body) = admin(&gateway, "/key/generate", json!({"key_alias": alias})).await;
        assert_eq!(status, 400, "{alias:?}: {body}");
        assert_eq!(body["error"]["param"], "key_alias", "{alias:?}: {body}");
    }
    let (_, shared) = admin(&gateway, "/key/generate", json!({"key_alias": "x "})).await;
    assert!(message(&shared).contains(x["key_name"].as_str().unwrap()));
    let (_, ab) = admin(&gateway, "/key/generate", json!({"key_alias": "a/b"})).await;
    let (status, body) = admin(&gateway, "/key/generate", json!({"key_alias": "a//b"})).await;
    assert_eq!(status, 400, "{body}");

    // A rename to a name of the same path keeps the only copy.
    let (_, p) = admin(&gateway, "/key/generate", json!({"key_alias": "p"})).await;
    let p_key = p["key"].as_str().unwrap();
    let (status, body) = admin(
        &gateway,
        "/key/update",
        json!({"key": p["token"], "key_alias": "p "}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.vault_copy("p").as_deref(), Some(p_key));
    assert_eq!(env.vault_copy("x"), x["key"].as_str().map(str::to_owned));
    assert_eq!(env.vault_copy("a/b"), ab["key"].as_str().map(str::to_owned));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_is_clean_after_ordinary_deletes_and_sees_a_live_keys_deleted_copy() {
    let env = Env::new().await;
    let gateway = env.gateway(&env.sqlite_url());
    for alias in ["team/a b", "gone", "kept", "renamed"] {
        let (status, body) = admin(&gateway, "/key/generate", json!({"key_alias": alias})).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = admin(&gateway, "/key/delete", json!({"key_aliases": ["gone"]})).await;
    assert_eq!(status, 200);
    let (_, renamed) = admin_get(&gateway, "/key/list?key_alias=renamed").await;
    let token = renamed["keys"][0].as_str().unwrap().to_owned();
    let (status, body) = admin(
        &gateway,
        "/key/update",
        json!({"key": token, "key_alias": "team/renamed"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    drop(gateway);
    let check = |args: &[&str]| {
        let output = env.builder(&env.sqlite_url(), &[]).run(args).unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.success(), stdout)
    };

    let (ok, stdout) = check(&["check"]);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("in sync with Vault"), "{stdout}");
    assert!(!stdout.contains("\"gone\""), "{stdout}");
    let (ok, stdout) = check(&["check", "--verbose"]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("deleted: Vault secret \"gone\"")
            && stdout.contains("deleted: Vault secret \"renamed\""),
        "{stdout}"
    );

    // A live key's copy soft-deleted behind the gateway's back is drift.
    env.bao
        .bao(&["kv", "delete", "-mount=secret", "litellm/kept"])
        .unwrap();
    let (ok, stdout) = check(&["check"]);
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("\"kept\": deleted") && stdout.contains("DRIFT"),
        "{stdout}"
    );
}
