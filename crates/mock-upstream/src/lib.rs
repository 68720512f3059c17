//! A stand-in for LLM providers: answers OpenAI-, Azure-, Anthropic-, Gemini-, Ollama- and
//! Bedrock-shaped requests (Gemini's `:generateContent`, `:streamGenerateContent?alt=sse` and
//! `:batchEmbedContents` under AI Studio's or Vertex's paths, Anthropic on Vertex's
//! `:rawPredict`/`:streamRawPredict`, Ollama's native `/api/chat`, `/api/generate` and
//! `/api/embed` with JSON-lines streams, Bedrock's Converse and ConverseStream only with a valid
//! SigV4 signature, Vertex AI's calls only with an OAuth token its `/token` endpoint issued
//! for a correctly signed service-account JWT, and `:predict`), OpenAI's Responses API (kept
//! responses, so retrieve, delete and `previous_response_id` work), records what it received (URL, headers, body) and can be scripted (status,
//! delay, partial or slow streams, malformed bodies). No provider is reachable from tests, so
//! this is the one mock.

pub mod bedrock;
pub mod google;
mod native;
pub mod rabbitmq;
pub mod responses;
mod stream;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use native::{gemini, ollama};
use stream::{sse, stream_frames};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, e.g. `/openai/deployments/d/chat/completions?api-version=2024-02-01`.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// For Bedrock requests: whose signature verified, or why it did not.
    pub signature: Option<Result<bedrock::Verified, String>>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What to do for one request, instead of the default answer.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Answer with this status (and `body`, or an OpenAI-shaped error body).
    pub status: Option<u16>,
    pub body: Option<String>,
    /// Wait this long before answering at all.
    pub delay: Duration,
    /// Stream these SSE data payloads (each becomes `data: …\n\n`) instead of the default.
    pub stream: Option<Vec<String>>,
    /// Wait this long between stream chunks.
    pub chunk_delay: Duration,
    /// Stop the stream (drop the connection) after this many chunks.
    pub cut_after: Option<usize>,
    /// Extra headers of the answer (e.g. Bedrock's `x-amzn-ErrorType`, OpenAI's
    /// `x-ratelimit-*`): on failures, and on answers of the OpenAI and Anthropic routes.
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    scripts: Mutex<VecDeque<Script>>,
    required_key: Mutex<Option<String>>,
    /// Streams whose client went away before the last chunk was sent.
    streams_cancelled: AtomicUsize,
    record: bool,
    answer: Mutex<String>,
    aws_keys: Mutex<Option<bedrock::AwsKeys>>,
    rabbitmq: Mutex<rabbitmq::Users>,
    /// Refuse requests that do not carry the password of a live RabbitMQ user.
    require_issued: std::sync::atomic::AtomicBool,
    google: Mutex<Option<google::GoogleAuth>>,
    responses: Mutex<responses::Store>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running mock upstream on 127.0.0.1; stops when dropped.
