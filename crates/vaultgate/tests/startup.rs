//! What the gateway does with its configuration at start: typos stop it, LiteLLM settings it
//! does not implement are warnings, and it never starts open by accident.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use vaultgate_testkit::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-startup-71c0";
const MODELS: &str =
    "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, mock_response: hi}\n";

fn run(config: &str, args: &[&str]) -> (bool, String, String) {
    let output = Gateway::builder(BIN, config).run(args).unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn chat_without_key(gateway: &Gateway) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json(&json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn a_misspelt_master_key_stops_the_start_and_fails_check() {
    let config = format!("{MODELS}general_settings:\n  master_kye: {MASTER}\n");
    let (ok, _, stderr) = run(&config, &["--port", "0"]);
    assert!(!ok);
    assert!(stderr.contains("config.yaml:5:3"), "{stderr}");
    assert!(stderr.contains("did you mean `master_key`"), "{stderr}");
    let (ok, stdout, stderr) = run(&config, &["check"]);
    assert!(!ok, "check passed a typo: {stdout}");
    assert!(stderr.contains("did you mean `master_key`"), "{stderr}");
}

#[test]
fn no_master_key_refuses_to_start_and_check_says_why() {
    let (ok, _, stderr) = run(MODELS, &["--port", "0"]);
    assert!(!ok, "started open");
    assert!(
        stderr.contains("no authentication is configured")
            && stderr.contains("--allow-unauthenticated"),
        "{stderr}"
    );
    let (ok, stdout, _) = run(MODELS, &["check"]);
    assert!(!ok);
    assert!(stdout.contains("FAIL auth"), "{stdout}");
    let (ok, stdout, _) = run(MODELS, &["check", "--allow-unauthenticated"]);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("warn auth: UNAUTHENTICATED"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn open_mode_is_explicit_loud_and_shown_in_readiness() {
    for (config, args) in [
        (
            format!("{MODELS}general_settings: {{allow_unauthenticated: true}}\n"),
            vec![],
        ),
        (MODELS.to_owned(), vec!["--allow-unauthenticated"]),
    ] {
        let mut builder = Gateway::builder(BIN, &config);
        for arg in args {
            builder = builder.arg(arg);
        }
        let gateway = builder.start().unwrap();
        assert!(
            gateway.logs().contains("UNAUTHENTICATED"),
            "{}",
            gateway.logs()
        );
        assert_eq!(chat_without_key(&gateway).await, 200);
        let readiness: Value = reqwest::get(format!("{}/health/readiness", gateway.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(readiness["auth"]["mode"], "unauthenticated", "{readiness}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_key_from_the_environment_is_enough() {
    let gateway = Gateway::builder(BIN, MODELS)
        .env("LITELLM_MASTER_KEY", MASTER)
        .start()
        .unwrap();
    assert_eq!(chat_without_key(&gateway).await, 401);
    assert!(!gateway.logs().contains("UNAUTHENTICATED"));
}

#[test]
fn litellm_settings_vaultgate_ignores_give_a_warning_each_naming_the_feature() {
    let config = format!(
        "{MODELS}litellm_settings: {{success_callback: [langfuse], cache: true}}\ngeneral_settings: {{master_key: {MASTER}}}\n"
    );
    let gateway = Gateway::builder(BIN, &config).start().unwrap();
    let logs = gateway.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("LiteLLM setting ignored"))
        .collect();
    assert_eq!(warnings.len(), 2, "{logs}");
    assert!(
        warnings[0].contains("litellm_settings.success_callback")
            && warnings[0].contains("callbacks")
    );
    assert!(warnings[1].contains("litellm_settings.cache") && warnings[1].contains("caching"));
    let (ok, stdout, _) = run(&config, &["check"]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("warn ignored: litellm_settings.cache (line 4): vaultgate does not implement response caching"),
        "{stdout}"
    );
}
