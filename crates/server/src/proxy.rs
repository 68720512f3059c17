//! The model routes: authenticate, parse, pick a deployment, call it, answer (or stream).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use vaultgate_core::{Error, Result};
use vaultgate_providers::{ChatBody, Deployment, Endpoint, Usage};
use vaultgate_router::{GroupRef, Outcome, RequestRouting, unknown_model};

use crate::access::Access;
pub(crate) use crate::answer_headers::with_outcome;
use crate::answer_headers::{Served, with_served};
use crate::error_shape::litellm_shape;
use crate::request_params::{self, RequestParams};
use crate::spend_log;
use crate::sse::{self, ByteStream, UsageFormat};
use crate::state::AppState;
use crate::upstream::{Reply, attempt};

/// Takes the whole request (not axum's `HeaderMap` extractor, which clones every header).
pub async fn handle(app: Arc<AppState>, endpoint: Endpoint, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let mut model = None;
    let response = match forward(&app, endpoint, &parts.headers, body, &mut model).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    app.request_metrics.record(
        endpoint.path(),
        model.as_deref(),
        response.status(),
        started,
    );
    response
}

/// The request counter and latency histogram of each (route, model, status), registered once:
/// `metrics::counter!` with owned labels allocates and hashes three labels on every request.
/// Models are the configured ones (or none), so the set stays small.
#[derive(Default)]
pub struct RequestMetrics {
    by_model: std::sync::RwLock<vaultgate_core::FastMap<String, Vec<RequestSeries>>>,
}

struct RequestSeries {
    route: &'static str,
    status: StatusCode,
    count: metrics::Counter,
    duration: metrics::Histogram,
}

impl RequestMetrics {
    /// Counts a finished model request and its latency, by route, model and status.
    pub(crate) fn record(
        &self,
        route: &'static str,
        model: Option<&str>,
        status: StatusCode,
        started: Instant,
    ) {
        let model = model.unwrap_or_default();
        let seconds = started.elapsed().as_secs_f64();
        let find = |series: &[RequestSeries]| {
            series
                .iter()
                .position(|s| s.route == route && s.status == status)
        };
        if let Ok(map) = self.by_model.read()
            && let Some(series) = map.get(model)
            && let Some(index) = find(series)
            && let Some(found) = series.get(index)
        {
            found.count.increment(1);
            found.duration.record(seconds);
            return;
        }
        let count = metrics::counter!("vaultgate_requests_total", "route" => route,
            "model" => model.to_owned(), "status" => status.as_u16().to_string());
        let duration = metrics::histogram!("vaultgate_request_duration_seconds",
            "route" => route, "model" => model.to_owned());
        count.increment(1);
        duration.record(seconds);
        if let Ok(mut map) = self.by_model.write() {
            let series = map.entry(model.to_owned()).or_default();
            if find(series).is_none() {
                series.push(RequestSeries {
                    route,
                    status,
                    count,
                    duration,
                });
            }
        }
    }
}

/// The shared front of every model route: who calls, what they sent, whether they may, and
/// the model group that serves it.
pub(crate) struct Admitted<'a> {
    pub request: ChatBody,
    pub access: Access,
    pub group: GroupRef<'a>,
    /// LiteLLM's request-level params, split off the body.
    pub params: RequestParams,
    /// Who calls (for what depends on the caller beyond access, such as stored responses).
    pub principal: crate::auth::Principal,
}

/// Authenticates, reads and parses the body, splits LiteLLM's own params off it (`keep`: those
/// the route's protocol has too), and checks the caller's access to its model (before whether
/// the model exists, as LiteLLM does) and to the fallbacks it names. `model_label` gets the
/// model as soon as it is known, for the request metrics.
pub(crate) async fn admit<'a>(
    app: &'a AppState,
    headers: &HeaderMap,
    body: Body,
    keep: &[&str],
    call_type: &'static str,
    model_label: &mut Option<String>,
) -> Result<Admitted<'a>> {
    let (started, started_ms) = (Instant::now(), spend_log::now_ms());
    let principal = app.authenticate(headers).await?;
    let bytes = read_body(body, headers, app.body_limit).await?;
    let parsed = ChatBody::parse(bytes)?;
    // Taken before LiteLLM's params are split off: the row keeps the request's tags.
    let log = app.log_draft(&principal, headers, &parsed, call_type, started, started_ms);
    let checked: Result<Admitted<'a>> = async {
        let (request, mut params) = request_params::split(parsed, keep)?;
        let group = app.router.resolve(&request.model);
        app.authorize(&principal, &request.model, group.as_deref())?;
        let group = group.ok_or_else(|| unknown_model(&request.model))?;
        for fallback in params.routing.client_fallbacks() {
            let target = app.router.resolve(fallback);
            app.authorize(&principal, fallback, target.as_deref())?;
        }
        *model_label = Some(request.model.clone());
        let access = app
            .access(&principal, &request.model, request.user.as_deref())
            .await?;
        // The end user's allowed_model_region (from memory) narrows the deployments.
        params.routing.allowed_region = app
            .keys
            .as_ref()
            .and_then(|keys| keys.allowed_model_region(request.user.as_deref()));
        Ok(Admitted {
            request,
            access,
            group,
            params,
            principal: principal.clone(),
        })
    }
    .await;
    match checked {
        Ok(admitted) => Ok(Admitted {
            access: admitted.access.with_log(log),
            ..admitted
        }),
        // Refused after authentication (bad params, model access, unknown model, budget,
        // limits): logged too.
        Err(error) => {
            log.finish(spend_log::Ending::refused(&error));
            Err(error)
        }
    }
}

