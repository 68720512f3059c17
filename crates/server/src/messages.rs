//! `POST /v1/messages` for Anthropic-native clients (Claude Code, the Anthropic SDKs): passed
//! through to Anthropic deployments, translated for OpenAI/Azure ones. Answers and errors are
//! Anthropic-shaped whichever deployment served them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};
use vaultgate_core::{Error, Result};
use vaultgate_providers::anthropic;

use crate::proxy::{Admitted, AnswerFormat, AnswerUsage, admit, answer};
use crate::sse::{UsageFormat, anthropic_usage};
use crate::state::AppState;
use crate::upstream::{MessagesRequest, attempt_messages};

const ROUTE: &str = "messages";

/// Params of Anthropic's Messages API that LiteLLM also uses for itself: here they are
/// Anthropic's and pass on.
const ANTHROPIC_OWN_PARAMS: &[&str] = &["metadata"];

pub async fn handle(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let mut model = None;
    let response = match forward(&app, &parts.headers, body, &mut model).await {
        Ok(response) => response,
        Err(error) => anthropic_error(error),
    };
    app.request_metrics
        .record(ROUTE, model.as_deref(), response.status(), started);
    response
}

async fn forward(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
    model_label: &mut Option<String>,
) -> Result<Response> {
    let Admitted {
        request,
        access,
        group,
        params,
        ..
    } = admit(
        app,
        headers,
        body,
        ANTHROPIC_OWN_PARAMS,
        "anthropic_messages",
        model_label,
    )
    .await?;
    let routing = &params.routing;
    let request = MessagesRequest::new(request, headers);
    let (result, outcome) = app
        .router
        .execute(&group, routing, |deployment| {
            attempt_messages(app, &request, &params, deployment)
        })
        .await;
    let format = AnswerFormat {
        error: anthropic_error,
        usage: AnswerUsage::Member(anthropic_usage),
        stream: UsageFormat::Anthropic,
    };
    Ok(answer(
        app,
        access,
        request.body,
        result,
        outcome,
        routing,
        &format,
    ))
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
    let kind = anthropic::error_type_for_status(status.as_u16());
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
