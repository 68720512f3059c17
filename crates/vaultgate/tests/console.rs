//! The admin console in a real browser: Playwright (`crates/console/web/tests`) driving Debian's
//! chromium headless against the real binary, a real OpenBao dev server (virtual keys mirrored
//! into it, one deployment's credentials leased from its RabbitMQ engine) and the recording mock
//! upstream. One test per spec file, so nextest runs them in
//! parallel, each against its own gateway. Screenshots land in `target/tmp/console/<spec>/`.
//!
//! Needs `npm ci` in `crates/console/web` (`scripts/setup.sh` does it) and `/usr/bin/chromium`
//! (or `CHROMIUM_BIN`; `.ci/run` installs Debian's `chromium`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;
use vaultgate_testkit::openbao::OpenBao;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-console-e2e-7c2a";
const PROVIDER_KEY: &str = "sk-provider-console-e2e";
/// Below nextest's 180 s kill, so a hung browser is reported with its output.
const SPEC_TIMEOUT: Duration = Duration::from_secs(170);

/// `closed_port`: a port nothing listens on (gpt-down's upstream).
fn config(upstream: &str, database_url: &str, closed_port: u16) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-a
    litellm_params: {{model: openai/gpt-a-upstream, api_base: '{upstream}/v1', api_key: os.environ/CONSOLE_PROVIDER_KEY}}
    model_info: {{input_cost_per_token: 0.01, output_cost_per_token: 0.02}}
  - model_name: gpt-b
    litellm_params: {{model: openai/gpt-b-upstream, api_base: '{upstream}/v1', api_key: os.environ/CONSOLE_PROVIDER_KEY, organization: os.environ/CONSOLE_ORG}}
  - model_name: gpt-down
    litellm_params: {{model: openai/gpt-down, api_base: 'http://127.0.0.1:{closed_port}/v1', api_key: os.environ/CONSOLE_PROVIDER_KEY}}
  - model_name: gpt-leased
    litellm_params: {{model: openai/gpt-leased, api_base: '{upstream}/v1', api_key: 'vault://rabbitmq/creds/gateway#password'}}
router_settings:
  allowed_fails: 2
  cooldown_time: 120
  num_retries: 0
general_settings:
  master_key: {MASTER}
  database_url: "{database_url}"
  key_management_system: hashicorp_vault
  key_management_settings:
    store_virtual_keys: true
    access_mode: read_and_write
"#
    )
}

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/web")
}

fn chromium() -> String {
    let bin = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&bin).exists(),
        "no chromium at {bin}: install Debian's `chromium` (see .ci/run) or set CHROMIUM_BIN"
    );
    bin
}

