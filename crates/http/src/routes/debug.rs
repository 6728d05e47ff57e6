//! Routes for exercising the platform in tests and in dev (`debug_routes = true`, refused in
//! prod): a slow request, an internal error, a panic, a JSON body and a paginated list.
//! They are not part of the API and not in the OpenAPI document.

use depot_domain::ErrorCode;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use depot_app::AppContext;
use depot_app::debug::Ping;
use depot_domain::pagination::Page;
use depot_domain::{AppError, Validator};
use serde::{Deserialize, Serialize};

use crate::auth::Client;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Pagination};
use crate::middleware::request_id::RequestId;

pub fn router() -> Router<AppContext> {
    Router::new()
        .route("/pings", post(ping))
        .route("/emails", post(email))
        .route("/cached/{key}", get(cached).delete(invalidate_cached))
        .route("/sleep", get(sleep))
        .route("/error", get(internal_error))
        .route("/panic", get(panic))
        .route("/echo", post(echo))
        .route("/numbers", get(numbers))
        .route("/users/{id}", get(user_without_auth))
}

#[derive(Deserialize)]
struct SleepQuery {
    ms: u64,
}

async fn sleep(Query(q): Query<SleepQuery>) -> Json<serde_json::Value> {
    let ms = q.ms.min(60_000);
    // Observable from outside: tests wait for it to know the request is in flight.
    tracing::info!(ms, "debug sleep started");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(serde_json::json!({ "slept_ms": ms }))
}

#[derive(Debug)]
struct LeakyCause;

impl std::fmt::Display for LeakyCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "password=hunter2 at db.internal:5432: relation \"secret_table\" does not exist",
        )
    }
}

impl std::error::Error for LeakyCause {}

async fn internal_error() -> ApiResult<()> {
    Err(ApiError(AppError::internal(LeakyCause)))
}

async fn panic() -> &'static str {
    // Deliberate: proves a panic becomes an opaque 500 envelope.
    #[allow(clippy::panic)]
    {
        panic!("password=hunter2 panicked in a handler")
    }
}

#[derive(Deserialize, Serialize)]
struct Echo {
    name: String,
    quantity: i64,
}

async fn echo(ApiJson(body): ApiJson<Echo>) -> ApiResult<Json<Echo>> {
    let mut v = Validator::new();
    v.check(
        !body.name.trim().is_empty(),
        "name",
        "required",
        "must not be empty",
    )
    .check(
        body.quantity > 0,
        "quantity",
        "must_be_positive",
        "must be greater than 0",
    );
    v.finish()?;
    Ok(Json(body))
}

/// The numbers 1..=120 in pages, to exercise pagination end to end.
async fn numbers(Pagination(page): Pagination) -> ApiResult<Json<Page<u32>>> {
    let after: u32 = page.decode_cursor()?.unwrap_or(0);
    let rows: Vec<u32> = (after + 1..=120).take(page.limit as usize + 1).collect();
    Ok(Json(Page::from_overfetch(rows, &page, |n| *n)?))
}

/// Emits a `debug.ping` event through the outbox; the `debug` consumer handles it.
async fn ping(
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(ping): ApiJson<Ping>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let id = debug_service(&ctx)?.emit_ping(ping, &client).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "message_id": id })),
    ))
}

fn debug_service(ctx: &AppContext) -> ApiResult<&depot_app::debug::DebugService> {
    ctx.debug()
        .ok_or_else(|| ApiError(AppError::new(ErrorCode::RouteNotFound, "no such resource")))
}

/// Reads a value through the cache (L1, Redis, then the loader).
async fn cached(
    State(ctx): State<AppContext>,
    Path(key): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let (value, loads) = debug_service(&ctx)?.cached(&key).await?;
    Ok(Json(
        serde_json::json!({ "value": value, "loads": loads, "backend": debug_service(&ctx)?.cache_backend() }),
    ))
}

/// Invalidates the cached debug namespace.
async fn invalidate_cached(
    State(ctx): State<AppContext>,
    Path(_key): Path<String>,
) -> ApiResult<StatusCode> {
    debug_service(&ctx)?.invalidate_cached().await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct EmailRequest {
    to: String,
    subject: String,
    text: String,
}

/// Queues an email for the background sender.
async fn email(
    State(ctx): State<AppContext>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    ApiJson(body): ApiJson<EmailRequest>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    debug_service(&ctx)?;
    let id = ctx.mail().request(new_email(body, request_id.0)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "email_id": id })),
    ))
}

fn new_email(body: EmailRequest, correlation_id: String) -> depot_app::mail::NewEmail {
    depot_app::mail::NewEmail {
        to: body.to,
        subject: body.subject,
        body: body.text,
        correlation_id: Some(correlation_id),
        attachments: None,
    }
}

/// `GET /users/me` without authentication (the same service call for a given id): the
/// baseline against which the auth benchmark measures what authentication adds.
async fn user_without_auth(
    State(ctx): State<AppContext>,
    Path(id): Path<uuid::Uuid>,
) -> ApiResult<Json<depot_app::users::UserView>> {
    Ok(Json(ctx.users().get(id).await?))
}
