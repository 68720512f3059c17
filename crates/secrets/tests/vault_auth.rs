//! Login methods, token renewal and re-login against a real OpenBao dev server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{LIMIT, bao, config, env, wait_until};
use vaultgate_config::ConfigValue;
use vaultgate_core::ExposeSecret;
use vaultgate_secrets::{Env, LiveSecrets, VaultClient, VaultSettings};
use vaultgate_testkit::openbao::{OpenBao, generate_client_cert};

const KV_POLICY: &str = r#"
path "secret/data/*" { capabilities = ["read", "create", "update", "delete"] }
path "secret/metadata/*" { capabilities = ["read", "list", "update", "delete"] }
"#;

async fn connect(env: &Env) -> VaultClient {
    VaultClient::connect(VaultSettings::from_env(env).unwrap().unwrap())
        .await
        .unwrap()
}

fn approle_env(bao: &OpenBao, role_id: &str, secret_id: &str, extra: &[(&str, &str)]) -> Env {
    let mut pairs = vec![
        ("HCP_VAULT_TOKEN", ""),
        ("HCP_VAULT_APPROLE_ROLE_ID", role_id),
        ("HCP_VAULT_APPROLE_SECRET_ID", secret_id),
    ];
    pairs.extend_from_slice(extra);
    env(bao, &pairs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_in_a_namespace() {
    let bao = bao();
    bao.create_namespace("team").unwrap();
    bao.enable_kv2(Some("team"), "secret").unwrap();
    bao.kv_put(Some("team"), "secret", "ANTHROPIC_API_KEY", "sk-ant-team")
        .unwrap();
    bao.write_policy(Some("team"), "gateway", KV_POLICY)
        .unwrap();
    let (role_id, secret_id) = bao
        .enable_approle(Some("team"), "gw", "gateway", "1h", "4h")
        .unwrap();

    let env = approle_env(
        &bao,
        &role_id,
        &secret_id,
        &[("HCP_VAULT_NAMESPACE", "team")],
    );
    let live = LiveSecrets::start(&config(&["ANTHROPIC_API_KEY"], ""), env)
        .await
        .unwrap();
    let value = live
        .snapshot()
        .value(&ConfigValue::Reference("ANTHROPIC_API_KEY".into()))
        .map(str::to_owned);
    assert_eq!(value.as_deref(), Some("sk-ant-team"));
    let vault = live.vault().unwrap();
    let info = vault.token_info().await.unwrap();
    assert_eq!(info.method, "approle");
    assert!(info.renewable && info.ttl_secs > 0);
    assert!(
        info.policies.contains(&"gateway".to_owned()),
        "{:?}",
        info.policies
    );
    assert!(live.readiness().token_ttl_secs.is_some());

    // Wrong secret id: a clear login error, no secret in it.
    let env = approle_env(
        &bao,
        &role_id,
        "00000000-0000-0000-0000-000000000000",
        &[("HCP_VAULT_NAMESPACE", "team")],
    );
    let error = VaultClient::connect(VaultSettings::from_env(&env).unwrap().unwrap())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("approle login at auth/approle: 400"),
        "{message}"
    );
    assert!(!message.contains("00000000-0000"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_ttl_approle_token_is_renewed_then_logged_in_again() {
    let bao = bao();
    bao.kv_put(None, "secret", "K", "v1").unwrap();
    bao.write_policy(None, "gateway", KV_POLICY).unwrap();
    // Renewals grow the TTL until the 12 s max, then a new login is needed.
    let (role_id, secret_id) = bao
        .enable_approle(None, "gw", "gateway", "5s", "12s")
        .unwrap();
    let client = connect(&approle_env(&bao, &role_id, &secret_id, &[])).await;
    assert_eq!(client.stats().logins, 1);

    assert!(
        wait_until(LIMIT, || async { client.stats().renewals >= 1 }).await,
        "no renewal: {:?}",
        client.stats()
    );
    assert_eq!(client.stats().logins, 1, "renewal must not log in again");
    assert!(
        wait_until(LIMIT, || async { client.stats().logins >= 2 }).await,
        "no re-login: {:?}",
        client.stats()
    );
    // Past the first token's max TTL, calls work with the new one.
    assert_eq!(
        client
            .read_secret("K")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "v1"
    );
    assert!(client.auth_error().is_none(), "{:?}", client.auth_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_token_is_renewed_until_its_max_ttl_then_reported() {
    let bao = bao();
    bao.kv_put(None, "secret", "K", "v1").unwrap();
    bao.write_policy(None, "gateway", KV_POLICY).unwrap();
    let token = bao
        .create_token(None, &["gateway"], "3s", Some("7s"))
        .unwrap();
    let env = env(
        &bao,
        &[
            ("HCP_VAULT_TOKEN", token.as_str()),
            ("HCP_VAULT_REFRESH_INTERVAL", "1"),
        ],
    );
    let live = LiveSecrets::start(&config(&["K"], ""), env).await.unwrap();
    let vault = live.vault().unwrap().clone();
    assert!(wait_until(LIMIT, || async { vault.stats().renewals >= 1 }).await);
    // A token we cannot replace: once it is gone, readiness says so (and values are kept).
    let _refresher = live
        .clone()
        .spawn_refresher(tokio_util::sync::CancellationToken::new());
    assert!(
        wait_until(LIMIT, || async { live.readiness().status == "degraded" }).await,
        "{:?}",
        live.readiness()
    );
    assert_eq!(live.snapshot().get("K"), Some("v1"));
    assert_eq!(vault.stats().logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_denied_triggers_a_single_relogin() {
    let bao = bao();
    bao.kv_put(None, "secret", "K", "v1").unwrap();
    bao.write_policy(None, "gateway", KV_POLICY).unwrap();
    let (role_id, secret_id) = bao
        .enable_approle(None, "gw", "gateway", "1h", "4h")
        .unwrap();
    let client = connect(&approle_env(&bao, &role_id, &secret_id, &[])).await;
    // A 403 re-logs in only with a token older than 2 s (younger means a policy problem).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // A 403 re-logs in only with a token older than 2 s (younger means a policy problem).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // Revoke every token AppRole issued: the next call gets 403.
    bao.bao(&["token", "revoke", "-mode=path", "auth/approle"])
        .unwrap();
    let reads = futures_util::future::join_all((0..4).map(|_| client.read_secret("K"))).await;
    for read in reads {
        assert_eq!(read.unwrap().unwrap().expose_secret(), "v1");
    }
    assert_eq!(
        client.stats().logins,
        2,
        "concurrent 403s must share one login"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_auth_over_tls_with_renewal() {
    let bao = OpenBao::start_tls().unwrap();
    bao.kv_put(None, "secret", "CERT_KEY", "sk-cert").unwrap();
    bao.write_policy(None, "gateway", KV_POLICY).unwrap();
    let (cert, key) = generate_client_cert(bao.dir(), "client", "vaultgate-test").unwrap();
    bao.enable_cert_auth(None, "gw", &cert, "gateway", "5s", "1h")
        .unwrap();
    let ca = bao.ca_path().unwrap().display().to_string();
    let cert = cert.display().to_string();
    let key = key.display().to_string();
    let env = env(
        &bao,
        &[
            ("HCP_VAULT_TOKEN", ""),
            ("VAULT_CACERT", ca.as_str()),
            ("HCP_VAULT_CLIENT_CERT", cert.as_str()),
            ("HCP_VAULT_CLIENT_KEY", key.as_str()),
            ("HCP_VAULT_CERT_ROLE", "gw"),
        ],
    );
    let client = connect(&env).await;
    assert_eq!(client.token_info().await.unwrap().method, "cert");
    assert_eq!(
        client
            .read_secret("CERT_KEY")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "sk-cert"
    );
    // Renewal of a cert-issued token happens over the same mTLS client.
    assert!(
        wait_until(LIMIT, || async { client.stats().renewals >= 2 }).await,
        "{:?}",
        client.stats()
    );
    assert_eq!(client.stats().logins, 1);
    assert!(client.auth_error().is_none(), "{:?}", client.auth_error());

    // Without the CA the server's certificate is not trusted.
    let no_ca = Env::from_map([
        ("HCP_VAULT_ADDR", bao.addr()),
        ("HCP_VAULT_TOKEN", "root".into()),
        ("VAULT_MAX_RETRIES", "0".into()),
    ]);
    let error = VaultClient::connect(VaultSettings::from_env(&no_ca).unwrap().unwrap())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("unreachable") && message.contains("certificate"),
        "{message}"
    );
    // Skip-verify (loudly warned) connects anyway.
    let skip = no_ca.with("VAULT_SKIP_VERIFY", "true");
    let client = connect(&skip).await;
    assert_eq!(
        client
            .read_secret("CERT_KEY")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "sk-cert"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_denial_is_an_error_not_a_login_storm() {
    let bao = bao();
    bao.kv_put(None, "secret", "FORBIDDEN", "x").unwrap();
    bao.write_policy(
        None,
        "narrow",
        "path \"secret/data/allowed/*\" { capabilities = [\"read\"] }",
    )
    .unwrap();
    let (role_id, secret_id) = bao
        .enable_approle(None, "gw", "narrow", "1h", "4h")
        .unwrap();
    let client = connect(&approle_env(&bao, &role_id, &secret_id, &[])).await;
    let error = client.read_secret("FORBIDDEN").await.unwrap_err();
    assert!(
        matches!(&error, vaultgate_core::Error::Vault { status: Some(403), message } if message.contains("permission denied")),
        "{error:?}"
    );
    assert_eq!(client.stats().logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_auth_reads_the_service_account_token_at_each_login() {
    use vaultgate_testkit::openbao::{FakeKubernetes, service_account_jwt};
    let bao = bao();
    bao.kv_put(None, "secret", "K8S_KEY", "sk-k8s").unwrap();
    bao.write_policy(None, "gateway", KV_POLICY).unwrap();
    let fake = FakeKubernetes::start("gateway-ns", "vaultgate", "uid-1").unwrap();
    bao.enable_kubernetes_auth(&fake, "gw", "gateway-ns", "vaultgate", "gateway", "1h")
        .unwrap();
    let jwt_path = bao.dir().join("sa-token");
    let first = service_account_jwt("gateway-ns", "vaultgate", "uid-1", "first");
    std::fs::write(&jwt_path, format!("{first}\n")).unwrap();
    let jwt_path_text = jwt_path.display().to_string();
    let env = env(
        &bao,
        &[
            ("HCP_VAULT_TOKEN", ""),
            ("HCP_VAULT_K8S_ROLE", "gw"),
            ("HCP_VAULT_K8S_TOKEN_PATH", jwt_path_text.as_str()),
        ],
    );
    let client = connect(&env).await;
    assert_eq!(client.token_info().await.unwrap().method, "kubernetes");
    assert_eq!(
        client
            .read_secret("K8S_KEY")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "sk-k8s"
    );
    assert_eq!(fake.reviewed(), std::slice::from_ref(&first));

    // The kubelet rotates the file; the next login (here after a revocation) uses the new JWT.
    let second = service_account_jwt("gateway-ns", "vaultgate", "uid-1", "second");
    std::fs::write(&jwt_path, &second).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    bao.bao(&["token", "revoke", "-mode=path", "auth/kubernetes"])
        .unwrap();
    assert_eq!(
        client
            .read_secret("K8S_KEY")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "sk-k8s"
    );
    assert_eq!(fake.reviewed(), [first, second]);
    assert_eq!(client.stats().logins, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_namespace_header_and_secret_namespace_path_are_separate() {
    let bao = bao();
    bao.create_namespace("admin").unwrap();
    bao.create_namespace("admin/team").unwrap();
    bao.enable_kv2(Some("admin/team"), "secret").unwrap();
    bao.kv_put(Some("admin/team"), "secret", "TEAM_KEY", "sk-team")
        .unwrap();
    // A policy of the parent namespace granting the child's KV path.
    bao.write_policy(
        Some("admin"),
        "team-reader",
        "path \"team/secret/data/*\" { capabilities = [\"read\"] }",
    )
    .unwrap();
    let (role_id, secret_id) = bao
        .enable_approle(Some("admin"), "gw", "team-reader", "1h", "4h")
        .unwrap();
    let env = approle_env(
        &bao,
        &role_id,
        &secret_id,
        &[
            ("HCP_VAULT_LOGIN_NAMESPACE", "admin"),
            ("HCP_VAULT_SECRET_NAMESPACE", "/admin/team/"),
        ],
    );
    let client = connect(&env).await;
    assert_eq!(
        client.secret_path("TEAM_KEY").unwrap(),
        format!("{}/v1/admin/team/secret/data/TEAM_KEY", bao.addr())
    );
    assert_eq!(
        client
            .read_secret("TEAM_KEY")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "sk-team"
    );
    let info = client.token_info().await.unwrap();
    assert!(
        info.policies.contains(&"team-reader".to_owned()),
        "{:?}",
        info.policies
    );
}
