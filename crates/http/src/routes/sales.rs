//! `/api/v1/sales-orders`: sales orders for visible customers, confirmed by reserving stock,
//! paid by hand (`/payments`), fulfilled from exactly the reserved batches, cancelled, and
//! returned. Every POST honours `Idempotency-Key`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use depot_app::AppContext;
use depot_app::sales::{
    NewPayment, NewSalesOrder, OrderLine, PaymentView, ReturnLine, ReturnView, SalesOrderPatch,
    SalesOrderView,
};
use depot_domain::auth::perm;
use depot_domain::pagination::Page;
use depot_domain::trade::{PaymentMethod, SalesOrderFilter, SoState};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Authorized, Client};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, PageOf, Pagination, PaginationQuery, Whole, nullable};
use crate::idempotency::idempotent;

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(list_orders))
        .routes(idempotent(routes!(create_order)))
        .routes(routes!(get_order, update_order))
        .routes(idempotent(routes!(confirm)))
        .routes(idempotent(routes!(fulfil)))
        .routes(idempotent(routes!(cancel)))
        .routes(routes!(list_returns))
        .routes(idempotent(routes!(create_return)))
        .routes(routes!(list_payments))
        .routes(idempotent(routes!(record_payment)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrdersQuery {
    state: Option<SoState>,
    customer_id: Option<Uuid>,
    /// The customer's owner (sales user).
    owner_id: Option<Uuid>,
    /// Created at or after this instant.
    from: Option<DateTime<Utc>>,
    /// Created before this instant.
    to: Option<DateTime<Utc>>,
}

/// Sales orders, newest first.
#[utoipa::path(get, path = "/sales-orders", tag = "sales", security(("bearer" = ["sales_orders.read"])),
    params(PaginationQuery, OrdersQuery),
    responses((status = 200, body = PageOf<SalesOrderView>), (status = 403, body = ErrorBody)))]
