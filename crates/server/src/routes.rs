//! The route table and the small routes (models, health, metrics).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::future::{BoxFuture, Either};
use http::{HeaderMap, Method};
use serde_json::{Value, json};
use vaultgate_core::Result;
use vaultgate_providers::Endpoint;

use crate::auth::Principal;
use crate::health;
use crate::proxy;
use crate::request_id::{RequestId, RequestIdLayer};
use crate::state::AppState;

/// The routes [`proxy::handle`] serves. A POST to one goes to it from [`Dispatch`] directly; the
/// router has them too, for its answer to other methods (405 with `Allow`).
const PROXIED: [(&str, Endpoint); 6] = [
    ("/v1/chat/completions", Endpoint::ChatCompletions),
    ("/chat/completions", Endpoint::ChatCompletions),
    ("/v1/completions", Endpoint::Completions),
    ("/completions", Endpoint::Completions),
    ("/v1/embeddings", Endpoint::Embeddings),
    ("/embeddings", Endpoint::Embeddings),
];

/// The gateway's service: every route, each response with its `x-request-id`.
pub type Gateway = RequestId<Dispatch>;

pub fn app(state: Arc<AppState>) -> Gateway {
    tower::Layer::layer(
        &RequestIdLayer,
        Dispatch {
            router: router(Arc::clone(&state)),
            app: state,
        },
    )
}

/// Sends the model requests of [`PROXIED`] to their handler and the rest to the router. The
/// router's way cost ~3.4k instructions a model request (route lookup, two layers of boxed
/// route futures, the extractors).
#[derive(Clone)]
pub struct Dispatch {
    app: Arc<AppState>,
    router: axum::Router,
}

impl tower::Service<Request> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        BoxFuture<'static, Result<Response, Infallible>>,
        <axum::Router as tower::Service<Request>>::Future,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both ways are always ready (axum's router is).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let proxied = match *request.method() {
            Method::POST => PROXIED
                .iter()
                .find(|(path, _)| *path == request.uri().path()),
            _ => None,
        };
        match proxied {
            Some(&(_, endpoint)) => {
                let app = Arc::clone(&self.app);
                Either::Left(Box::pin(async move {
                    Ok(proxy::handle(app, endpoint, request).await)
                }))
            }
            None => Either::Right(tower::Service::call(&mut self.router, request)),
        }
    }
}

fn router(state: Arc<AppState>) -> axum::Router {
    let model_routes = PROXIED
        .iter()
        .fold(axum::Router::new(), |routes, &(path, endpoint)| {
            routes.route(
                path,
                post(move |State(app): State<Arc<AppState>>, request: Request| {
                    proxy::handle(app, endpoint, request)
                }),
            )
        });
    let model_routes = model_routes
        .route("/v1/messages", post(crate::messages::handle))
        .route("/v1/responses", post(crate::responses::create))
        .route("/responses", post(crate::responses::create))
        .route(
            "/v1/responses/{id}",
            get(crate::responses::retrieve).delete(crate::responses::delete),
        )
        .route(
            "/responses/{id}",
            get(crate::responses::retrieve).delete(crate::responses::delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(crate::responses::input_items),
        )
        .route(
            "/responses/{id}/input_items",
            get(crate::responses::input_items),
        )
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/model/info", get(crate::model_info::model_info))
        .route("/v1/model/info", get(crate::model_info::model_info))
        .route("/v2/model/info", get(crate::model_info::model_info))
        .route(
            "/model_group/info",
            get(crate::model_info::model_group_info),
        );
    let key_routes =
        match &state.keys {
            Some(keys) => vaultgate_keys::routes(keys.clone()),
            None => axum::Router::new()
                .route("/key/{*rest}", axum::routing::any(keys_disabled))
                .route("/team/{*rest}", axum::routing::any(keys_disabled))
                .route("/user/{*rest}", axum::routing::any(keys_disabled))
                .route("/organization/{*rest}", axum::routing::any(keys_disabled))
                .route("/end_user/{*rest}", axum::routing::any(keys_disabled))
                .route("/customer/{*rest}", axum::routing::any(keys_disabled))
                .route("/budget/{*rest}", axum::routing::any(keys_disabled))
                .route("/spend/{*rest}", axum::routing::any(keys_disabled))
                .route("/global/{*rest}", axum::routing::any(keys_disabled)),
        }
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            buffered_body,
        ))
        .layer(DefaultBodyLimit::max(state.body_limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            management_caller,
        ))
        .merge(crate::admin_status::routes(Arc::clone(&state)).layer(
            middleware::from_fn_with_state(Arc::clone(&state), master_only),
        ));
    let console = if state.console {
        crate::console::routes(Arc::clone(&state))
            .layer(middleware::from_fn_with_state(
                Arc::clone(&state),
                buffered_body,
            ))
            .layer(DefaultBodyLimit::max(state.body_limit))
    } else {
        axum::Router::new()
    };
    axum::Router::new()
        .merge(model_routes)
        .route("/health", get(crate::health_check::health))
        .route("/health/liveliness", get(health::liveliness))
        .route("/health/liveness", get(health::liveliness))
        .route("/health/readiness", get(health::readiness))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .with_state(state)
        .merge(key_routes)
        .merge(console)
}

async fn models(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Result<Json<Value>> {
    let principal = app.authenticate(&headers).await?;
    let all = app.router.models();
    let visible = match (&principal, &app.keys) {
        (Principal::Virtual(record), Some(keys)) => keys.allowed_models(record, all),
        _ => all.to_vec(),
    };
    let data: Vec<Value> = visible
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_677_610_602, "owned_by": "openai"}))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// Reads a management or console body under `max_request_size_mb` before its handler does, so
/// one too large (or too slow) is refused in OpenAI's shape, not with axum's plain-text 413.
async fn buffered_body(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match proxy::read_body(body, &parts.headers, app.body_limit).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(error) => error.into_response(),
    }
}

/// Key management takes the master key (or a console session allowed to do this).
async fn master_only(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    match app.require_admin(request.method(), request.headers()).await {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// The management routes need a caller (the master key or a virtual key, in a header or as a
/// console session); what each caller may do there is the key service's permission table.
async fn management_caller(
    State(app): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match app
        .session_caller(request.method(), request.headers())
        .await
    {
        Ok(Some(caller)) => caller,
        Ok(None) => match app.authenticate(request.headers()).await {
            Ok(Principal::Master | Principal::Open) => vaultgate_keys::Caller::Master,
            Ok(Principal::Virtual(key)) => vaultgate_keys::Caller::Key(key),
            Err(error) => return error.into_response(),
        },
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn keys_disabled() -> vaultgate_core::Error {
    vaultgate_core::Error::bad_request(
        "virtual keys need general_settings.master_key: set it to manage keys",
    )
}

async fn not_found() -> vaultgate_core::Error {
    vaultgate_core::Error::NotFound("no such route".into())
}