pub struct MockUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl MockUpstream {
    /// Starts a recording mock on a free port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), true).await
    }

    /// Starts on `addr`; `record: false` keeps nothing per request (benchmarks).
    pub async fn start_on(addr: SocketAddr, record: bool) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            record,
            answer: Mutex::new("Hello from the mock upstream.".into()),
            ..Shared::default()
        });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    pub fn last_request(&self) -> Option<Recorded> {
        lock(&self.shared.requests).last().cloned()
    }

    pub fn clear(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Queues scripted answers, used one per request in order; then the default answer.
    pub fn push(&self, script: Script) {
        lock(&self.shared.scripts).push_back(script);
    }

    /// Drops scripted answers not used yet.
    pub fn clear_scripts(&self) {
        lock(&self.shared.scripts).clear();
    }

    /// How many requests arrived at `path` (query string ignored).
    pub fn count(&self, path: &str) -> usize {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.uri.split('?').next() == Some(path))
            .count()
    }

    /// Answer 401 unless the request carries this key (as Bearer, `api-key` or `x-api-key`).
    pub fn require_key(&self, key: Option<&str>) {
        *lock(&self.shared.required_key) = key.map(str::to_owned);
    }

    /// The assistant text of default answers.
    pub fn set_answer(&self, text: &str) {
        *lock(&self.shared.answer) = text.to_owned();
    }

    /// The AWS keys Bedrock requests must be signed with; without any, every one is refused.
    pub fn set_aws_keys(&self, keys: bedrock::AwsKeys) {
        *lock(&self.shared.aws_keys) = Some(keys);
    }

    /// The users RabbitMQ's management API was asked to create and delete (by Vault's
    /// RabbitMQ engine issuing and revoking leases).
    pub fn rabbitmq_users(&self) -> rabbitmq::Users {
        lock(&self.shared.rabbitmq).clone()
    }

    /// Answer 401 unless the request carries the password of a RabbitMQ user that exists now:
    /// credentials Vault issued and has not revoked.
    pub fn require_issued_credentials(&self) {
        self.shared.require_issued.store(true, Ordering::SeqCst);
    }

    /// Plays Google's token endpoint at `/token` (assertions signed with
    /// [`google::TEST_PRIVATE_KEY`] and the test user's refresh token get tokens of
    /// `lifetime`), the metadata server at `/computeMetadata/v1/`, and refuses Vertex calls
    /// (`/v1/projects/…`) without a token it issued.
    pub fn enable_google_auth(&self, lifetime: Duration) {
        let mut auth = google::GoogleAuth::new(format!("{}/token", self.url()));
        auth.lifetime = lifetime;
        *lock(&self.shared.google) = Some(auth);
    }

    /// While `failing`, Google's token endpoint and the metadata server's token answer 500.
    pub fn fail_google_tokens(&self, failing: bool) {
        if let Some(auth) = lock(&self.shared.google).as_mut() {
            auth.failing = failing;
        }
    }

    /// A token Vertex calls are taken with besides the issued ones (a ready token from Vault).
    pub fn accept_google_token(&self, token: &str) {
        if let Some(auth) = lock(&self.shared.google).as_mut() {
            auth.accept(token);
        }
    }

    pub fn streams_cancelled(&self) -> usize {
        self.shared.streams_cancelled.load(Ordering::SeqCst)
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The credential a request carries: a Bearer token, `api-key` (Azure), `x-api-key`
/// (Anthropic), `x-goog-api-key` (Gemini) or a `key=` query parameter (Gemini's other way).
fn presented_key<'a>(headers: &'a HeaderMap, uri: &'a str) -> Option<&'a str> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    get("authorization")
        .map(|v| v.trim_start_matches("Bearer ").trim())
        .or_else(|| get("api-key"))
        .or_else(|| get("x-api-key"))
        .or_else(|| get("x-goog-api-key"))
        .or_else(|| {
            let query = uri.split_once('?')?.1;
            query.split('&').find_map(|pair| pair.strip_prefix("key="))
        })
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let path = uri.split('?').next().unwrap_or_default();
    if rabbitmq::is_management(path) {
        return rabbitmq::handle(&mut lock(&shared.rabbitmq), &parts.method, path, &body);
    }
    let is_bedrock = uri.starts_with("/model/");
    let signature = if is_bedrock {
        let keys = lock(&shared.aws_keys).clone();
        Some(match keys {
            Some(keys) => {
                let method = parts.method.as_str();
                bedrock::verify(&keys, method, &uri, &parts.headers, &bytes).await
            }
            None => Err("the mock knows no AWS keys".to_owned()),
        })
    } else {
        None
    };
    if shared.record {
        lock(&shared.requests).push(Recorded {
            method: parts.method.to_string(),
            uri: uri.clone(),
            headers: parts.headers.clone(),
            body: body.clone(),
            signature: signature.clone(),
        });
    }
    if let Some(Err(why)) = &signature {
        return bedrock::refused(why);
    }
    if let Some(auth) = lock(&shared.google).as_mut() {
        if parts.method == http::Method::POST && uri == "/token" {
            return google::token_answer(auth, &bytes);
        }
        if parts.method == http::Method::GET
            && let Some(answer) = google::metadata_answer(auth, path, &parts.headers)
        {
            return answer;
        }
        if uri.starts_with("/v1/projects/") && !auth.authorized(&parts.headers) {
            return google::google_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                "UNAUTHENTICATED",
            );
        }
    }
    let required = lock(&shared.required_key).clone();
    if let Some(required) = required
        && presented_key(&parts.headers, &uri) != Some(required.as_str())
    {
        return error(401, "invalid_api_key", "Incorrect API key provided.");
    }
    if shared.require_issued.load(Ordering::SeqCst)
        && !presented_key(&parts.headers, &uri)
            .is_some_and(|key| lock(&shared.rabbitmq).is_live_password(key))
    {
        return error(
            401,
            "invalid_api_key",
            "Not a credential Vault issued (or it was revoked).",
        );
    }
    // Vertex's rawPredict speaks the publisher's API: Anthropic's for Claude, OpenAI's for others.
    let anthropic_api = uri.starts_with("/v1/messages") || uri.contains("/publishers/anthropic/");
    // `metadata` is a field of Anthropic's Messages API and of OpenAI's Responses API.
    let own_metadata = anthropic_api || responses::is_responses(path);
    if let Some(name) = gateway_only_param(&body, own_metadata) {
        // What OpenAI answers to a field it does not know.
        let message = format!("Unrecognized request argument supplied: {name}");
        return error(400, "invalid_request_error", &message);
    }
    let mut script = lock(&shared.scripts).pop_front().unwrap_or_default();
    if !script.delay.is_zero() {
        tokio::time::sleep(script.delay).await;
    }
    let extra = std::mem::take(&mut script.headers);
    if let Some(status) = script.status {
        let response = match script.body {
            Some(text) => respond(status, "application/json", Body::from(text)),
            None => error(status, "mock_error", "scripted failure"),
        };
        return with_headers(response, &extra);
    }
    let answer = lock(&shared.answer).clone();
    if is_bedrock {
        if uri.ends_with("/converse-stream") {
            let frames = script
                .stream
                .unwrap_or_else(|| bedrock::default_stream(&answer));
            let encode: fn(&str) -> Bytes = bedrock::frame;
            return stream_frames(
                shared,
                frames,
                script.chunk_delay,
                script.cut_after,
                (bedrock::EVENT_STREAM, encode),
            );
        }
        let json = script
            .body
            .unwrap_or_else(|| bedrock::default_answer(&answer).to_string());
        return respond(200, "application/json", Body::from(json));
    }
    if uri.starts_with("/api/") {
        return ollama(&shared, &uri, &body, script).await;
    }
    if responses::is_responses(path) && script.stream.is_none() && script.body.is_none() {
        let answer = responses::handle(
            &mut lock(&shared.responses),
            &parts.method,
            path,
            &body,
            &answer,
        );
        return match answer {
            responses::Answer::Json(status, json) => {
                respond(status, "application/json", Body::from(json.to_string()))
            }
            responses::Answer::Events(events) => {
                sse(shared, events, script.chunk_delay, script.cut_after)
            }
        };
    }
    let method = path.rsplit_once(':').map(|(_, m)| m).unwrap_or_default();
    if method == "predict" {
        return google::predict_answer(&body);
    }
    if matches!(
        method,
        "generateContent" | "streamGenerateContent" | "batchEmbedContents"
    ) {
        return gemini(&shared, path, method, &body, script);
    }
    let anthropic = anthropic_api;
    let body = match method {
        // Anthropic on Vertex names the model in the URL, not the body.
        "rawPredict" | "streamRawPredict" if anthropic => {
            let mut body = body;
            let model = path
                .rsplit_once("/models/")
                .map(|(_, m)| m)
                .unwrap_or_default();
            body["model"] = json!(model.split(':').next().unwrap_or_default());
            if method == "streamRawPredict" {
                body["stream"] = json!(true);
            }
            body
        }
        _ => body,
    };
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if stream || script.stream.is_some() {
        let frames = script
            .stream
            .unwrap_or_else(|| default_stream(&uri, &body, &answer, anthropic));
        let response = sse(shared, frames, script.chunk_delay, script.cut_after);
        return with_headers(response, &extra);
    }
    if let Some(text) = script.body {
        return with_headers(respond(200, "application/json", Body::from(text)), &extra);
    }
    let json = default_answer(&uri, &body, &answer, anthropic);
    let response = respond(200, "application/json", Body::from(json.to_string()));
    with_headers(response, &extra)
}

