//! The model routes: authenticate, parse, pick a deployment, call it, answer (or stream).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use vaultgate_core::{Error, Result};
use vaultgate_providers::{ChatBody, Endpoint};

use crate::sse;
use crate::state::AppState;
use crate::upstream::{Reply, attempt};

pub async fn handle(
    app: Arc<AppState>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut model = None;
    let response = match forward(&app, endpoint, &headers, body, &mut model).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    let model = model.unwrap_or_default();
    let status = response.status().as_u16().to_string();
    let route = endpoint.path();
    metrics::counter!("vaultgate_requests_total", "route" => route, "model" => model.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("vaultgate_request_duration_seconds", "route" => route, "model" => model)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn forward(
    app: &AppState,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
    model_label: &mut Option<String>,
) -> Result<Response> {
    let principal = app.authenticate(headers).await?;
    let bytes = read_body(body, headers, app.body_limit).await?;
    let request = ChatBody::parse(&bytes)?;
    if app.router.group(&request.model).is_none() {
        return Err(Error::bad_param(
            "model",
            format!(
                "Invalid model name passed in model={}. Call `/v1/models` to view available models.",
                request.model
            ),
        ));
    }
    *model_label = Some(request.model.clone());
    let access = app.access(&principal, &request.model)?;
    let client_wants_usage = request
        .fields
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let (result, outcome) = app
        .router
        .execute(&request.model, |deployment| {
            attempt(app, endpoint, &request, access.tracks_usage(), deployment)
        })
        .await;
    if let (Err(error), Some(outcome)) = (&result, &outcome) {
        metrics::counter!("vaultgate_upstream_errors_total",
            "model" => request.model.clone(), "deployment" => outcome.deployment.id.clone(),
            "status" => error.status().as_u16().to_string())
        .increment(1);
    }
    let reply = result?;
    let deployment = outcome.as_ref().map(|o| Arc::clone(&o.deployment));
    let mut response = match reply {
        Reply::Full {
            status,
            content_type,
            body,
        } => {
            if let Some(deployment) = &deployment {
                access.record_body(deployment, &body);
            }
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                content_type.unwrap_or(HeaderValue::from_static("application/json")),
            );
            response
        }
        Reply::Stream { status, body } => {
            let sink = deployment.and_then(|d| access.into_sink(d));
            let body = sse::tap(body, !client_wants_usage, sink);
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
    if let Some(outcome) = outcome {
        let headers = response.headers_mut();
        if let Ok(id) = HeaderValue::from_str(&outcome.deployment.id) {
            headers.insert("x-vaultgate-model-id", id);
        }
        headers.insert("x-vaultgate-attempts", HeaderValue::from(outcome.attempts));
    }
    Ok(response)
}

/// Reads the body up to `limit` bytes; larger bodies are refused with 413 without reading them.
pub(crate) async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(Error::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let error = error.into_inner();
        if error.is::<http_body_util::LengthLimitError>() {
            Error::PayloadTooLarge { limit }
        } else {
            Error::bad_request(format!("could not read the request body: {error}"))
        }
    })
}
