//! Calling one deployment: building its request (passed through to OpenAI-compatible APIs,
//! translated for native ones or when the client speaks another protocol), timeouts, error
//! mapping, and the Vault re-read when an upstream refuses a key. Everything here resolves before a byte reaches the client, so the
//! router may retry or fall back on any failure.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::time::Instant;
use vaultgate_config::{ConfigValue, Provider};
use vaultgate_core::{Error, Result};
use vaultgate_providers::anthropic::{self, TranslateOptions};
use vaultgate_providers::{
    ChatBody, Deployment, Endpoint, Native, Resolved, UpstreamRequest, build_anthropic_request,
    build_request, native_request,
};
use vaultgate_secrets::{LiveSecrets, SecretMap};

use crate::http_client::{UpstreamBody, read_all};
pub use crate::reply::Reply;
pub(crate) use crate::reply::{json_reply, translate_stream};
use crate::reply::{mock_reply, reshape_chat_reply};
use crate::request_params::{RequestParams, mock_failure};
use crate::sse::ByteStream;
use crate::state::AppState;

/// How long we wait for an upstream's error body before giving up on it.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Client headers of the Anthropic protocol that say how to read the request (never credentials);
/// passed on to Anthropic deployments for native clients.
const ANTHROPIC_CLIENT_HEADERS: &[&str] = &["anthropic-version", "anthropic-beta"];

/// One try of an OpenAI-shaped request against one deployment (an Anthropic deployment gets it
/// translated). An upstream 401 for a Vault-sourced key re-reads that key once and tries again.
pub async fn attempt(
    app: &AppState,
    endpoint: Endpoint,
    request: &ChatBody,
    params: &RequestParams,
    want_usage: bool,
    deployment: Arc<Deployment>,
) -> Result<Reply> {
    let mock = params
        .mock_response
        .as_ref()
        .or(deployment.mock_response.as_ref());
    if let Some(text) = mock {
        if let Some(error) = mock_failure(text, &deployment.model_name) {
            return Err(error);
        }
        return mock_reply(endpoint, &deployment, request, text);
    }
    let dropped = drop_params(request, params, &deployment)?;
    let request = dropped.as_ref().unwrap_or(request);
    let drop_params = params
        .drop_params
        .or(deployment.drop_params)
        .unwrap_or(app.router.drop_params());
    with_key_reread(app, &deployment, || {
        call_openai_shaped(app, endpoint, request, drop_params, want_usage, &deployment)
    })
    .await
}

/// The request without the params the deployment's and the request's
/// `additional_drop_params` name; `None` when there is nothing to drop.
pub(crate) fn drop_params(
    request: &ChatBody,
    params: &RequestParams,
    deployment: &Deployment,
) -> Result<Option<ChatBody>> {
    if params.additional_drop_params.is_empty() && deployment.additional_drop_params.is_empty() {
        return Ok(None);
    }
    request.without(|name| {
        params.additional_drop_params.iter().any(|n| n == name)
            || deployment.additional_drop_params.iter().any(|n| n == name)
    })
}

/// A request of an Anthropic-native client (`POST /v1/messages`).
pub struct MessagesRequest {
    /// The client's body (`model` is the public model name it asked for).
    pub body: ChatBody,
    /// Protocol headers of the client (`anthropic-version`, `anthropic-beta`).
    pub protocol_headers: Vec<(HeaderName, HeaderValue)>,
    /// The same request as an OpenAI chat request, built the first time an OpenAI/Azure
    /// deployment needs it (never for a pure Anthropic pass-through).
    as_chat: std::sync::OnceLock<Result<ChatBody>>,
}

impl MessagesRequest {
    pub fn new(body: ChatBody, client_headers: &HeaderMap) -> Self {
        let protocol_headers = ANTHROPIC_CLIENT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = client_headers.get(*name)?;
                Some((HeaderName::from_static(name), value.clone()))
            })
            .collect();
        Self {
            body,
            protocol_headers,
            as_chat: std::sync::OnceLock::new(),
        }
    }

    /// The request as an OpenAI chat request (translated once, on first use).
    fn as_chat(&self) -> &Result<ChatBody> {
        self.as_chat.get_or_init(|| {
            let fields = anthropic::messages_to_chat_request(self.body.fields()?)?;
            ChatBody::from_fields(fields, self.body.model.clone())
        })
    }
}

