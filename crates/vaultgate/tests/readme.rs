//! The README's shell blocks marked `sh runnable` run, as written, against a real gateway (the
//! example config's model names, a master key), and the examples it points to run, so neither
//! can rot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const README: &str = include_str!("../../../README.md");
const MASTER: &str = "sk-master-readme-e2e-1";

/// Every fenced block whose info string is `sh runnable`.
fn runnable_blocks() -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = README;
    while let Some((_, after)) = rest.split_once("```sh runnable\n") {
        let (block, tail) = after.split_once("\n```").expect("the block ends");
        blocks.push(block.to_owned());
        rest = tail;
    }
    blocks
}

#[test]
fn the_runnable_readme_blocks_run() {
    let blocks = runnable_blocks();
    assert!(!blocks.is_empty(), "the README marks no block as runnable");
    // The quick start's model names, answered offline.
    let config = format!(
        "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params: {{model: openai/gpt-4o-mini, mock_response: hi}}\n\
         general_settings:\n  master_key: {MASTER}\n"
    );
    let gateway = Gateway::builder(BIN, &config).start().unwrap();
    for block in &blocks {
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", block])
            .env("LITELLM_MASTER_KEY", MASTER)
            .env("G", &gateway.url)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "README block failed:\n{block}\nstdout: {}\nstderr: {}\ngateway: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            gateway.logs()
        );
    }
}

/// `examples/replicas/run.sh --once`: two instances behind nginx with PostgreSQL, Redis and
/// OpenBao, driven through nginx (the script checks what it shows and fails otherwise).
#[test]
fn the_replicas_example_runs() {
    let nginx_installed = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .any(|path| Path::new(path).exists());
    if !nginx_installed {
        eprintln!("skipped: nginx is not installed here (apt-get install nginx; CI installs it)");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockUpstream::start()).unwrap();
    let provider_key = "sk-provider-replicas-example-3f1";
    // Only the key the script put in OpenBao gets an answer.
    mock.require_key(Some(provider_key));
    let state = tempfile::tempdir().unwrap();
    let port = vaultgate_testkit::openbao::free_port().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/replicas/run.sh"
    );
    let mut child = Command::new("bash")
        .arg(script)
        .arg("--once")
        .env("VAULTGATE_BIN", BIN)
        .env("MODEL_BASE", format!("{}/v1", mock.url()))
        .env("PROVIDER_KEY", provider_key)
        .env("PORT", port.to_string())
        .env("STATE_DIR", state.path())
        .env("PGURL", vaultgate_testkit::postgres::base_url())
        // Its own process group: on a timeout everything it started goes with it.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    let logs = |name: &str| std::fs::read_to_string(state.path().join(name)).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("Replicas example OK"),
        "the example failed ({}):\nstdout: {stdout}\nstderr: {}\ninstance a: {}\ninstance b: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        logs("vaultgate-a.log"),
        logs("vaultgate-b.log"),
    );
    assert!(stdout.contains("4 answered, 2 refused"), "{stdout}");
    assert_eq!(mock.count("/v1/chat/completions"), 4, "{stdout}");
}