/// The script's extra headers on an answer of the OpenAI-shaped routes (failures and answers).
fn with_headers(mut response: Response, extra: &[(&'static str, String)]) -> Response {
    for (name, value) in extra {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
    response
}

/// A strict provider refuses fields it does not know: the gateway's own params (LiteLLM's
/// routing, mocking, logging and caching params) must never arrive. The mock's own short list,
/// not the gateway's, so a gateway that forgets one is caught.
fn gateway_only_param(body: &Value, own_metadata: bool) -> Option<&str> {
    const NAMES: &[&str] = &[
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "disable_fallbacks",
        "num_retries",
        "max_retries",
        "timeout",
        "request_timeout",
        "mock_response",
        "mock_testing_fallbacks",
        "mock_testing_rate_limit_error",
        "mock_timeout",
        "tags",
        "caching",
        "cache",
        "guardrails",
        "user_config",
        "drop_params",
        "additional_drop_params",
        "api_key",
        "api_base",
        "base_url",
        "metadata",
    ];
    let fields = body.as_object()?;
    fields.keys().map(String::as_str).find(|name| {
        (NAMES.contains(name) && !(own_metadata && *name == "metadata"))
            || name.starts_with("litellm_")
    })
}

fn respond(status: u16, content_type: &'static str, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}});
    respond(status, "application/json", Body::from(body.to_string()))
}

pub(crate) const USAGE: (u64, u64) = (5, 7);

fn default_answer(uri: &str, body: &Value, answer: &str, anthropic: bool) -> Value {
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let usage = json!({"prompt_tokens": USAGE.0, "completion_tokens": USAGE.1, "total_tokens": USAGE.0 + USAGE.1});
    if anthropic {
        return json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": answer}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": USAGE.0, "output_tokens": USAGE.1},
        });
    }
    if uri.contains("embeddings") {
        return json!({"object": "list", "model": model,
            "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.75]}],
            "usage": {"prompt_tokens": USAGE.0, "total_tokens": USAGE.0}});
    }
    if uri.contains("chat/completions") || body.get("messages").is_some() {
        return json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": usage});
    }
    json!({"id": "cmpl-mock", "object": "text_completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "text": answer, "finish_reason": "stop", "logprobs": null}], "usage": usage})
}

fn default_stream(uri: &str, body: &Value, answer: &str, anthropic: bool) -> Vec<String> {
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let words: Vec<&str> = answer.split_inclusive(' ').collect();
    if anthropic {
        let mut events = vec![
            json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": USAGE.0, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ];
        events.extend(words.iter().map(|w| {
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})
        }));
        events.push(json!({"type": "content_block_stop", "index": 0}));
        events.push(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": USAGE.1}}));
        events.push(json!({"type": "message_stop"}));
        return events.into_iter().map(|e| e.to_string()).collect();
    }
    let chat = uri.contains("chat/completions") || body.get("messages").is_some();
    let chunk = |choice: Value| {
        json!({"id": "chatcmpl-mock", "object": if chat {"chat.completion.chunk"} else {"text_completion"},
            "created": 1_700_000_000, "model": model, "choices": [choice]})
        .to_string()
    };
    let mut frames: Vec<String> = words
        .iter()
        .map(|w| {
            if chat {
                chunk(json!({"index": 0, "delta": {"content": w}, "finish_reason": null}))
            } else {
                chunk(json!({"index": 0, "text": w, "finish_reason": null}))
            }
        })
        .collect();
    frames.push(if chat {
        chunk(json!({"index": 0, "delta": {}, "finish_reason": "stop"}))
    } else {
        chunk(json!({"index": 0, "text": "", "finish_reason": "stop"}))
    });
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    if include_usage {
        frames.push(json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": [],
            "usage": {"prompt_tokens": USAGE.0, "completion_tokens": USAGE.1, "total_tokens": USAGE.0 + USAGE.1}})
            .to_string());
    }
    frames.push("[DONE]".into());
    frames
}