async fn list_orders(
    Authorized(principal, ..): Authorized<perm::SalesOrdersRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<OrdersQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<SalesOrderView>>> {
    let filter = SalesOrderFilter {
        state: query.state,
        customer_id: query.customer_id,
        owner_id: query.owner_id,
        from: query.from,
        to: query.to,
    };
    Ok(Json(ctx.sales().list(&principal, &filter, &page).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesLineBody {
    product_id: Uuid,
    /// Greater than 0, in the product's unit.
    #[schema(value_type = f64, exclusive_minimum = 0)]
    quantity: serde_json::Number,
    /// Minor units of the order's currency per unit.
    #[schema(value_type = i64, minimum = 0)]
    unit_price: Whole<i64>,
}

impl From<SalesLineBody> for OrderLine {
    fn from(l: SalesLineBody) -> Self {
        OrderLine {
            product_id: l.product_id,
            quantity: l.quantity,
            price: l.unit_price.0,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSalesOrderBody {
    /// A customer you can see.
    customer_id: Uuid,
    /// Where the stock is reserved and issued from.
    location_id: Uuid,
    #[schema(pattern = r"^[A-Z]{3}$")]
    currency: String,
    #[schema(max_length = 1000)]
    notes: Option<String>,
    #[schema(min_items = 1, max_items = 500)]
    lines: Vec<SalesLineBody>,
}

/// Draft a sales order. The total is computed from the lines.
#[utoipa::path(post, path = "/sales-orders", tag = "sales", security(("bearer" = ["sales_orders.create"])),
    request_body = CreateSalesOrderBody,
    responses((status = 201, body = SalesOrderView),
        (status = 404, description = "`customers.not_found` (or not yours), `locations.not_found`, `products.not_found`", body = ErrorBody)))]
async fn create_order(
    Authorized(principal, ..): Authorized<perm::SalesOrdersCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateSalesOrderBody>,
) -> ApiResult<(StatusCode, Json<SalesOrderView>)> {
    let new = NewSalesOrder {
        customer_id: body.customer_id,
        location_id: body.location_id,
        currency: body.currency,
        notes: body.notes,
        lines: body.lines.into_iter().map(Into::into).collect(),
    };
    let created = ctx.sales().create(&principal, new, &client).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A sales order with its lines and reservations.
#[utoipa::path(get, path = "/sales-orders/{id}", tag = "sales", security(("bearer" = ["sales_orders.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SalesOrderView), (status = 404, body = ErrorBody)))]
async fn get_order(
    Authorized(principal, ..): Authorized<perm::SalesOrdersRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SalesOrderView>> {
    Ok(Json(ctx.sales().get(&principal, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSalesOrderBody {
    customer_id: Option<Uuid>,
    location_id: Option<Uuid>,
    #[schema(pattern = r"^[A-Z]{3}$")]
    currency: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    notes: Option<Option<String>>,
    /// Replaces every line.
    #[schema(min_items = 1, max_items = 500)]
    lines: Option<Vec<SalesLineBody>>,
}

/// Edit a draft sales order.
#[utoipa::path(patch, path = "/sales-orders/{id}", tag = "sales", security(("bearer" = ["sales_orders.create"])),
    params(("id" = Uuid, Path)), request_body = UpdateSalesOrderBody,
    responses((status = 200, body = SalesOrderView), (status = 404, body = ErrorBody),
        (status = 409, description = "`sales_order.invalid_state` (not a draft)", body = ErrorBody)))]
async fn update_order(
    Authorized(principal, ..): Authorized<perm::SalesOrdersCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<UpdateSalesOrderBody>,
) -> ApiResult<Json<SalesOrderView>> {
    let patch = SalesOrderPatch {
        customer_id: body.customer_id,
        location_id: body.location_id,
        currency: body.currency,
        notes: body.notes,
        lines: body
            .lines
            .map(|lines| lines.into_iter().map(Into::into).collect()),
    };
    Ok(Json(
        ctx.sales().update(&principal, id, patch, &client).await?,
    ))
}

/// Confirm a draft: reserve every line by its product's depletion policy, all or nothing.
#[utoipa::path(post, path = "/sales-orders/{id}/confirm", tag = "sales", security(("bearer" = ["sales_orders.create"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SalesOrderView), (status = 404, body = ErrorBody),
        (status = 409, description = "`sales_order.invalid_state`; `stock.insufficient` with `details.lines[].available`", body = ErrorBody)))]
async fn confirm(
    Authorized(principal, ..): Authorized<perm::SalesOrdersCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SalesOrderView>> {
    Ok(Json(ctx.sales().confirm(&principal, id, &client).await?))
}

/// Fulfil a confirmed or paid order: issue exactly the reserved batches as `sale` movements.
#[utoipa::path(post, path = "/sales-orders/{id}/fulfil", tag = "sales", security(("bearer" = ["sales_orders.fulfil"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The order, with the `sale` movements", body = SalesOrderView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`sales_order.invalid_state` (`details.state`)", body = ErrorBody)))]
async fn fulfil(
    Authorized(principal, ..): Authorized<perm::SalesOrdersFulfil>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SalesOrderView>> {
    Ok(Json(ctx.sales().fulfil(&principal, id, &client).await?))
}

/// Cancel a draft, confirmed or paid order, releasing its reservations.
#[utoipa::path(post, path = "/sales-orders/{id}/cancel", tag = "sales", security(("bearer" = ["sales_orders.create"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SalesOrderView), (status = 404, body = ErrorBody),
        (status = 409, description = "`sales_order.invalid_state` (`details.state`)", body = ErrorBody)))]
async fn cancel(
    Authorized(principal, ..): Authorized<perm::SalesOrdersCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SalesOrderView>> {
    Ok(Json(ctx.sales().cancel(&principal, id, &client).await?))
}

/// The returns of an order, oldest first.
#[utoipa::path(get, path = "/sales-orders/{id}/returns", tag = "sales", security(("bearer" = ["sales_orders.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PageOf<ReturnView>), (status = 404, body = ErrorBody)))]
async fn list_returns(
    Authorized(principal, ..): Authorized<perm::SalesOrdersRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Page<ReturnView>>> {
    Ok(Json(Page {
        data: ctx.sales().returns(&principal, id).await?,
        next_cursor: None,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLineBody {
    /// A line of this order.
    line_id: Uuid,
    /// Greater than 0, in the product's unit; at most what was fulfilled and not yet returned.
    #[schema(value_type = f64, exclusive_minimum = 0)]
    quantity: serde_json::Number,
    /// Put it back into the batch it came from; `false` writes it off.
    restock: bool,
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnBody {
    #[schema(min_items = 1, max_items = 500)]
    lines: Vec<ReturnLineBody>,
}

/// Take goods back from a fulfilled order: into the batch they came from (`return`
/// movements) or written off.
#[utoipa::path(post, path = "/sales-orders/{id}/returns", tag = "sales", security(("bearer" = ["sales_orders.fulfil"])),
    params(("id" = Uuid, Path)), request_body = ReturnBody,
    responses((status = 200, description = "The order, with the `return` movements", body = SalesOrderView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`sales_order.invalid_state` (`details.state`)", body = ErrorBody),
        (status = 422, description = "`sales_order.over_return` (`details.lines`)", body = ErrorBody)))]
async fn create_return(
    Authorized(principal, ..): Authorized<perm::SalesOrdersFulfil>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<ReturnBody>,
) -> ApiResult<Json<SalesOrderView>> {
    let lines = body
        .lines
        .into_iter()
        .map(|l| ReturnLine {
            line_id: l.line_id,
            quantity: l.quantity,
            restock: l.restock,
            reason: l.reason,
        })
        .collect();
    Ok(Json(
        ctx.sales()
            .return_goods(&principal, id, lines, &client)
            .await?,
    ))
}

/// The payments of an order, oldest first.
#[utoipa::path(get, path = "/sales-orders/{id}/payments", tag = "sales", security(("bearer" = ["payments.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PageOf<PaymentView>), (status = 404, body = ErrorBody)))]
async fn list_payments(
    Authorized(principal, ..): Authorized<perm::PaymentsRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Page<PaymentView>>> {
    Ok(Json(Page {
        data: ctx.sales().payments(&principal, id).await?,
        next_cursor: None,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    /// `cash`, `bank_transfer` or `card_terminal`.
    method: PaymentMethod,
    /// Minor units of the order's currency; at most what is still due.
    #[schema(value_type = i64, minimum = 1)]
    amount: Whole<i64>,
    /// The receipt, transfer or terminal slip number.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    reference: Option<String>,
}

/// Record money received by hand; the order becomes `paid` once its total is covered.
#[utoipa::path(post, path = "/sales-orders/{id}/payments", tag = "sales", security(("bearer" = ["payments.create"])),
    params(("id" = Uuid, Path)), request_body = PaymentBody,
    responses((status = 201, body = PaymentView), (status = 404, body = ErrorBody),
        (status = 409, description = "`sales_order.invalid_state`, `payments.active_exists`", body = ErrorBody),
        (status = 422, description = "`payments.exceeds_balance` (`details.balance_due`)", body = ErrorBody)))]
async fn record_payment(
    Authorized(principal, ..): Authorized<perm::PaymentsCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<PaymentBody>,
) -> ApiResult<(StatusCode, Json<PaymentView>)> {
    let input = NewPayment {
        method: body.method,
        amount: body.amount.0,
        reference: body.reference,
    };
    let created = ctx
        .sales()
        .record_payment(&principal, id, input, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}
