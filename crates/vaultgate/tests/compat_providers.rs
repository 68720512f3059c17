//! LiteLLM's provider prefixes end to end through the real binary and the recording mock: every
//! OpenAI-compatible prefix with its default key name (and base name), the legacy
//! `text-completion-openai/`, Ollama's native API for `ollama/` and `ollama_chat/`, and a
//! provider's default key read from a real OpenBao.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use vaultgate_mock_upstream::{MockUpstream, Script};
use vaultgate_testkit::Gateway;
use vaultgate_testkit::openbao::OpenBao;

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

fn ollama_gateway(mock: &MockUpstream) -> Gateway {
    let config = format!(
        r#"model_list:
  - model_name: llama-chat
    litellm_params: {{model: ollama_chat/llama3.1, api_base: '{url}'}}
  - model_name: llama-generate
    litellm_params: {{model: ollama/llama3.1}}
  - model_name: llama-embed
    litellm_params: {{model: ollama/nomic-embed-text, api_base: '{url}'}}
router_settings: {{num_retries: 0}}
general_settings:
  master_key: {MASTER}
environment_variables:
  OLLAMA_API_BASE: '{url}'
"#,
        url = mock.url()
    );
    Gateway::builder(BIN, &config).start().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_chat_speaks_api_chat_with_tools_and_json_lines_streams() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = ollama_gateway(&mock);
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-chat", "max_tokens": 50, "temperature": 0.1,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        (
            &body["usage"]["prompt_tokens"],
            &body["usage"]["completion_tokens"]
        ),
        (&json!(5), &json!(7))
    );
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/api/chat");
    assert_eq!(seen.body["model"], "llama3.1");
    assert_eq!(seen.body["stream"], false);
    assert_eq!(seen.body["format"], "json");
    assert_eq!(
        seen.body["options"],
        json!({"num_predict": 50, "temperature": 0.1})
    );
    assert_eq!(
        seen.body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is this?", "images": ["iVBORw0KGgo="]},
        ])
    );

    // A tool call comes back with OpenAI's string arguments and an id; the tool result goes
    // back as a `tool` message.
    mock.push(Script {
        body: Some(json!({"model": "llama3.1", "done": true, "done_reason": "stop",
            "message": {"role": "assistant", "content": "",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            "prompt_eval_count": 20, "eval_count": 4}).to_string()),
        ..Script::default()
    });
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-chat", "tools": tools, "tool_choice": "auto",
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
    )
    .await;
    let body: Value = response.json().await.unwrap();
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
    assert!(call["id"].as_str().unwrap().starts_with("call"));
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.body["tools"], tools);
    assert!(seen.body.get("tool_choice").is_none());

    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-chat", "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let seen = mock.last_request().unwrap();
    assert_eq!(
        seen.body["messages"][1]["tool_calls"][0]["function"]["arguments"],
        json!({"city": "Paris"})
    );
    assert_eq!(
        seen.body["messages"][2],
        json!({"role": "tool", "content": "18C"})
    );

    // A JSON-lines stream becomes OpenAI chunks, with usage when asked for.
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-chat", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let chunks = sse_payloads(&response.text().await.unwrap());
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(streamed_text(&chunks), "Hello from the mock upstream.");
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| {
            c["choices"][0]
                .get("finish_reason")
                .filter(|f| !f.is_null())
        })
        .collect();
    assert_eq!(finish, [&json!("stop")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        (&usage["prompt_tokens"], &usage["completion_tokens"]),
        (&json!(5), &json!(7))
    );
    assert_eq!(mock.last_request().unwrap().body["stream"], true);

    // A stream cut before Ollama's `done` line ends with an error frame, not a silent stop.
    mock.push(Script {
        cut_after: Some(2),
        ..Script::default()
    });
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let chunks = sse_payloads(&response.text().await.unwrap());
    assert!(
        chunks.last().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before")
    );

    // Ollama's errors reach OpenAI clients in OpenAI's shape, with Ollama's status.
    mock.push(Script {
        status: Some(404),
        body: Some(
            json!({"error": "model \"llama3.1\" not found, try pulling it first"}).to_string(),
        ),
        ..Script::default()
    });
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-chat", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");

    // Anthropic-native clients reach it through the same translation.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", gateway.url))
        .header("x-api-key", MASTER)
        .json(&json!({"model": "llama-chat", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0]["text"], "Hello from the mock upstream.");
    assert_eq!(mock.last_request().unwrap().uri, "/api/chat");
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_writes_the_conversation_into_one_generate_prompt_and_embeds() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = ollama_gateway(&mock);
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-generate", "stop": "###", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Bye"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    let seen = mock.last_request().unwrap();
    assert_eq!(
        seen.uri, "/api/generate",
        "the base came from OLLAMA_API_BASE"
    );
    assert_eq!(
        seen.body["prompt"],
        "### System:\nBe brief.\n\n### User:\nHi\n\n### Assistant:\nHello.\n\n### User:\nBye\n\n"
    );
    assert_eq!(seen.body["options"]["stop"], json!(["###"]));

    // Streamed generate lines → chat chunks.
    let response = post(
        &gateway,
        "/v1/chat/completions",
        json!({"model": "llama-generate", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    let chunks = sse_payloads(&response.text().await.unwrap());
    assert_eq!(streamed_text(&chunks), "Hello from the mock upstream.");

    // Legacy completions → /api/generate → text_completion, streamed too.
    let response = post(
        &gateway,
        "/v1/completions",
        json!({"model": "llama-generate", "prompt": "Once upon"}),
    )
    .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["text"], "Hello from the mock upstream.");
    assert_eq!(mock.last_request().unwrap().body["prompt"], "Once upon");
    let response = post(
        &gateway,
        "/v1/completions",
        json!({"model": "llama-generate", "prompt": "Once upon", "stream": true}),
    )
    .await;
    let chunks = sse_payloads(&response.text().await.unwrap());
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello from the mock upstream.");
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));

    // Embeddings → /api/embed.
    let response = post(
        &gateway,
        "/v1/embeddings",
        json!({"model": "llama-embed", "input": ["a", "b"]}),
    )
    .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(body["data"][0]["embedding"], json!([0.5, -0.25, 0.125]));
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.uri, "/api/embed");
    assert_eq!(
        seen.body,
        json!({"model": "nomic-embed-text", "input": ["a", "b"]})
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