/// One try of an Anthropic-native request: passed through to an Anthropic deployment, or
/// translated to OpenAI chat and back for an OpenAI/Azure one. Answers are Anthropic-shaped.
pub async fn attempt_messages(
    app: &AppState,
    request: &MessagesRequest,
    params: &RequestParams,
    deployment: Arc<Deployment>,
) -> Result<Reply> {
    let mocked = params.mock_response.is_some() || deployment.mock_response.is_some();
    if deployment.provider == Provider::Anthropic && !mocked {
        let dropped = drop_params(&request.body, params, &deployment)?;
        let body = dropped.as_ref().unwrap_or(&request.body);
        return with_key_reread(app, &deployment, || {
            call_anthropic_native(app, request, body, &deployment)
        })
        .await;
    }
    let chat = match request.as_chat() {
        Ok(chat) => chat,
        Err(error) => return Err(copy_error(error)),
    };
    let reply = attempt(
        app,
        Endpoint::ChatCompletions,
        chat,
        params,
        true,
        deployment,
    )
    .await?;
    let model = &request.body.model;
    reshape_chat_reply(
        reply,
        |json| anthropic::chat_response_to_messages(json, model),
        || Box::new(anthropic::MessagesStreamTranslator::new(model)),
    )
}

/// The translation of a native request failed once, the same way for every deployment.
pub(crate) fn copy_error(error: &Error) -> Error {
    match error {
        Error::BadRequest { message, param } => Error::BadRequest {
            message: message.clone(),
            param: param.clone(),
        },
        other => Error::Internal(other.to_string()),
    }
}

/// Runs `call`; when the upstream refuses the deployment's credentials (401, or 403 for leased
/// or AWS ones) and they come from Vault, re-reads (or re-issues) them once and calls again if
/// they changed.
pub(crate) async fn with_key_reread<F, Fut>(
    app: &AppState,
    deployment: &Deployment,
    mut call: F,
) -> Result<Reply>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Reply>>,
{
    // Credentials whose lease ran out while Vault could not issue new ones would only be
    // refused: the deployment fails fast (towards its cooldown) and another one serves.
    if let Some(expired) = deployment
        .credential_values()
        .filter_map(ConfigValue::vault_ref)
        .find(|r| app.secrets.is_expired(r))
    {
        return Err(Error::UpstreamUnreachable(format!(
            "deployment {}: its credentials from vault://{} expired and Vault has not issued new ones",
            deployment.id,
            expired.location().0
        )));
    }
    let result = call().await;
    let Err(Error::Upstream { status, .. }) = &result else {
        return result;
    };
    if *status != StatusCode::UNAUTHORIZED && *status != StatusCode::FORBIDDEN {
        return result;
    }
    // A 403 from an OpenAI-compatible host is about the model or the org, not the key; AWS
    // says 403 for a key it does not know, and leases are what expire under us.
    let forbidden = *status == StatusCode::FORBIDDEN;
    let mut values: Vec<ConfigValue> = deployment
        .credential_values()
        .filter(|v| !forbidden || v.vault_ref().is_some() || deployment.bedrock.is_some())
        .cloned()
        .collect();
    if deployment.api_key.is_none() && !forbidden {
        let secrets = app.secrets.snapshot();
        let default = deployment.api_key_reference(|name| secrets.get(name).is_some());
        values.extend(default.map(|name| ConfigValue::Reference(name.to_owned())));
    }
    // A refused Google token is minted anew, whether or not its key changed.
    let mut changed = !forbidden && crate::google_tokens::forget_vertex_token(app, deployment);
    for value in &values {
        match app.secrets.refresh_value(value).await {
            Ok(fresh) => changed |= fresh,
            Err(error) => {
                tracing::warn!(deployment = %deployment.id, secret = ?value, %error,
                    "upstream refused the credentials and re-reading them failed");
            }
        }
    }
    if !changed {
        return result;
    }
    tracing::info!(deployment = %deployment.id,
        "upstream refused the credentials; new ones were read from Vault, retrying");
    call().await
}

