//! `/api/v1/stock/*`: levels, batches, the ledger, adjustments, transfers and cycle counts.
//! Every POST honours `Idempotency-Key`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use depot_app::AppContext;
use depot_app::stock::{
    Adjustment, AdjustmentView, BatchView, CountLine, CountView, LevelView, MovementView, NewCount,
    NewTransfer, TransferLine, TransferView,
};
use depot_domain::auth::perm;
use depot_domain::pagination::Page;
use depot_domain::stock::{
    AdjustmentReason, BatchFilter, LevelFilter, MovementFilter, MovementKind, ReferenceType,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Authorized, Client};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, PageOf, Pagination, PaginationQuery};
use crate::idempotency::idempotent;

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(list_levels))
        .routes(routes!(list_batches))
        .routes(routes!(list_movements))
        .routes(idempotent(routes!(create_adjustment)))
        .routes(routes!(list_transfers))
        .routes(idempotent(routes!(create_transfer)))
        .routes(routes!(get_transfer))
        .routes(routes!(list_counts))
        .routes(idempotent(routes!(create_count)))
        .routes(routes!(get_count))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LevelsQuery {
    product_id: Option<Uuid>,
    location_id: Option<Uuid>,
    /// Answer from the ledger as it stood at this instant (RFC 3339): on hand only.
    as_of: Option<DateTime<Utc>>,
}

/// Stock levels per product and location, by product then location.
#[utoipa::path(get, path = "/stock/levels", tag = "stock", security(("bearer" = ["stock.read"])),
    params(PaginationQuery, LevelsQuery),
    responses((status = 200, body = PageOf<LevelView>), (status = 403, body = ErrorBody)))]
