//! Depot's HTTP API.
//!
//! [`router`] assembles the whole application: the routers of each capability (with their
//! OpenAPI description), `/openapi.json` and `/docs`, and the middleware stack that gives every
//! response a request id, security headers and — for every error — the JSON envelope.

pub mod auth;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod input;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod server;

use depot_domain::ErrorCode;
use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use depot_app::AppContext;
use depot_domain::AppError;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::middleware::{
    api_limit, client_addr, envelope, metrics as http_metrics, request_id, security,
};

/// The routes of the API with their OpenAPI description (no middleware, no state yet).
fn api() -> OpenApiRouter<AppContext> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::ops::router())
        .nest(
            "/api/v1",
            OpenApiRouter::new()
                .merge(routes::auth::router())
                .merge(routes::users::router())
                .merge(routes::roles::router())
                .merge(routes::audit::router())
                .merge(routes::catalog::router())
                .merge(routes::stock::router())
                .merge(routes::alerts::router())
                .merge(routes::purchasing::router())
                .merge(routes::crm::router())
                .merge(routes::sales::router())
                .merge(routes::imports::router())
                .merge(routes::payments::router())
                .merge(routes::notifications::router())
                .merge(routes::webhooks::router())
                .merge(routes::reports::router())
                .merge(routes::realtime::router()),
        )
}

/// The OpenAPI document, as served at `/openapi.json` and printed by `depot openapi`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().split_for_parts().1;
    openapi::complete(&mut doc);
    doc
}

/// The complete application router for `ctx`.
pub fn router(ctx: &AppContext) -> Router {
    let settings = ctx.settings();
    let (mut routes, mut openapi) = api().split_for_parts();
    openapi::complete(&mut openapi);
    if settings.debug_routes {
        routes = routes.nest("/api/v1/_debug", routes::debug::router());
    }
    if ctx.payments().simulator().is_some() {
        routes = routes.nest(
            depot_app::payments::SIMULATOR_PATH,
            routes::simulator::router(),
        );
    }
    let mut app = routes
        .with_state(ctx.clone())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi));
    if settings.metrics_addr.is_none() {
        app = app.merge(metrics::router(ctx.health().clone()));
    }
    let hsts = settings.hsts();
    // Validated with the settings: an entry that is not a network never gets this far.
    let proxies = std::sync::Arc::new(settings.proxies().unwrap_or_default());
    let limited = ctx.clone();
    app.route_layer(axum::middleware::from_fn(http_metrics::stash_route))
        .fallback(not_found)
        .layer(idempotency::provide(ctx))
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn(move |req, next| {
                    client_addr::client_addr(proxies.clone(), req, next)
                }))
                .layer(axum::middleware::from_fn(request_id::request_id))
                .layer(axum::middleware::from_fn(http_metrics::record))
                .layer(axum::middleware::from_fn(envelope::error_envelope))
                .layer(axum::middleware::from_fn(move |req, next| {
                    security::security_headers(hsts, req, next)
                }))
                .option_layer(security::cors(&settings.cors_origins))
                .layer(axum::middleware::from_fn(move |req, next| {
                    api_limit::api_limit(limited.clone(), req, next)
                }))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    settings.request_timeout(),
                ))
                // Bodies read by an extractor stop at `body_limit_bytes`; the import route
                // lifts that and reads its file up to `import_max_bytes`, the overall cap.
                .layer(DefaultBodyLimit::max(settings.body_limit_bytes))
                .layer(RequestBodyLimitLayer::new(
                    settings.body_limit_bytes.max(settings.import_max_bytes),
                )),
        )
}

async fn not_found() -> ApiError {
    ApiError(AppError::new(ErrorCode::RouteNotFound, "no such resource"))
}

fn panic_response(_payload: Box<dyn Any + Send + 'static>) -> Response {
    // The panic message went to stderr through the panic hook; the client learns nothing.
    tracing::error!("a request handler panicked");
    ApiError(AppError::internal(std::io::Error::other(
        "handler panicked",
    )))
    .into_response()
}
