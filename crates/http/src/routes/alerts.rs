//! `/api/v1/alerts`: stock alerts — low stock, out of stock, expiring, expired.

use axum::Json;
use axum::extract::{Path, State};
use depot_app::AppContext;
use depot_app::stock::alerts::AlertView;
use depot_domain::auth::perm;
use depot_domain::pagination::Page;
use depot_domain::stock::{AlertFilter, AlertKind, AlertStatus};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Authorized, Client};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiQuery, PageOf, Pagination, PaginationQuery};

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts))
        .routes(routes!(get_alert))
        .routes(routes!(acknowledge_alert))
        .routes(routes!(resolve_alert))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    kind: Option<AlertKind>,
    status: Option<AlertStatus>,
    product_id: Option<Uuid>,
    location_id: Option<Uuid>,
}

/// Alerts, newest first.
#[utoipa::path(get, path = "/alerts", tag = "alerts", security(("bearer" = ["stock.read"])),
    params(PaginationQuery, AlertsQuery),
    responses((status = 200, body = PageOf<AlertView>), (status = 403, body = ErrorBody)))]
async fn list_alerts(
    Authorized(..): Authorized<perm::StockRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<AlertsQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<AlertView>>> {
    let filter = AlertFilter {
        kind: query.kind,
        status: query.status,
        product_id: query.product_id,
        location_id: query.location_id,
    };
    Ok(Json(ctx.alerts().list(filter, &page).await?))
}

/// Read an alert.
#[utoipa::path(get, path = "/alerts/{id}", tag = "alerts", security(("bearer" = ["stock.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = AlertView), (status = 404, body = ErrorBody)))]
async fn get_alert(
    Authorized(..): Authorized<perm::StockRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<AlertView>> {
    Ok(Json(ctx.alerts().get(id).await?))
}

/// Acknowledge an alert (records who and when; again changes nothing).
#[utoipa::path(post, path = "/alerts/{id}/acknowledge", tag = "alerts", security(("bearer" = ["stock.adjust"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = AlertView), (status = 404, body = ErrorBody),
        (status = 409, description = "`alerts.resolved`", body = ErrorBody)))]
async fn acknowledge_alert(
    Authorized(actor, ..): Authorized<perm::StockAdjust>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<AlertView>> {
    Ok(Json(
        ctx.alerts().acknowledge(actor.actor(), id, &client).await?,
    ))
}

/// Resolve an alert by hand (records who and when).
#[utoipa::path(post, path = "/alerts/{id}/resolve", tag = "alerts", security(("bearer" = ["stock.adjust"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = AlertView), (status = 404, body = ErrorBody),
        (status = 409, description = "`alerts.resolved`", body = ErrorBody)))]
async fn resolve_alert(
    Authorized(actor, ..): Authorized<perm::StockAdjust>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<AlertView>> {
    Ok(Json(
        ctx.alerts().resolve(actor.actor(), id, &client).await?,
    ))
}
