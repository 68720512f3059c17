//! OpenAI's Responses API (Codex-style clients): `POST /v1/responses` passed through to OpenAI
//! and Azure deployments and translated to chat for the others, with the same keys, limits,
//! routing and spend as chat; `GET`/`DELETE /v1/responses/{id}` and `GET …/{id}/input_items`
//! go to the deployment that holds the response, which its id names.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value, json};
use vaultgate_core::{Error, Result};
use vaultgate_keys::KeyService;
use vaultgate_providers::responses::{
    self, Call, IdRewriter, ResponsesStreamTranslator, chat_response_to_responses, decode_id,
    passes_through, rewrite_answer_id, translated_id,
};
use vaultgate_providers::{ChatBody, Deployment, Endpoint};
use vaultgate_router::{ModelGroup, RequestRouting};

use crate::auth::Principal;
use crate::error_shape::litellm_shape;
use crate::proxy::{
    Admitted, AnswerFormat, AnswerUsage, admit, answer, json_response, sse_response,
};
use crate::reply::reshape_chat_reply;
use crate::request_params::RequestParams;
use crate::sse::UsageFormat;
use crate::state::AppState;
use crate::stored_responses::{self, Ask, Keep, Keeping};
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
        principal,
    } = admit(app, headers, body, OWN_PARAMS, "aresponses", model_label).await?;
    let request =
        match ResponsesRequest::new(app, &principal, request, &group, &mut params.routing).await {
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
    /// What a chat deployment gets translated, when it is not the body: the request with the
    /// stored conversation of its `previous_response_id` in front of its input.
    continued: Option<Map<String, Value>>,
    /// The conversation of the `previous_response_id` (when `continued`), for an OpenAI or
    /// Azure deployment, which knows nothing of that id: it gets the conversation in the
    /// input too (built on first use).
    history: Vec<Value>,
    continued_upstream: OnceLock<Result<ChatBody>>,
    /// Who asks, and the store of translated responses (`None`: no key database).
    principal: Principal,
    keys: Option<KeyService>,
    /// What a translated answer needs (built on first use: pass-through requests are never
    /// parsed for it).
    translated: OnceLock<Result<Translated>>,
    /// The chat request, without and with `drop_params` (built on first use of each).
    as_chat: [OnceLock<Result<ChatBody>>; 2],
}

/// What a translated answer needs besides the chat answer.
struct Translated {
    /// What the response object echoes: the request's settings, with `store` as the gateway
    /// keeps it and the client's `previous_response_id`.
    echo: Map<String, Value>,
    /// Where the response is stored (`None`: not stored).
    keep: Option<Keep>,
}

