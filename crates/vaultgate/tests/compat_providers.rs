//! LiteLLM's provider prefixes end to end through the real binary and the recording mock: every
//! OpenAI-compatible prefix with its default key name (and base name), the legacy
//! `text-completion-openai/`, Ollama's native API for `ollama/` and `ollama_chat/`, and a
//! provider's default key read from a real OpenBao.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use vaultgate_mock_upstream::MockUpstream;
use vaultgate_testkit::Gateway;
use vaultgate_testkit::openbao::OpenBao;

#[path = "compat_providers/ollama.rs"]
mod ollama;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "sk-master-compat-5c1e";

/// A hosted OpenAI-compatible prefix: the env name the test sets for its key, the base path on
/// the mock, and the path and model name the upstream must see.
struct Hosted {
    prefix: &'static str,
    key_env: &'static str,
    base: &'static str,
    expect_path: &'static str,
    model: &'static str,
    expect_model: &'static str,
}

const HOSTED: &[Hosted] = &[
    Hosted {
        prefix: "groq",
        key_env: "GROQ_API_KEY",
        base: "/groq/openai/v1",
        expect_path: "/groq/openai/v1/chat/completions",
        model: "llama-3.1-8b-instant",
        expect_model: "llama-3.1-8b-instant",
    },
    // Mistral's base always ends in /v1 (LiteLLM appends it); the Azure-hosted key name first.
    Hosted {
        prefix: "mistral",
        key_env: "MISTRAL_AZURE_API_KEY",
        base: "/mistral",
        expect_path: "/mistral/v1/chat/completions",
        model: "mistral-small-latest",
        expect_model: "mistral-small-latest",
    },
    Hosted {
        prefix: "deepseek",
        key_env: "DEEPSEEK_API_KEY",
        base: "/deepseek/beta",
        expect_path: "/deepseek/beta/chat/completions",
        model: "deepseek-chat",
        expect_model: "deepseek-chat",
    },
    // The third of together's key names: the earlier ones are unset, so it is the one used.
    Hosted {
        prefix: "together_ai",
        key_env: "TOGETHERAI_API_KEY",
        base: "/together/v1",
        expect_path: "/together/v1/chat/completions",
        model: "meta-llama/Llama-3-8b-chat-hf",
        expect_model: "meta-llama/Llama-3-8b-chat-hf",
    },
    Hosted {
        prefix: "fireworks_ai",
        key_env: "FIREWORKS_API_KEY",
        base: "/fireworks/inference/v1",
        expect_path: "/fireworks/inference/v1/chat/completions",
        model: "llama-v3p1-8b-instruct",
        expect_model: "accounts/fireworks/models/llama-v3p1-8b-instruct",
    },
    Hosted {
        prefix: "openrouter",
        key_env: "OR_API_KEY",
        base: "/openrouter/api/v1",
        expect_path: "/openrouter/api/v1/chat/completions",
        model: "anthropic/claude-3.5-sonnet",
        expect_model: "anthropic/claude-3.5-sonnet",
    },
    Hosted {
        prefix: "perplexity",
        key_env: "PERPLEXITYAI_API_KEY",
        base: "/perplexity",
        expect_path: "/perplexity/chat/completions",
        model: "sonar",
        expect_model: "sonar",
    },
    Hosted {
        prefix: "xai",
        key_env: "XAI_API_KEY",
        base: "/xai/v1",
        expect_path: "/xai/v1/chat/completions",
        model: "grok-3",
        expect_model: "grok-3",
    },
    Hosted {
        prefix: "cerebras",
        key_env: "CEREBRAS_API_KEY",
        base: "/cerebras/v1",
        expect_path: "/cerebras/v1/chat/completions",
        model: "llama3.1-8b",
        expect_model: "llama3.1-8b",
    },
    Hosted {
        prefix: "deepinfra",
        key_env: "DEEPINFRA_API_KEY",
        base: "/deepinfra/v1/openai",
        expect_path: "/deepinfra/v1/openai/chat/completions",
        model: "meta-llama/Meta-Llama-3-8B-Instruct",
        expect_model: "meta-llama/Meta-Llama-3-8B-Instruct",
    },
    Hosted {
        prefix: "nvidia_nim",
        key_env: "NVIDIA_NIM_API_KEY",
        base: "/nim/v1",
        expect_path: "/nim/v1/chat/completions",
        model: "meta/llama3-8b-instruct",
        expect_model: "meta/llama3-8b-instruct",
    },
    Hosted {
        prefix: "vllm",
        key_env: "HOSTED_VLLM_API_KEY",
        base: "/vllm/v1",
        expect_path: "/vllm/v1/chat/completions",
        model: "qwen",
        expect_model: "qwen",
    },
    Hosted {
        prefix: "lm_studio",
        key_env: "LM_STUDIO_API_KEY",
        base: "/lmstudio/v1",
        expect_path: "/lmstudio/v1/chat/completions",
        model: "qwen2.5-7b",
        expect_model: "qwen2.5-7b",
    },
    Hosted {
        prefix: "llamafile",
        key_env: "LLAMAFILE_API_KEY",
        base: "/llamafile/v1",
        expect_path: "/llamafile/v1/chat/completions",
        model: "mistral-7b",
        expect_model: "mistral-7b",
    },
    Hosted {
        prefix: "openai_like",
        key_env: "OPENAI_LIKE_API_KEY",
        base: "/like/v1",
        expect_path: "/like/v1/chat/completions",
        model: "my-model",
        expect_model: "my-model",
    },
    Hosted {
        prefix: "custom_openai",
        key_env: "OPENAI_API_KEY",
        base: "/custom/v1",
        expect_path: "/custom/v1/chat/completions",
        model: "my-model",
        expect_model: "my-model",
    },
];

