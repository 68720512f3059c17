//! Calling one deployment: building its request, timeouts, error mapping, and the Vault re-read
//! when an upstream refuses a key. Everything here resolves before a byte reaches the client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, StatusCode, header};
use vaultgate_core::{Error, Result};
use vaultgate_providers::{ChatBody, Deployment, Endpoint, Resolved, Usage, build_request, mock};

use crate::sse::ByteStream;
use crate::state::AppState;

/// What one successful upstream attempt produced.
pub enum Reply {
    Full {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
    Stream {
        status: StatusCode,
        body: ByteStream,
    },
}

/// How long we wait for an upstream's error body before giving up on it.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// One try against one deployment. Resolves before any byte reaches the client, so the router
/// may retry it. An upstream 401 for a Vault-sourced key re-reads that key once and tries again.
pub async fn attempt(
    app: &AppState,
    endpoint: Endpoint,
    request: &ChatBody,
    deployment: Arc<Deployment>,
) -> Result<Reply> {
    if let Some(text) = &deployment.mock_response {
        return Ok(mock_reply(endpoint, &deployment, request, text));
    }
    let mut reread = false;
    loop {
        let result = call_upstream(app, endpoint, request, &deployment).await;
        let unauthorized = matches!(&result, Err(Error::Upstream { status, .. }) if *status == StatusCode::UNAUTHORIZED);
        match deployment.api_key_reference() {
            Some(name) if unauthorized && !reread => {
                reread = true;
                match app.secrets.refresh_one(name).await {
                    Ok(true) => {
                        tracing::info!(deployment = %deployment.id, secret = name,
                            "upstream refused the key; a new value was read from Vault, retrying");
                        continue;
                    }
                    Ok(false) => return result,
                    Err(error) => {
                        tracing::warn!(deployment = %deployment.id, secret = name, %error,
                            "upstream refused the key and re-reading it failed");
                        return result;
                    }
                }
            }
            _ => return result,
        }
    }
}

async fn call_upstream(
    app: &AppState,
    endpoint: Endpoint,
    request: &ChatBody,
    deployment: &Deployment,
) -> Result<Reply> {
    let upstream = {
        let secrets = app.secrets.snapshot();
        let secrets = &*secrets;
        fn value<'a>(
            secrets: &'a vaultgate_secrets::SecretMap,
            v: &'a Option<vaultgate_config::ConfigValue>,
        ) -> Option<&'a str> {
            v.as_ref().and_then(|v| secrets.value(v))
        }
        let resolved = Resolved {
            api_base: value(secrets, &deployment.api_base),
            api_key: value(secrets, &deployment.api_key),
            api_version: value(secrets, &deployment.api_version),
            organization: value(secrets, &deployment.organization),
            extra_headers: deployment
                .extra_headers
                .iter()
                .filter_map(|(name, v)| secrets.value(v).map(|v| (name, v)))
                .collect(),
        };
        build_request(
            &app.http,
            deployment,
            &resolved,
            endpoint,
            request,
            request.stream,
        )?
    };
    let id = &deployment.id;
    if request.stream {
        let first_byte_timeout = deployment.stream_timeout.unwrap_or(deployment.timeout);
        let response = tokio::time::timeout(first_byte_timeout, upstream.send())
            .await
            .map_err(|_| {
                Error::UpstreamTimeout(format!(
                    "deployment {id}: no answer in {first_byte_timeout:?}"
                ))
            })?
            .map_err(|e| transport_error(id, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(upstream_error(response).await);
        }
        let mut chunks = response.bytes_stream();
        let first = tokio::time::timeout(first_byte_timeout, chunks.next())
            .await
            .map_err(|_| {
                Error::UpstreamTimeout(format!(
                    "deployment {id}: no first chunk in {first_byte_timeout:?}"
                ))
            })?;
        let first = match first {
            Some(Ok(bytes)) => Some(Ok(bytes)),
            Some(Err(e)) => return Err(transport_error(id, e)),
            None => None,
        };
        let rest = chunks.map(|chunk| chunk.map_err(std::io::Error::other));
        let body: ByteStream = Box::pin(futures_util::stream::iter(first).chain(rest));
        return Ok(Reply::Stream { status, body });
    }
    let timeout = deployment.timeout;
    tokio::time::timeout(timeout, async {
        let response = upstream.send().await.map_err(|e| transport_error(id, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(upstream_error(response).await);
        }
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = response.bytes().await.map_err(|e| transport_error(id, e))?;
        Ok(Reply::Full {
            status,
            content_type,
            body,
        })
    })
    .await
    .map_err(|_| {
        Error::UpstreamTimeout(format!(
            "deployment {id}: no complete answer in {timeout:?}"
        ))
    })?
}

fn transport_error(deployment: &str, error: reqwest::Error) -> Error {
    // The URL may carry credentials of an OpenAI-compatible server: never repeat it.
    let error = error.without_url();
    if error.is_timeout() {
        Error::UpstreamTimeout(format!("deployment {deployment}: {error}"))
    } else {
        Error::UpstreamUnreachable(format!("deployment {deployment}: {error}"))
    }
}

async fn upstream_error(response: reqwest::Response) -> Error {
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = tokio::time::timeout(ERROR_BODY_TIMEOUT, response.bytes())
        .await
        .ok()
        .and_then(|body| body.ok())
        .unwrap_or_default();
    Error::Upstream {
        status,
        body,
        content_type,
    }
}

fn mock_reply(
    endpoint: Endpoint,
    deployment: &Deployment,
    request: &ChatBody,
    text: &str,
) -> Reply {
    let model = &deployment.upstream_model;
    if request.stream {
        let (frames, _usage): (Vec<Bytes>, Usage) =
            mock::stream(endpoint, model, text, &request.fields, true);
        let body: ByteStream = Box::pin(futures_util::stream::iter(frames.into_iter().map(Ok)));
        Reply::Stream {
            status: StatusCode::OK,
            body,
        }
    } else {
        let (json, _usage) = mock::response(endpoint, model, text, &request.fields);
        Reply::Full {
            status: StatusCode::OK,
            content_type: None,
            body: Bytes::from(json.to_string()),
        }
    }
}