impl ResponsesRequest {
    /// A `previous_response_id` of an OpenAI or Azure deployment goes upstream as the
    /// upstream's own id, and only the deployment that holds it may serve (no fallback: no
    /// other has it). Any other one names a stored translated response, whose conversation is
    /// put in front of the input (any deployment may serve it).
    async fn new(
        app: &AppState,
        principal: &Principal,
        body: ChatBody,
        group: &ModelGroup,
        routing: &mut RequestRouting,
    ) -> Result<Self> {
        const NAME: &[u8] = b"previous_response_id";
        let previous = if body.bytes().windows(NAME.len()).any(|w| w == NAME) {
            body.fields()?
                .get("previous_response_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        } else {
            None
        };
        let mut request = Self {
            body,
            continued: None,
            history: Vec::new(),
            continued_upstream: OnceLock::new(),
            principal: principal.clone(),
            keys: app.keys.clone(),
            translated: OnceLock::new(),
            as_chat: Default::default(),
        };
        let Some(previous) = previous else {
            return Ok(request);
        };
        let decoded = decode_id(&previous);
        let held_upstream = decoded.as_ref().filter(|decoded| {
            app.router
                .deployments()
                .any(|d| d.id == decoded.deployment && passes_through(d))
        });
        let translated_here = group.deployments.iter().any(|d| !passes_through(d));
        let fields = request.body.fields()?;
        match (held_upstream, &app.keys) {
            (Some(held), _) => {
                if group.deployments.iter().any(|d| d.id == held.deployment) {
                    routing.only_deployment = Some(held.deployment.clone());
                    routing.disable_fallbacks = true;
                }
                let mut fields = fields.clone();
                fields.insert("previous_response_id".into(), json!(held.upstream));
                request.body = ChatBody::from_fields(fields, request.body.model.clone())?;
            }
            // Ours but not an upstream's (a translated one), or any id a chat model gets.
            (None, Some(keys)) if translated_here || decoded.is_some() => {
                let history = stored_responses::previous(keys, principal, &previous).await?;
                request.continued = Some(responses::continued(fields, history.clone()));
                request.history = history;
            }
            _ => {}
        }
        Ok(request)
    }

    fn translated(&self) -> Result<&Translated> {
        let built = self.translated.get_or_init(|| {
            let fields = self.body.fields()?;
            let store =
                self.keys.is_some() && fields.get("store").and_then(Value::as_bool) != Some(false);
            let mut echo = responses::echoed(fields);
            echo.insert("store".into(), json!(store));
            let keep = match &self.keys {
                Some(keys) if store => {
                    Some(Keep::new(keys, &self.principal, fields, &self.history))
                }
                _ => None,
            };
            Ok(Translated { echo, keep })
        });
        built.as_ref().map_err(copy_error)
    }

    /// What an OpenAI or Azure deployment gets.
    fn upstream_body(&self) -> Result<&ChatBody> {
        if self.continued.is_none() {
            return Ok(&self.body);
        }
        let built = self.continued_upstream.get_or_init(|| {
            let history = responses::for_openai(self.history.clone());
            let fields = responses::continued(self.body.fields()?, history);
            ChatBody::from_fields(fields, self.body.model.clone())
        });
        built.as_ref().map_err(copy_error)
    }

    fn as_chat(&self, drop_params: bool) -> &Result<ChatBody> {
        self.as_chat[usize::from(drop_params)].get_or_init(|| {
            let fields = match &self.continued {
                Some(continued) => continued,
                None => self.body.fields()?,
            };
            let fields = responses::responses_to_chat_request(fields, drop_params)?;
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
        let body = request.upstream_body()?;
        let dropped = drop_params(body, params, &deployment)?;
        let body = dropped.as_ref().unwrap_or(body);
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
    let Translated { echo, keep } = request.translated()?;
    let model = &request.body.model;
    reshape_chat_reply(
        reply,
        |json| {
            let id = translated_id(provider, &deployment.id);
            let response = chat_response_to_responses(json, echo, model, &id);
            if let Some(keep) = keep {
                keep.keep(&response);
            }
            response
        },
        || {
            let translator = ResponsesStreamTranslator::new(echo, model, provider, &deployment.id);
            match keep {
                Some(keep) => Box::new(Keeping::new(translator, keep.clone())),
                None => Box::new(translator),
            }
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

/// The pass-through call of a request about a stored response.
fn upstream_call(ask: Ask, upstream_id: &str) -> Call<'_> {
    match ask {
        Ask::Retrieve => Call::Retrieve(upstream_id),
        Ask::Delete => Call::Delete(upstream_id),
        Ask::InputItems => Call::InputItems(upstream_id),
    }
}

pub async fn retrieve(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    by_id(&app, &id, request, Ask::Retrieve).await
}

pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    by_id(&app, &id, request, Ask::Delete).await
}

pub async fn input_items(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    by_id(&app, &id, request, Ask::InputItems).await
}

async fn by_id(app: &AppState, id: &str, request: Request, what: Ask) -> Response {
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

/// A call about a stored response: sent to the OpenAI or Azure deployment its id names, for
/// callers that may use that deployment's model, or answered from the gateway's own store for
/// a translated response.
async fn stored(
    app: &AppState,
    id: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    what: Ask,
    model_label: &mut Option<String>,
) -> Result<Response> {
    let principal = app.authenticate(headers).await?;
    let not_found = |why: &str| Error::NotFound(format!("Response with id '{id}' not found{why}."));
    let decoded = decode_id(id).ok_or_else(|| not_found(""))?;
    let deployment = app
        .router
        .deployments()
        .find(|d| d.id == decoded.deployment)
        .cloned();
    if let Some(deployment) = &deployment {
        app.authorize(&principal, &deployment.model_name, None)?;
        *model_label = Some(deployment.model_name.clone());
    }
    let deployment = match deployment {
        Some(deployment) if passes_through(&deployment) => deployment,
        // Translated: the gateway's own store has it, if anywhere.
        _ => {
            return match &app.keys {
                Some(keys) => stored_responses::answer(keys, &principal, id, what, query).await,
                None => Err(not_found(
                    ": responses translated for non-OpenAI deployments are stored only with a database_url",
                )),
            };
        }
    };
    let reply = with_key_reread(app, &deployment, || {
        call(
            app,
            &deployment,
            upstream_call(what, &decoded.upstream),
            query,
            None,
        )
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
