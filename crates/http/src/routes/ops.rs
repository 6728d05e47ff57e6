//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use depot_app::AppContext;
use depot_app::health::Readiness;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok` while the process serves requests.
    status: &'static str,
    version: &'static str,
}

/// Liveness: the process is up and serving. Checks no dependency.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is serving", body = Liveness)))]
async fn healthz() -> Json<Liveness> {
    Json(Liveness {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness: database reachable, migrations current, cache and broker reachable, not
/// shutting down. A cache or broker outage is reported as `degraded` but keeps the instance
/// ready (requests fall back); a database outage, pending migrations or draining make it 503.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve traffic", body = Readiness),
        (status = 503, description = "Not ready; per-component detail", body = Readiness),
    ))]
async fn readyz(State(ctx): State<AppContext>) -> impl IntoResponse {
    let readiness = ctx.health().readiness().await;
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // A 503 here is a report, not an error: it keeps its own body (see the envelope middleware).
    let mut response = (status, Json(readiness)).into_response();
    response
        .extensions_mut()
        .insert(crate::middleware::envelope::KeepBody);
    response
}