/// The deployment's settings resolved from the live secrets snapshot; a key or base the
/// deployment does not set comes from its provider's default names (`GROQ_API_KEY`…).
pub(crate) fn resolve<'a>(secrets: &'a SecretMap, deployment: &'a Deployment) -> Resolved<'a> {
    let value =
        |v: &'a Option<vaultgate_config::ConfigValue>| v.as_ref().and_then(|v| secrets.value(v));
    let default = |names: &[&str]| names.iter().find_map(|name| secrets.get(name));
    Resolved {
        api_base: api_base(secrets, deployment),
        api_key: value(&deployment.api_key).or_else(|| default(deployment.spec.key_env)),
        api_version: value(&deployment.api_version),
        organization: value(&deployment.organization),
        extra_headers: deployment
            .extra_headers
            .iter()
            .filter_map(|(name, v)| secrets.value(v).map(|v| (name, v)))
            .collect(),
        aws: match deployment.bedrock.as_deref() {
            Some(bedrock) => {
                let aws = &bedrock.aws;
                vaultgate_providers::bedrock::ResolvedAws {
                    region: value(&aws.aws_region_name),
                    endpoint: value(&aws.aws_bedrock_runtime_endpoint),
                    access_key_id: value(&aws.aws_access_key_id),
                    secret_access_key: value(&aws.aws_secret_access_key),
                    session_token: value(&aws.aws_session_token),
                }
            }
            None => Default::default(),
        },
        vertex: match deployment.vertex.as_deref() {
            Some(vertex) => vaultgate_providers::vertex::ResolvedVertex {
                project: value(&vertex.vertex_project),
                location: value(&vertex.vertex_location),
                credentials: value(&vertex.vertex_credentials),
            },
            None => Default::default(),
        },
    }
}

/// The deployment's `api_base` resolved from the live secrets, else its provider's base names.
pub(crate) fn api_base<'a>(secrets: &'a SecretMap, deployment: &'a Deployment) -> Option<&'a str> {
    let configured = deployment.api_base.as_ref().and_then(|v| secrets.value(v));
    configured.or_else(|| {
        deployment
            .spec
            .base_env
            .iter()
            .find_map(|name| secrets.get(name))
    })
}

/// The deployment's base URL as it is called now (its resolved `api_base`, else its provider's
/// default), without user name, password, query or fragment: for `x-litellm-model-api-base`,
/// spend logs and metrics. Built once per base.
pub(crate) fn public_api_base(
    secrets: &LiveSecrets,
    deployment: &Deployment,
) -> Option<HeaderValue> {
    let snapshot = secrets.snapshot();
    let base = api_base(&snapshot, deployment).or(deployment.spec.default_base)?;
    deployment.api_base_header(base)
}

/// How an upstream's error answer reaches the client.
#[derive(Clone, Copy)]
pub(crate) enum ErrorShape {
    /// As an OpenAI-compatible upstream sent it.
    AsIs,
    /// As Anthropic sent it, for Anthropic-native clients.
    Anthropic,
    /// A native API's error translated to OpenAI's shape, for OpenAI clients.
    Native(Native),
}

async fn call_openai_shaped(
    app: &AppState,
    endpoint: Endpoint,
    request: &ChatBody,
    drop_params: bool,
    want_usage: bool,
    deployment: &Deployment,
) -> Result<Reply> {
    let options = TranslateOptions {
        default_max_tokens: deployment
            .max_tokens
            .unwrap_or(anthropic::DEFAULT_MAX_TOKENS),
        drop_params,
    };
    let bearer = crate::google_tokens::vertex_bearer(app, deployment).await?;
    let (upstream, native) = {
        let secrets = app.secrets.snapshot();
        let mut resolved = resolve(&secrets, deployment);
        if let Some(bearer) = &bearer {
            bearer.apply(&mut resolved);
        }
        match native_request(
            deployment, &resolved, endpoint, request, &options, want_usage,
        )? {
            Some(native) => (native.request, Some(native.native)),
            None => (
                build_request(deployment, &resolved, endpoint, request, want_usage)?,
                None,
            ),
        }
    };
    let Some(native) = native else {
        return send(app, deployment, upstream, request.stream, ErrorShape::AsIs).await;
    };
    let reply = send(
        app,
        deployment,
        upstream,
        request.stream,
        ErrorShape::Native(native),
    )
    .await?;
    Ok(match reply {
        Reply::Full {
            status,
            body,
            headers,
            ..
        } => {
            let json = parse_answer(&body, "answer")?;
            json_reply(status, &native.answer(&json, &request.model), headers)
        }
        // The translators always add the usage chunk: spend tracking reads it and `sse::tap`
        // hides it from clients that did not ask.
        Reply::Stream {
            status,
            body,
            headers,
        } => Reply::Stream {
            status,
            headers,
            body: translate_stream(body, native.stream(&request.model)),
        },
    })
}

