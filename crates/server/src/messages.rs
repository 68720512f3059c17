//! `POST /v1/messages` for Anthropic-native clients (Claude Code, the Anthropic SDKs): passed
//! through to Anthropic deployments, translated for OpenAI/Azure ones. Answers and errors are
//! Anthropic-shaped whichever deployment served them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};
use vaultgate_core::{Error, Result};
use vaultgate_providers::Usage;
use vaultgate_router::Outcome;

use crate::proxy::read_body;
use crate::sse::{ByteStream, UsageSink};
use crate::state::AppState;
use crate::upstream::{MessagesRequest, Reply, attempt_messages};

const ROUTE: &str = "messages";

/// Longest SSE line the usage watcher buffers; longer lines are skipped (they carry text, not usage).
const MAX_WATCHED_LINE: usize = 1024 * 1024;

pub async fn handle(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = std::time::Instant::now();
    let mut model = None;
    let response = match forward(&app, &headers, body, &mut model).await {
        Ok(response) => response,
        Err(error) => anthropic_error(error),
    };
    let model = model.unwrap_or_default();
    let status = response.status().as_u16().to_string();
    metrics::counter!("vaultgate_requests_total", "route" => ROUTE, "model" => model.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("vaultgate_request_duration_seconds", "route" => ROUTE, "model" => model)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn forward(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
    model_label: &mut Option<String>,
) -> Result<Response> {
    let principal = app.authenticate(headers).await?;
    let bytes = read_body(body, headers, app.body_limit).await?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::bad_request(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(Error::bad_request("request body must be a JSON object"));
    };
    let model = match fields.get("model") {
        Some(Value::String(model)) if !model.is_empty() => model.clone(),
        _ => {
            return Err(Error::bad_param(
                "model",
                "`model` must be a non-empty string",
            ));
        }
    };
    if app.router.group(&model).is_none() {
        return Err(Error::bad_param(
            "model",
            format!(
                "Invalid model name passed in model={model}. Call `/v1/models` to view available models."
            ),
        ));
    }
    *model_label = Some(model.clone());
    let access = app.access(&principal, &model)?;
    let request = MessagesRequest::new(fields, model, headers);
    let (result, outcome) = app
        .router
        .execute(&request.model, |deployment| {
            attempt_messages(app, &request, deployment)
        })
        .await;
    let reply = match result {
        Ok(reply) => reply,
        // Which deployment failed, after how many attempts, helps whoever debugs the error.
        Err(error) => return Ok(with_outcome(anthropic_error(error), outcome.as_ref())),
    };
    let deployment = outcome.as_ref().map(|o| Arc::clone(&o.deployment));
    let response = match reply {
        Reply::Full { status, body, .. } => {
            if let Some(deployment) = &deployment {
                let usage = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|answer| answer.get("usage").map(anthropic_usage))
                    .unwrap_or_default();
                access.record(deployment, usage);
            }
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Reply::Stream { status, body } => {
            let sink = deployment.and_then(|d| access.into_sink(d));
            let body = match sink {
                Some(sink) => watch_usage(body, sink),
                None => body,
            };
            let mut response = Response::new(Body::from_stream(body));
            *response.status_mut() = status;
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    };
    Ok(with_outcome(response, outcome.as_ref()))
}

/// `x-vaultgate-model-id` and `x-vaultgate-attempts`, on answers and errors alike.
fn with_outcome(mut response: Response, outcome: Option<&Outcome>) -> Response {
    if let Some(outcome) = outcome {
        let headers = response.headers_mut();
        if let Ok(id) = HeaderValue::from_str(&outcome.deployment.id) {
            headers.insert("x-vaultgate-model-id", id);
        }
        headers.insert("x-vaultgate-attempts", HeaderValue::from(outcome.attempts));
    }
    response
}

/// OpenAI-style counts from an Anthropic `usage` object (the prompt includes cached tokens).
fn anthropic_usage(usage: &Value) -> Usage {
    let count = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        prompt_tokens: count("input_tokens")
            + count("cache_creation_input_tokens")
            + count("cache_read_input_tokens"),
        completion_tokens: count("output_tokens"),
    }
}

/// Passes an Anthropic event stream through unchanged while reading its usage
/// (`message_start` carries the input tokens, `message_delta` the output tokens).
fn watch_usage(inner: ByteStream, sink: UsageSink) -> ByteStream {
    struct Watch {
        line: BytesMut,
        usage: Usage,
        sink: Option<UsageSink>,
    }
    impl Watch {
        fn scan(&mut self, chunk: &[u8]) {
            let mut rest = chunk;
            while let Some(end) = rest.iter().position(|b| *b == b'\n') {
                let (head, tail) = rest.split_at(end);
                self.line.extend_from_slice(head);
                rest = tail.get(1..).unwrap_or_default();
                let line = self.line.split().freeze();
                self.line_done(&line);
            }
            if self.line.len() + rest.len() > MAX_WATCHED_LINE {
                self.line.clear();
            } else {
                self.line.extend_from_slice(rest);
            }
        }

        fn line_done(&mut self, line: &Bytes) {
            let Some(data) = line.strip_prefix(b"data:") else {
                return;
            };
            if !data.windows(7).any(|w| w == b"\"usage\"") {
                return;
            }
            let Ok(event) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
                return;
            };
            let usage = event
                .pointer("/message/usage")
                .or_else(|| event.get("usage"));
            if let Some(usage) = usage {
                let counts = anthropic_usage(usage);
                if counts.prompt_tokens > 0 {
                    self.usage.prompt_tokens = counts.prompt_tokens;
                }
                if usage.get("output_tokens").is_some() {
                    self.usage.completion_tokens = counts.completion_tokens;
                }
            }
        }
    }
    impl Drop for Watch {
        /// Usage is recorded however the stream ends, the client going away included.
        fn drop(&mut self) {
            if let Some(sink) = self.sink.take() {
                sink(self.usage);
            }
        }
    }
    let mut watch = Watch {
        line: BytesMut::new(),
        usage: Usage::default(),
        sink: Some(sink),
    };
    Box::pin(inner.map(move |item| {
        if let Ok(chunk) = &item {
            watch.scan(chunk);
        }
        item
    }))
}

/// Anthropic's error shape `{"type":"error","error":{"type","message"}}`, since Anthropic SDKs
/// read only that. Errors an Anthropic upstream sent are already in it and pass as they are.
fn anthropic_error(error: Error) -> Response {
    if let Error::Upstream { body, .. } = &error
        && serde_json::from_slice::<Value>(body)
            .is_ok_and(|v| v.get("type").and_then(Value::as_str) == Some("error"))
    {
        return error.into_response();
    }
    let status = error.status();
    let message = match &error {
        Error::Upstream { body, .. } => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| format!("upstream answered {}", status.as_u16())),
        other => other.to_string(),
    };
    let kind = match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    // The error's own response keeps its status and headers (Retry-After); only the body changes.
    let mut response = error.into_response();
    *response.body_mut() = Body::from(body.to_string());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
