//! `/api/v1/webhooks`: outbound webhooks for integrations (`webhooks.manage`) — what they
//! receive, their delivery log, and delivering one again. How a receiver verifies
//! `Depot-Signature` is in `docs/webhooks.md`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use depot_app::AppContext;
use depot_app::webhooks::{CreatedWebhook, DeliveryView, NewWebhook, WebhookPatch, WebhookView};
use depot_domain::auth::perm;
use depot_domain::notify::DeliveryStatus;
use depot_domain::pagination::Page;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Authorized, Client};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, PageOf, Pagination, PaginationQuery};
use crate::idempotency::idempotent;

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(idempotent(routes!(create_webhook)))
        .routes(routes!(list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(redeliver))
}

/// Create a webhook. The answer carries its signing secret, which is not shown again. In
/// prod the URL must be HTTPS to a public address (`webhooks.url_refused` otherwise).
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", security(("bearer" = ["webhooks.manage"])),
    request_body = NewWebhook,
    responses((status = 201, body = CreatedWebhook),
        (status = 422, description = "`validation.failed`, `webhooks.url_refused`", body = ErrorBody)))]
async fn create_webhook(
    Authorized(me, ..): Authorized<perm::WebhooksManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<NewWebhook>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    let created = ctx.webhooks().create(me.actor(), body, &client).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Webhooks, newest first.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", security(("bearer" = ["webhooks.manage"])),
    params(PaginationQuery),
    responses((status = 200, body = PageOf<WebhookView>)))]
async fn list_webhooks(
    Authorized(..): Authorized<perm::WebhooksManage>,
    State(ctx): State<AppContext>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<WebhookView>>> {
    Ok(Json(ctx.webhooks().list(&page).await?))
}

/// A webhook (never its secret).
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = ["webhooks.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
async fn get_webhook(
    Authorized(..): Authorized<perm::WebhooksManage>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<WebhookView>> {
    Ok(Json(ctx.webhooks().get(id).await?))
}

/// Change a webhook's URL, event types, description, or switch it on or off.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = ["webhooks.manage"])),
    params(("id" = Uuid, Path)),
    request_body = WebhookPatch,
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody),
        (status = 422, description = "`validation.failed`, `webhooks.url_refused`", body = ErrorBody)))]
async fn update_webhook(
    Authorized(me, ..): Authorized<perm::WebhooksManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<WebhookPatch>,
) -> ApiResult<Json<WebhookView>> {
    Ok(Json(
        ctx.webhooks().update(me.actor(), id, body, &client).await?,
    ))
}

/// Delete a webhook and its delivery log.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = ["webhooks.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    Authorized(me, ..): Authorized<perm::WebhooksManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    ctx.webhooks().delete(me.actor(), id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    status: Option<DeliveryStatus>,
}

/// A webhook's deliveries, newest first: status, attempts, the last answer.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = ["webhooks.manage"])),
    params(("id" = Uuid, Path), PaginationQuery, DeliveriesQuery),
    responses((status = 200, body = PageOf<DeliveryView>), (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    Authorized(..): Authorized<perm::WebhooksManage>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<DeliveryView>>> {
    Ok(Json(
        ctx.webhooks().deliveries(id, query.status, &page).await?,
    ))
}

/// One delivery of a webhook.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries/{delivery_id}", tag = "webhooks", security(("bearer" = ["webhooks.manage"])),
    params(("id" = Uuid, Path), ("delivery_id" = Uuid, Path)),
    responses((status = 200, body = DeliveryView), (status = 404, body = ErrorBody)))]
async fn get_delivery(
    Authorized(..): Authorized<perm::WebhooksManage>,
    State(ctx): State<AppContext>,
    Path((id, delivery)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<DeliveryView>> {
    Ok(Json(ctx.webhooks().delivery(id, delivery).await?))
}

/// Deliver again now (same event id and body), with a fresh 24-hour retry window.
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks", security(("bearer" = ["webhooks.manage"])),
    params(("id" = Uuid, Path), ("delivery_id" = Uuid, Path)),
    responses((status = 200, body = DeliveryView), (status = 404, body = ErrorBody),
        (status = 409, description = "`webhooks.delivery_in_progress`", body = ErrorBody)))]
async fn redeliver(
    Authorized(me, ..): Authorized<perm::WebhooksManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path((id, delivery)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<DeliveryView>> {
    Ok(Json(
        ctx.webhooks()
            .redeliver(me.actor(), id, delivery, &client)
            .await?,
    ))
}