/// An Anthropic-native request to an Anthropic deployment: only the model name changes.
async fn call_anthropic_native(
    app: &AppState,
    request: &MessagesRequest,
    body: &ChatBody,
    deployment: &Deployment,
) -> Result<Reply> {
    let stream = body.stream;
    let body = body.upstream_body(&deployment.upstream_model, false);
    let upstream = anthropic_request(app, deployment, body, &request.protocol_headers)?;
    send(app, deployment, upstream, stream, ErrorShape::Anthropic).await
}

/// The Anthropic Messages request for `body`, with the deployment's settings resolved now.
fn anthropic_request(
    app: &AppState,
    deployment: &Deployment,
    body: Vec<u8>,
    client_headers: &[(HeaderName, HeaderValue)],
) -> Result<UpstreamRequest> {
    let secrets = app.secrets.snapshot();
    let resolved = resolve(&secrets, deployment);
    build_anthropic_request(deployment, &resolved, Bytes::from(body), client_headers)
}

/// Sends one upstream request under the deployment's timeouts: `timeout` for a whole answer,
/// `stream_timeout` (else `timeout`) until a stream's first chunk and then between any two
/// chunks. A timed-out call is dropped, which cancels it. A stream resolves with its first chunk in hand, so a stream that fails or
/// stalls before it can still be retried.
pub(crate) async fn send(
    app: &AppState,
    deployment: &Deployment,
    upstream: UpstreamRequest,
    stream: bool,
    errors: ErrorShape,
) -> Result<Reply> {
    let id = &deployment.id;
    if stream {
        let limit = deployment.stream_timeout.unwrap_or(deployment.timeout);
        let deadline = Instant::now() + limit;
        let timed_out =
            || Error::UpstreamTimeout(format!("deployment {id}: no first chunk in {limit:?}"));
        let response = tokio::time::timeout_at(deadline, app.http.send(id, upstream))
            .await
            .map_err(|_| timed_out())??;
        let status = response.status();
        if !status.is_success() {
            return Err(upstream_error(response, errors).await);
        }
        let (parts, body) = response.into_parts();
        let mut chunks = body.into_data_stream();
        let first = match tokio::time::timeout_at(deadline, chunks.next())
            .await
            .map_err(|_| timed_out())?
        {
            Some(Ok(bytes)) => {
                if let Some(error) = stream_opened_with_error(&bytes, errors) {
                    return Err(error);
                }
                Some(Ok(bytes))
            }
            Some(Err(e)) => return Err(broken_body(id, &*e)),
            None => None,
        };
        let rest = chunks.map(|chunk| chunk.map_err(std::io::Error::other));
        let rest = idle_timeout(Box::pin(rest), limit, id);
        let body: ByteStream = Box::pin(futures_util::stream::iter(first).chain(rest));
        return Ok(Reply::Stream {
            status,
            body,
            headers: parts.headers,
        });
    }
    let timeout = deployment.timeout;
    tokio::time::timeout(timeout, async {
        let response = app.http.send(id, upstream).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(upstream_error(response, errors).await);
        }
        let (parts, body) = response.into_parts();
        let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
        let body = read_all(body).await.map_err(|e| broken_body(id, &*e))?;
        Ok(Reply::Full {
            status,
            content_type,
            body,
            headers: parts.headers,
        })
    })
    .await
    .map_err(|_| {
        Error::UpstreamTimeout(format!(
            "deployment {id}: no complete answer in {timeout:?}"
        ))
    })?
}

