//! OpenAI's Responses API (Codex-style clients): `POST /v1/responses` passed through to OpenAI
//! and Azure deployments and translated to chat for the others, with the same keys, limits,
//! routing and spend as chat; `GET`/`DELETE /v1/responses/{id}` and `GET …/{id}/input_items`
//! go to the deployment that holds the response, which its id names.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Value, json};
use vaultgate_core::{Error, Result};
use vaultgate_providers::responses::{
    self, Call, IdRewriter, ResponsesStreamTranslator, chat_response_to_responses, decode_id,
    encode_id, passes_through, rewrite_answer_id,
};
use vaultgate_providers::{ChatBody, Deployment, Endpoint};
use vaultgate_router::{ModelGroup, RequestRouting};

use crate::error_shape::litellm_shape;
use crate::proxy::{
    Admitted, AnswerFormat, AnswerUsage, admit, answer, json_response, sse_response,
};
use crate::reply::reshape_chat_reply;
use crate::request_params::RequestParams;
use crate::sse::UsageFormat;
use crate::state::AppState;
use crate::upstream::{
    ErrorShape, Reply, attempt, copy_error, drop_params, resolve, send, translate_stream,
    with_key_reread,
};

const ROUTE: &str = "responses";

/// Params of the Responses API that LiteLLM also uses for itself: here they are OpenAI's
/// (LiteLLM's own go in `litellm_metadata`).
const OWN_PARAMS: &[&str] = &["metadata"];

pub async fn create(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let mut model = None;
    let response = match forward(&app, &parts.headers, body, &mut model).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
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
        mut params,
    } = admit(app, headers, body, OWN_PARAMS, "aresponses", model_label).await?;
    let request = match ResponsesRequest::new(request, &group, &mut params.routing) {
        Ok(request) => request,
        Err(error) => {
            access.fail(None, &error);
            return Err(error);
        }
    };
    let routing = &params.routing;
    let (result, outcome) = app
        .router
        .execute(&group, routing, |deployment| {
            attempt_responses(app, &request, &params, deployment)
        })
        .await;
    let format = AnswerFormat {
        error: |error| litellm_shape(error).into_response(),
        usage: AnswerUsage::Member(responses::usage),
        stream: UsageFormat::Responses,
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

/// A Responses request as admitted, and its chat translation once a chat deployment needs it.
struct ResponsesRequest {
    /// The client's body; a `previous_response_id` the gateway issued is the upstream's again.
    body: ChatBody,
    /// The chat request, without and with `drop_params` (built on first use of each).
    as_chat: [std::sync::OnceLock<Result<ChatBody>>; 2],
}

impl ResponsesRequest {
    /// A `previous_response_id` the gateway issued goes upstream as the upstream's own id, and
    /// only the deployment that holds it may serve (no fallback: no other has it).
    fn new(body: ChatBody, group: &ModelGroup, routing: &mut RequestRouting) -> Result<Self> {
        const NAME: &[u8] = b"previous_response_id";
        let previous = if body.bytes().windows(NAME.len()).any(|w| w == NAME) {
            body.fields()?
                .get("previous_response_id")
                .and_then(Value::as_str)
                .and_then(decode_id)
        } else {
            None
        };
        let body = match previous {
            Some(previous) => {
                if group
                    .deployments
                    .iter()
                    .any(|d| d.id == previous.deployment)
                {
                    routing.only_deployment = Some(previous.deployment.clone());
                    routing.disable_fallbacks = true;
                }
                let mut fields = body.fields()?.clone();
                fields.insert("previous_response_id".into(), json!(previous.upstream));
                ChatBody::from_fields(fields, body.model.clone())?
            }
            None => body,
        };
        Ok(Self {
            body,
            as_chat: Default::default(),
        })
    }

    fn as_chat(&self, drop_params: bool) -> &Result<ChatBody> {
        self.as_chat[usize::from(drop_params)].get_or_init(|| {
            let fields = responses::responses_to_chat_request(self.body.fields()?, drop_params)?;
            ChatBody::from_fields(fields, self.body.model.clone())
        })
    }
}

/// One try of a Responses request: passed through to an OpenAI or Azure deployment (only the
/// response id changes on the way back), else translated to chat and back.
async fn attempt_responses(
    app: &AppState,
    request: &ResponsesRequest,
    params: &RequestParams,
    deployment: Arc<Deployment>,
) -> Result<Reply> {
    let mocked = params.mock_response.is_some() || deployment.mock_response.is_some();
    if passes_through(&deployment) && !mocked {
        let dropped = drop_params(&request.body, params, &deployment)?;
        let body = dropped.as_ref().unwrap_or(&request.body);
        let reply = with_key_reread(app, &deployment, || {
            call(app, &deployment, Call::Create, None, Some(body))
        })
        .await?;
        return Ok(with_our_id(reply, &deployment));
    }
    let drop = params
        .drop_params
        .or(deployment.drop_params)
        .unwrap_or(app.router.drop_params());
    let chat = match request.as_chat(drop) {
        Ok(chat) => chat,
        Err(error) => return Err(copy_error(error)),
    };
    let provider = deployment.provider.as_str();
    let reply = attempt(
        app,
        Endpoint::ChatCompletions,
        chat,
        params,
        true,
        Arc::clone(&deployment),
    )
    .await?;
    let fields = request.body.fields()?;
    let model = &request.body.model;
    reshape_chat_reply(
        reply,
        |json| {
            let upstream = json.get("id").and_then(Value::as_str).unwrap_or("chatcmpl");
            let id = encode_id(provider, &deployment.id, upstream);
            chat_response_to_responses(json, fields, model, &id)
        },
        || {
            Box::new(ResponsesStreamTranslator::new(
                fields,
                model,
                provider,
                &deployment.id,
            ))
        },
    )
}

/// One pass-through call to an OpenAI or Azure deployment, its settings resolved now.
async fn call(
    app: &AppState,
    deployment: &Deployment,
    what: Call<'_>,
    query: Option<&str>,
    body: Option<&ChatBody>,
) -> Result<Reply> {
    let stream = match body {
        Some(body) => body.stream,
        // `GET …?stream=true` replays a background response's events.
        None => query.is_some_and(|q| q.split('&').any(|pair| pair == "stream=true")),
    };
    let upstream = {
        let secrets = app.secrets.snapshot();
        let resolved = resolve(&secrets, deployment);
        let bytes = body
            .map(|b| Bytes::from(b.upstream_body(&deployment.upstream_model, false)))
            .unwrap_or_default();
        responses::upstream_request(deployment, &resolved, what, query, bytes)?
    };
    send(app, deployment, upstream, stream, ErrorShape::AsIs).await
}

/// The upstream's answer with its response id naming the deployment.
fn with_our_id(reply: Reply, deployment: &Deployment) -> Reply {
    let provider = deployment.provider.as_str();
    match reply {
        Reply::Full {
            status,
            content_type,
            body,
            headers,
        } => Reply::Full {
            status,
            content_type,
            body: rewrite_answer_id(&body, provider, &deployment.id),
            headers,
        },
        Reply::Stream {
            status,
            body,
            headers,
        } => Reply::Stream {
            status,
            headers,
            body: translate_stream(body, Box::new(IdRewriter::new(provider, &deployment.id))),
        },
    }
}

/// A call about a stored response.
#[derive(Clone, Copy)]
enum Stored {
    Retrieve,
    Delete,
    InputItems,
}

impl Stored {
    fn call(self, upstream_id: &str) -> Call<'_> {
        match self {
            Self::Retrieve => Call::Retrieve(upstream_id),
            Self::Delete => Call::Delete(upstream_id),
            Self::InputItems => Call::InputItems(upstream_id),
        }
    }
}