async fn forward(
    app: &AppState,
    endpoint: Endpoint,
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
        &[],
        spend_log::call_type(endpoint),
        model_label,
    )
    .await?;
    let routing = &params.routing;
    let client_wants_usage = request.include_usage;
    let (result, outcome) = app
        .router
        .execute(&group, routing, |deployment| {
            attempt(
                app,
                endpoint,
                &request,
                &params,
                access.tracks_usage(),
                deployment,
            )
        })
        .await;
    let format = AnswerFormat {
        error: |error| litellm_shape(error).into_response(),
        usage: AnswerUsage::OpenAi,
        stream: UsageFormat::OpenAi {
            hide_usage_chunk: !client_wants_usage,
        },
    };
    Ok(answer(
        app, access, request, result, outcome, routing, &format,
    ))
}

/// How a model route reads its answers and shapes its errors.
pub(crate) struct AnswerFormat {
    /// The error body the route's clients read (LiteLLM's, Anthropic's).
    pub error: fn(Error) -> Response,
    /// Where a whole answer has its token counts, for its charge.
    pub usage: AnswerUsage,
    /// Where a stream carries its usage.
    pub stream: UsageFormat,
}

/// Where a whole answer has its token counts.
pub(crate) enum AnswerUsage {
    /// OpenAI's `usage`, found by a scan rather than parsing the whole answer.
    OpenAi,
    /// The answer's `usage` member in another API's shape, read by this function.
    Member(fn(&serde_json::Value) -> Usage),
}

impl AnswerUsage {
    fn of(&self, body: &[u8]) -> Usage {
        match self {
            Self::OpenAi => crate::access::openai_usage(body),
            Self::Member(read) => serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|answer| answer.get("usage").map(read))
                .unwrap_or_default(),
        }
    }
}

/// The client's answer to a routed request: the upstream's reply, charged (a stream when it
/// ends) and with LiteLLM's headers, or the last error in the route's shape.
pub(crate) fn answer(
    app: &AppState,
    access: Access,
    request: ChatBody,
    result: Result<Reply>,
    outcome: Option<Outcome>,
    routing: &RequestRouting,
    format: &AnswerFormat,
) -> Response {
    let reply = match result {
        Ok(reply) => reply,
        Err(error) => {
            if let Some(outcome) = &outcome {
                metrics::counter!("vaultgate_upstream_errors_total",
                    "model" => request.model.clone(), "deployment" => outcome.deployment.id.clone(),
                    "status" => error.status().as_u16().to_string())
                .increment(1);
            }
            access.fail(outcome.as_ref().map(|o| &*o.deployment), &error);
            return with_outcome((format.error)(error), outcome.as_ref(), routing);
        }
    };
    let deployment = outcome.as_ref().map(|o| Arc::clone(&o.deployment));
    let api_base = deployment.as_deref().and_then(|d| api_base_header(app, d));
    let response = match reply {
        Reply::Full {
            status,
            content_type,
            body,
            headers,
        } => {
            let charged = deployment
                .as_deref()
                .map(|deployment| access.record_answer(deployment, format.usage.of(&body), &body));
            let served = Served::answered(api_base, charged);
            with_served(json_response(status, content_type, body), &headers, served)
        }
        Reply::Stream {
            status,
            body,
            headers,
        } => {
            let served = Served::streaming(api_base, access.key_use());
            let sink = deployment.and_then(|d| access.into_sink(d, request));
            let response = sse_response(status, sse::tap(body, format.stream, sink));
            with_served(response, &headers, served)
        }
    };
    with_outcome(response, outcome.as_ref(), routing)
}

/// `x-litellm-model-api-base` of the deployment as it is called now.
pub(crate) fn api_base_header(app: &AppState, deployment: &Deployment) -> Option<HeaderValue> {
    crate::upstream::public_api_base(&app.secrets, deployment)
}

/// Room for an answer's headers (ours, LiteLLM's, the key's limits, the provider's passed on),
/// made once: a map grown insert by insert was rehashed three times per answer.
const ANSWER_HEADERS: usize = 40;

pub(crate) fn json_response(
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().reserve(ANSWER_HEADERS);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("application/json")),
    );
    response
}

pub(crate) fn sse_response(status: StatusCode, body: ByteStream) -> Response {
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.reserve(ANSWER_HEADERS);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
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
        } else if crate::request_body::is_body_timeout(&*error) {
            Error::RequestTimeout(error.to_string())
        } else {
            Error::bad_request(format!("could not read the request body: {error}"))
        }
    })
}