/// Runs one Playwright spec against a fresh gateway; panics with Playwright's report on failure.
async fn run_spec(spec: &str) {
    let web = web_dir();
    let cli = web.join("node_modules/@playwright/test/cli.js");
    assert!(
        cli.exists(),
        "Playwright is not installed: run `npm ci` in crates/console/web (scripts/setup.sh does)"
    );
    let chromium = chromium();
    let bao = OpenBao::start().unwrap();
    // The provider key lives in Vault, as in production.
    bao.kv_put(None, "secret", "CONSOLE_PROVIDER_KEY", PROVIDER_KEY)
        .unwrap();
    let mock = MockUpstream::start().await.unwrap();
    mock.require_key(Some(PROVIDER_KEY));
    // gpt-leased's credentials are leased from a dynamic engine (the mock plays RabbitMQ).
    bao.enable_rabbitmq(&mock.url(), 3600, 7200).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/keys.db", dir.path().display());
    let closed_port = vaultgate_testkit::openbao::free_port().unwrap();
    let gateway = Gateway::builder(BIN, &config(&mock.url(), &database_url, closed_port))
        .env("HCP_VAULT_ADDR", &bao.addr())
        .env("HCP_VAULT_TOKEN", bao.root_token())
        // Not in Vault: served from the environment.
        .env("CONSOLE_ORG", "org-console")
        .dir(dir.path())
        .start()
        .unwrap();
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("console")
        .join(spec);
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();

    let output_path = artifacts.join("playwright.log");
    let log = std::fs::File::create(&output_path).unwrap();
    let mut child = Command::new("node")
        .arg(&cli)
        .args(["test", &format!("tests/{spec}.spec.ts")])
        .current_dir(&web)
        .env("VAULTGATE_URL", &gateway.url)
        .env("VAULTGATE_MASTER_KEY", MASTER)
        .env("VAULTGATE_BAO_ADDR", bao.addr())
        .env("VAULTGATE_BAO_TOKEN", bao.root_token())
        .env("VAULTGATE_CONSOLE_ARTIFACTS", &artifacts)
        .env("CHROMIUM_BIN", &chromium)
        .env("CI", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("node is needed for the browser tests");
    // The mock upstream answers from this runtime while the browser works.
    let deadline = Instant::now() + SPEC_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let report = std::fs::read_to_string(&output_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => {
            println!("{report}");
            assert!(
                !gateway.logs().contains(MASTER),
                "the master key appeared in the gateway's logs"
            );
        }
        Some(status) => {
            let _ = std::fs::write(artifacts.join("gateway.log"), gateway.logs());
            panic!(
                "Playwright failed ({status}):\n{report}\n--- gateway logs ---\n{}",
                gateway.logs()
            )
        }
        None => panic!("Playwright did not finish within {SPEC_TIMEOUT:?}:\n{report}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sign_in_and_sessions() {
    run_spec("auth").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_keys_page() {
    run_spec("keys").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_models_page() {
    run_spec("models").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_vault_page() {
    run_spec("vault").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_teams_users_and_organizations_pages() {
    run_spec("principals").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_roles_viewers_and_internal_users() {
    run_spec("roles").await;
}

/// A gateway with no Vault, for the on/off switches.
fn plain_gateway(extra_general: &str, env: &[(&str, &str)]) -> Result<Gateway, String> {
    let config = format!(
        "model_list:\n  - model_name: m\n    litellm_params: {{model: openai/m, mock_response: hi}}\n\
         general_settings:\n  master_key: {MASTER}\n{extra_general}"
    );
    let mut builder = Gateway::builder(BIN, &config);
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    builder.start()
}

async fn status_of(gateway: &Gateway, path: &str) -> u16 {
    reqwest::get(format!("{}{path}", gateway.url))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_console_is_on_by_default_and_ui_false_or_disable_admin_ui_turns_it_off() {
    let on = plain_gateway("", &[]).unwrap();
    assert_eq!(status_of(&on, "/ui/").await, 200);
    assert!(on.logs().contains("admin console on http://"));
    // A session from the console on...
    let client = reqwest::Client::new();
    let signed_in = client
        .post(format!("{}/ui/api/session", on.url))
        .json(&serde_json::json!({"key": MASTER}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 200);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let listed = client
        .get(format!("{}/key/list", on.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status().as_u16(), 200);

    for (general, env) in [
        ("  ui: false\n", vec![]),
        ("", vec![("DISABLE_ADMIN_UI", "true")]),
        ("  ui: true\n", vec![("DISABLE_ADMIN_UI", "True")]),
    ] {
        let off = plain_gateway(general, &env).unwrap();
        assert_eq!(status_of(&off, "/ui/").await, 404, "{general} {env:?}");
        assert_eq!(status_of(&off, "/ui/api/session").await, 404);
        // ...is no credential where the console is off (same master key, so it would verify).
        let listed = client
            .get(format!("{}/key/list", off.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status().as_u16(), 401);
        assert!(!off.logs().contains("admin console on"));
    }
    let typo = plain_gateway("", &[("DISABLE_ADMIN_UI", "ture")])
        .err()
        .unwrap();
    assert!(
        typo.contains("DISABLE_ADMIN_UI must be true or false"),
        "{typo}"
    );
    let typo = plain_gateway("  ui: nope\n", &[]).err().unwrap();
    assert!(typo.contains("ui"), "{typo}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_spend_page() {
    run_spec("spend").await;
}