async fn list_levels(
    Authorized(..): Authorized<perm::StockRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<LevelsQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<LevelView>>> {
    let filter = LevelFilter {
        product_id: query.product_id,
        location_id: query.location_id,
    };
    Ok(Json(ctx.stock().levels(filter, query.as_of, &page).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchesQuery {
    product_id: Option<Uuid>,
    location_id: Option<Uuid>,
    /// Only batches expiring before this day.
    expiring_before: Option<NaiveDate>,
    /// Closed (empty) batches too.
    #[serde(default)]
    include_closed: bool,
}

/// Batches by expiry (earliest first, none last), then id.
#[utoipa::path(get, path = "/stock/batches", tag = "stock", security(("bearer" = ["stock.read"])),
    params(PaginationQuery, BatchesQuery),
    responses((status = 200, body = PageOf<BatchView>), (status = 403, body = ErrorBody)))]
async fn list_batches(
    Authorized(..): Authorized<perm::StockRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<BatchesQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<BatchView>>> {
    let filter = BatchFilter {
        product_id: query.product_id,
        location_id: query.location_id,
        expiring_before: query.expiring_before,
        include_closed: query.include_closed,
    };
    Ok(Json(ctx.stock().batches(filter, &page).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MovementsQuery {
    product_id: Option<Uuid>,
    location_id: Option<Uuid>,
    batch_id: Option<Uuid>,
    kind: Option<MovementKind>,
    reference_type: Option<ReferenceType>,
    reference_id: Option<Uuid>,
    /// From this instant (inclusive).
    from: Option<DateTime<Utc>>,
    /// Until this instant (exclusive).
    to: Option<DateTime<Utc>>,
}

/// The ledger, newest first.
#[utoipa::path(get, path = "/stock/movements", tag = "stock", security(("bearer" = ["stock.read"])),
    params(PaginationQuery, MovementsQuery),
    responses((status = 200, body = PageOf<MovementView>), (status = 403, body = ErrorBody)))]
async fn list_movements(
    Authorized(..): Authorized<perm::StockRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<MovementsQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<MovementView>>> {
    let filter = MovementFilter {
        product_id: query.product_id,
        location_id: query.location_id,
        batch_id: query.batch_id,
        kind: query.kind,
        reference_type: query.reference_type,
        reference_id: query.reference_id,
        from: query.from,
        to: query.to,
    };
    Ok(Json(ctx.stock().movements(&filter, &page).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentBody {
    product_id: Uuid,
    location_id: Uuid,
    /// Non-zero, in the product's unit (whole for `pcs`/`box`, up to 3 decimals otherwise):
    /// positive adds, negative removes by the depletion policy.
    #[schema(value_type = f64)]
    quantity: serde_json::Number,
    /// `other` needs a note.
    reason: AdjustmentReason,
    /// Required when adding to a product that tracks expiry; when removing, only this lot.
    #[schema(
        max_length = 64,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    lot: Option<String>,
    /// Required when adding to a product that tracks expiry; when removing, only this expiry.
    expiry: Option<NaiveDate>,
    /// Minor units of `currency` per unit (with `currency`).
    #[schema(minimum = 0)]
    unit_cost: Option<i64>,
    #[schema(pattern = r"^[A-Z]{3}$")]
    currency: Option<String>,
    #[schema(max_length = 1000)]
    note: Option<String>,
    /// Removing may take expired batches too.
    #[serde(default)]
    allow_expired: bool,
}

/// Adjust stock: add (tops up the batch with the same lot and expiry, or opens one) or remove
/// (by the product's depletion policy, across as many batches as needed, never below zero).
#[utoipa::path(post, path = "/stock/adjustments", tag = "stock", security(("bearer" = ["stock.adjust"])),
    request_body = AdjustmentBody,
    responses((status = 201, body = AdjustmentView),
        (status = 404, description = "`products.not_found`, `locations.not_found`", body = ErrorBody),
        (status = 409, description = "`stock.insufficient` (`details.available`), `products.archived`, `locations.inactive`", body = ErrorBody)))]
async fn create_adjustment(
    Authorized(actor, ..): Authorized<perm::StockAdjust>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<AdjustmentBody>,
) -> ApiResult<(StatusCode, Json<AdjustmentView>)> {
    let input = Adjustment {
        product_id: body.product_id,
        location_id: body.location_id,
        quantity: body.quantity,
        reason: body.reason,
        lot: body.lot,
        expiry: body.expiry,
        unit_cost: body.unit_cost,
        currency: body.currency,
        note: body.note,
        allow_expired: body.allow_expired,
    };
    let done = ctx.stock().adjust(actor.actor(), input, &client).await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// Transfers, newest first.
#[utoipa::path(get, path = "/stock/transfers", tag = "stock", security(("bearer" = ["stock.read"])),
    params(PaginationQuery),
    responses((status = 200, body = PageOf<TransferView>), (status = 403, body = ErrorBody)))]
async fn list_transfers(
    Authorized(..): Authorized<perm::StockRead>,
    State(ctx): State<AppContext>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<TransferView>>> {
    Ok(Json(ctx.stock().transfers(&page).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferLineBody {
    product_id: Uuid,
    /// Greater than 0, in the product's unit.
    #[schema(value_type = f64, exclusive_minimum = 0)]
    quantity: serde_json::Number,
    /// Take from this batch (at the source) instead of by policy.
    batch_id: Option<Uuid>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    from_location_id: Uuid,
    to_location_id: Uuid,
    #[schema(min_items = 1, max_items = 500)]
    lines: Vec<TransferLineBody>,
    #[schema(max_length = 1000)]
    note: Option<String>,
}

/// Move stock between two locations in one transaction, all lines or none: lot, expiry and
/// cost travel with it.
#[utoipa::path(post, path = "/stock/transfers", tag = "stock", security(("bearer" = ["stock.transfer"])),
    request_body = TransferBody,
    responses((status = 201, body = TransferView),
        (status = 404, description = "`products.not_found`, `locations.not_found`", body = ErrorBody),
        (status = 409, description = "`stock.insufficient` (`details.line`, `details.available`), `locations.inactive`", body = ErrorBody)))]
async fn create_transfer(
    Authorized(actor, ..): Authorized<perm::StockTransfer>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<TransferBody>,
) -> ApiResult<(StatusCode, Json<TransferView>)> {
    let input = NewTransfer {
        from_location_id: body.from_location_id,
        to_location_id: body.to_location_id,
        lines: body
            .lines
            .into_iter()
            .map(|l| TransferLine {
                product_id: l.product_id,
                quantity: l.quantity,
                batch_id: l.batch_id,
            })
            .collect(),
        note: body.note,
    };
    let done = ctx.stock().transfer(actor.actor(), input, &client).await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// Read a transfer with its movements.
#[utoipa::path(get, path = "/stock/transfers/{id}", tag = "stock", security(("bearer" = ["stock.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = TransferView), (status = 404, body = ErrorBody)))]
async fn get_transfer(
    Authorized(..): Authorized<perm::StockRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(ctx.stock().get_transfer(id).await?))
}

/// Cycle counts, newest first.
#[utoipa::path(get, path = "/stock/counts", tag = "stock", security(("bearer" = ["stock.read"])),
    params(PaginationQuery),
    responses((status = 200, body = PageOf<CountView>), (status = 403, body = ErrorBody)))]
async fn list_counts(
    Authorized(..): Authorized<perm::StockRead>,
    State(ctx): State<AppContext>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<CountView>>> {
    Ok(Json(ctx.stock().counts(&page).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountLineBody {
    batch_id: Uuid,
    /// What is there, in the product's unit (0 or more).
    #[schema(value_type = f64, minimum = 0)]
    counted: serde_json::Number,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountBody {
    location_id: Uuid,
    /// One line per counted batch (each batch once).
    #[schema(min_items = 1, max_items = 500)]
    lines: Vec<CountLineBody>,
    #[schema(max_length = 1000)]
    note: Option<String>,
}

/// Post a cycle count: each batch is set to what was counted; the differences post as
/// `count` movements in one transaction.
#[utoipa::path(post, path = "/stock/counts", tag = "stock", security(("bearer" = ["stock.adjust"])),
    request_body = CountBody,
    responses((status = 201, body = CountView),
        (status = 404, description = "`locations.not_found`", body = ErrorBody),
        (status = 409, description = "`stock.insufficient`: the count leaves less than is reserved", body = ErrorBody)))]
async fn create_count(
    Authorized(actor, ..): Authorized<perm::StockAdjust>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<CountBody>,
) -> ApiResult<(StatusCode, Json<CountView>)> {
    let input = NewCount {
        location_id: body.location_id,
        lines: body
            .lines
            .into_iter()
            .map(|l| CountLine {
                batch_id: l.batch_id,
                counted: l.counted,
            })
            .collect(),
        note: body.note,
    };
    let done = ctx.stock().count(actor.actor(), input, &client).await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// Read a cycle count with its movements.
#[utoipa::path(get, path = "/stock/counts/{id}", tag = "stock", security(("bearer" = ["stock.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = CountView), (status = 404, body = ErrorBody)))]
async fn get_count(
    Authorized(..): Authorized<perm::StockRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<CountView>> {
    Ok(Json(ctx.stock().get_count(id).await?))
}