pub async fn retrieve(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    by_id(&app, &id, request, Stored::Retrieve).await
}

pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    by_id(&app, &id, request, Stored::Delete).await
}

pub async fn input_items(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    by_id(&app, &id, request, Stored::InputItems).await
}

async fn by_id(app: &AppState, id: &str, request: Request, what: Stored) -> Response {
    let started = std::time::Instant::now();
    let (parts, _) = request.into_parts();
    let mut model = None;
    let query = parts.uri.query();
    let response = match stored(app, id, &parts.headers, query, what, &mut model).await {
        Ok(response) => response,
        Err(error) => litellm_shape(error).into_response(),
    };
    app.request_metrics
        .record(ROUTE, model.as_deref(), response.status(), started);
    response
}

/// A call about a stored response, sent to the deployment its id names, for callers that may
/// use that deployment's model.
async fn stored(
    app: &AppState,
    id: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    what: Stored,
    model_label: &mut Option<String>,
) -> Result<Response> {
    let principal = app.authenticate(headers).await?;
    let not_found = |why: &str| Error::NotFound(format!("Response with id '{id}' not found{why}."));
    let decoded = decode_id(id).ok_or_else(|| not_found(""))?;
    let deployment = app
        .router
        .deployments()
        .find(|d| d.id == decoded.deployment)
        .cloned()
        .ok_or_else(|| not_found(""))?;
    app.authorize(&principal, &deployment.model_name, None)?;
    *model_label = Some(deployment.model_name.clone());
    if !passes_through(&deployment) {
        return Err(not_found(&format!(
            ": responses of {} deployments are not stored (only OpenAI and Azure keep them)",
            deployment.provider.as_str()
        )));
    }
    let reply = with_key_reread(app, &deployment, || {
        call(app, &deployment, what.call(&decoded.upstream), query, None)
    })
    .await?;
    Ok(match with_our_id(reply, &deployment) {
        Reply::Full {
            status,
            content_type,
            body,
            ..
        } => json_response(status, content_type, body),
        Reply::Stream { status, body, .. } => sse_response(status, body),
    })
}
