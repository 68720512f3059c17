//! The README's shell blocks marked `sh runnable` run, as written, against a real gateway (the
//! example config's model names, a master key), so the README cannot rot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

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