fn key_of(prefix: &str) -> String {
    format!("sk-{prefix}-provider-secret")
}

async fn post(gateway: &Gateway, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", gateway.url))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The JSON payloads of an SSE body, `[DONE]` last (checked and left out).
fn sse_payloads(text: &str) -> Vec<Value> {
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_openai_compatible_prefix_serves_with_its_default_key_name() {
    let mock = MockUpstream::start().await.unwrap();
    let mut config = String::from("model_list:\n");
    for hosted in HOSTED {
        config.push_str(&format!(
            "  - model_name: {prefix}-model\n    litellm_params: {{model: {prefix}/{model}, api_base: '{url}{base}'}}\n",
            prefix = hosted.prefix,
            model = hosted.model,
            url = mock.url(),
            base = hosted.base,
        ));
    }
    // hosted_vllm has no default base: this one comes from HOSTED_VLLM_API_BASE.
    config.push_str(
        "  - model_name: hosted-vllm-model\n    litellm_params: {model: hosted_vllm/llama}\n",
    );
    config.push_str(&format!(
        "general_settings:\n  master_key: {MASTER}\nenvironment_variables:\n  HOSTED_VLLM_API_BASE: '{}/hosted-vllm/v1'\n",
        mock.url()
    ));
    let mut builder = Gateway::builder(BIN, &config);
    for hosted in HOSTED {
        builder = builder.env(hosted.key_env, &key_of(hosted.prefix));
    }
    let gateway = builder.start().unwrap();
    assert!(
        !gateway.logs().contains("provider-secret"),
        "a key reached the logs"
    );

    for hosted in HOSTED {
        let model = format!("{}-model", hosted.prefix);
        let response = post(
            &gateway,
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(response.status(), 200, "{}", hosted.prefix);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"], "Hello from the mock upstream.",
            "{}",
            hosted.prefix
        );
        let seen = mock.last_request().unwrap();
        assert_eq!(seen.uri, hosted.expect_path, "{}", hosted.prefix);
        assert_eq!(
            seen.header("authorization"),
            Some(format!("Bearer {}", key_of(hosted.prefix)).as_str()),
            "{}",
            hosted.prefix
        );
        assert_eq!(seen.body["model"], hosted.expect_model, "{}", hosted.prefix);
        assert!(!format!("{:?}", seen.headers).contains(MASTER));

        // And streaming, passed through chunk by chunk.
        let response = post(
            &gateway,
            "/v1/chat/completions",
            json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(response.status(), 200, "{}", hosted.prefix);
        let text = response.text().await.unwrap();
        assert_eq!(
            streamed_text(&sse_payloads(&text)),
            "Hello from the mock upstream.",
            "{}",
            hosted.prefix
        );
        assert_eq!(mock.last_request().unwrap().uri, hosted.expect_path);
    }

    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "hosted-vllm-model", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/hosted-vllm/v1/chat/completions");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {}", key_of("vllm")).as_str()),
        "hosted_vllm/ and vllm/ share HOSTED_VLLM_API_KEY"
    );

    // Embeddings reach the same hosts.
    let response = post(
        &gateway,
        "/v1/embeddings",
        json!({"model": "mistral-model", "input": "hi"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(mock.last_request().unwrap().uri, "/mistral/v1/embeddings");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_without_a_default_base_must_be_given_one() {
    let config = format!(
        "model_list:\n  - model_name: m\n    litellm_params: {{model: hosted_vllm/llama}}\ngeneral_settings:\n  master_key: {MASTER}\n"
    );
    let error = Gateway::builder(BIN, &config).start().err().unwrap();
    assert!(
        error.contains("has no api_base") && error.contains("HOSTED_VLLM_API_BASE"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn text_completion_openai_serves_chat_through_legacy_completions() {
    let mock = MockUpstream::start().await.unwrap();
    let config = format!(
        "model_list:\n  - model_name: instruct\n    litellm_params: {{model: text-completion-openai/gpt-3.5-turbo-instruct, api_base: '{}/v1'}}\ngeneral_settings:\n  master_key: {MASTER}\n",
        mock.url()
    );
    let gateway = Gateway::builder(BIN, &config)
        .env("OPENAI_API_KEY", "sk-openai-legacy-secret")
        .start()
        .unwrap();
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "instruct", "max_tokens": 20, "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "instruct");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    assert_eq!(body["usage"]["completion_tokens"], 7);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/v1/completions");
    assert_eq!(seen.body["prompt"], "Be brief.\n\nSay hi");
    assert_eq!(seen.body["max_tokens"], 20);
    assert!(seen.body.get("messages").is_none());
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer sk-openai-legacy-secret")
    );

    // Streamed: text chunks become chat chunks, with the usage the client asked for.
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "instruct", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Say hi"}]}),
    )
    .await;
    let chunks = sse_payloads(&response.text().await.unwrap());
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(streamed_text(&chunks), "Hello from the mock upstream.");
    assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], 5);
    assert_eq!(
        mock.last_request().unwrap().body["stream_options"]["include_usage"],
        true
    );

    // Legacy completions pass straight through.
    let response = post(
        &gateway,
        "/v1/completions",
        json!({"model": "instruct", "prompt": "Once"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let seen = mock.last_request().unwrap();
    assert_eq!(
        (seen.uri.as_str(), &seen.body["prompt"]),
        ("/v1/completions", &json!("Once"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_providers_default_key_name_is_read_from_vault() {
    let bao = OpenBao::start().unwrap();
    bao.create_namespace("admin").unwrap();
    bao.enable_kv2(Some("admin"), "secret").unwrap();
    bao.kv_put(
        Some("admin"),
        "secret",
        "DEEPSEEK_API_KEY",
        "sk-deepseek-from-vault",
    )
    .unwrap();
    let mock = MockUpstream::start().await.unwrap();
    let config = format!(
        "model_list:\n  - model_name: ds\n    litellm_params: {{model: deepseek/deepseek-chat, api_base: '{}/ds'}}\ngeneral_settings:\n  master_key: {MASTER}\n  key_management_system: hashicorp_vault\n",
        mock.url()
    );
    let gateway = Gateway::builder(BIN, &config)
        .env("HCP_VAULT_ADDR", &bao.addr())
        .env("HCP_VAULT_TOKEN", bao.root_token())
        .env("HCP_VAULT_NAMESPACE", "admin")
        .env("DEEPSEEK_API_KEY", "sk-deepseek-from-env-not-used")
        .start()
        .unwrap();
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "ds", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        mock.last_request().unwrap().header("authorization"),
        Some("Bearer sk-deepseek-from-vault")
    );
}