/// Ends `chunks` with a `TimedOut` error when the upstream sends nothing for `limit`: a stream
/// stalled mid-answer must not hold its parallel slots (and the drain at shutdown) for ever.
/// Dropping the upstream body cancels the call.
fn idle_timeout(chunks: ByteStream, limit: Duration, deployment: &str) -> ByteStream {
    let sleep = Box::pin(tokio::time::sleep(limit));
    let state = (chunks, sleep, limit, deployment.to_owned());
    Box::pin(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            let (mut chunks, mut sleep, limit, deployment) = state?;
            tokio::select! {
                biased;
                item = chunks.next() => {
                    sleep.as_mut().reset(Instant::now() + limit);
                    Some((item?, Some((chunks, sleep, limit, deployment))))
                }
                () = &mut sleep => {
                    let message = format!(
                        "deployment {deployment}: the stream sent nothing for {limit:?} (stream_timeout)"
                    );
                    tracing::warn!("{message}; ending it");
                    Some((Err(std::io::Error::new(std::io::ErrorKind::TimedOut, message)), None))
                }
            }
        },
    ))
}

/// The upstream's answer broke off while we read it.
fn broken_body(deployment: &str, error: &(dyn std::error::Error + Send + Sync)) -> Error {
    Error::UpstreamUnreachable(format!(
        "deployment {deployment}: the answer broke off: {error}"
    ))
}

async fn upstream_error(response: http::Response<UpstreamBody>, shape: ErrorShape) -> Error {
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(ERROR_BODY_TIMEOUT, read_all(body))
        .await
        .ok()
        .and_then(|body| body.ok())
        .unwrap_or_default();
    match shape {
        ErrorShape::AsIs | ErrorShape::Anthropic => Error::Upstream {
            status: parts.status,
            body,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
        },
        ErrorShape::Native(native) => native.map_error(parts.status, &parts.headers, body),
    }
}

/// Anthropic may answer 200 and then open the stream with an `error` event (`overloaded_error`
/// under load). Caught in the first chunk, nothing has reached the client yet, so it becomes an
/// ordinary error with the status Anthropic uses for that type, which the router may retry.
fn stream_opened_with_error(first: &[u8], shape: ErrorShape) -> Option<Error> {
    let anthropic = match shape {
        ErrorShape::Anthropic => true,
        // Bedrock's stream is event-stream frames, not SSE.
        ErrorShape::Native(Native::Bedrock) => {
            return vaultgate_providers::bedrock::stream_opened_with_error(first);
        }
        ErrorShape::Native(native) => native.opens_streams_with_errors(),
        ErrorShape::AsIs => false,
    };
    if !anthropic {
        return None;
    }
    let text = std::str::from_utf8(first).ok()?;
    let data = text
        .lines()
        .find_map(|line| line.strip_prefix("data:"))?
        .trim();
    let event: Value = serde_json::from_str(data).ok()?;
    if event.get("type").and_then(Value::as_str) != Some("error") {
        return None;
    }
    let kind = event.pointer("/error/type").and_then(Value::as_str);
    let status = match kind {
        Some("invalid_request_error") => StatusCode::BAD_REQUEST,
        Some("authentication_error") => StatusCode::UNAUTHORIZED,
        Some("permission_error") => StatusCode::FORBIDDEN,
        Some("not_found_error") => StatusCode::NOT_FOUND,
        Some("request_too_large") => StatusCode::PAYLOAD_TOO_LARGE,
        Some("rate_limit_error") => StatusCode::TOO_MANY_REQUESTS,
        Some("timeout_error") => StatusCode::GATEWAY_TIMEOUT,
        Some("overloaded_error") => {
            StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Some(match shape {
        ErrorShape::Native(native) => native.map_error(
            status,
            &HeaderMap::new(),
            Bytes::copy_from_slice(data.as_bytes()),
        ),
        _ => Error::Upstream {
            status,
            body: Bytes::copy_from_slice(data.as_bytes()),
            content_type: Some(HeaderValue::from_static("application/json")),
        },
    })
}

/// A 2xx body that must be JSON for us to translate it; anything else is the upstream's fault.
pub(crate) fn parse_answer(body: &[u8], what: &str) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| {
        Error::UpstreamUnreachable(format!("the upstream sent a malformed {what}: {e}"))
    })
}
