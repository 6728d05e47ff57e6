//! `/api/v1/suppliers` and `/api/v1/purchase-orders`: suppliers, purchase orders through their
//! states (one endpoint per transition), receiving goods into batches, receipt history.
//! Every POST honours `Idempotency-Key`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use depot_app::AppContext;
use depot_app::purchasing::{
    NewPurchaseOrder, NewReceipt, NewSupplier, OrderLine, PurchaseOrderPatch, PurchaseOrderView,
    ReceiptLine, ReceiptView, SupplierPatch, SupplierView,
};
use depot_domain::auth::perm;
use depot_domain::pagination::Page;
use depot_domain::trade::{PoState, PurchaseOrderFilter, SupplierFilter};
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
        .routes(routes!(list_suppliers))
        .routes(idempotent(routes!(create_supplier)))
        .routes(routes!(get_supplier, update_supplier, delete_supplier))
        .routes(routes!(list_orders))
        .routes(idempotent(routes!(create_order)))
        .routes(routes!(get_order, update_order))
        .routes(idempotent(routes!(submit)))
        .routes(idempotent(routes!(approve)))
        .routes(idempotent(routes!(send)))
        .routes(idempotent(routes!(receive)))
        .routes(idempotent(routes!(cancel)))
        .routes(idempotent(routes!(close)))
        .routes(routes!(list_receipts))
}

// --- suppliers ---

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuppliersQuery {
    /// Part of the name or email (case-insensitive, literal).
    q: Option<String>,
    active: Option<bool>,
}

/// Suppliers by name, then id.
#[utoipa::path(get, path = "/suppliers", tag = "purchasing", security(("bearer" = ["purchase_orders.read"])),
    params(PaginationQuery, SuppliersQuery),
    responses((status = 200, body = PageOf<SupplierView>), (status = 403, body = ErrorBody)))]
async fn list_suppliers(
    Authorized(..): Authorized<perm::PurchaseOrdersRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<SuppliersQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<SupplierView>>> {
    let filter = SupplierFilter {
        search: query.q.filter(|q| !q.is_empty()),
        active: query.active,
    };
    Ok(Json(ctx.purchasing().list_suppliers(&filter, &page).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSupplierBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    name: String,
    #[schema(
        max_length = 254,
        pattern = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
    )]
    email: Option<String>,
    /// E.164: `+` and 8 to 15 digits.
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    phone: Option<String>,
    #[schema(max_length = 1000)]
    address: Option<String>,
    /// ISO 4217; purchase orders default to it.
    #[schema(pattern = r"^[A-Z]{3}$")]
    currency: String,
    #[schema(value_type = Option<i32>, minimum = 0, maximum = 3650)]
    lead_time_days: Option<Whole<i32>>,
    /// An inactive supplier takes no new purchase orders.
    #[serde(default = "yes")]
    #[schema(default = true)]
    active: bool,
}

fn yes() -> bool {
    true
}

/// Create a supplier.
#[utoipa::path(post, path = "/suppliers", tag = "purchasing", security(("bearer" = ["suppliers.manage"])),
    request_body = CreateSupplierBody,
    responses((status = 201, body = SupplierView), (status = 422, body = ErrorBody)))]
async fn create_supplier(
    Authorized(actor, ..): Authorized<perm::SuppliersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateSupplierBody>,
) -> ApiResult<(StatusCode, Json<SupplierView>)> {
    let new = NewSupplier {
        name: body.name,
        email: body.email,
        phone: body.phone,
        address: body.address,
        currency: body.currency,
        lead_time_days: body.lead_time_days.map(|d| d.0),
        active: body.active,
    };
    let created = ctx
        .purchasing()
        .create_supplier(actor.actor(), new, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A supplier.
#[utoipa::path(get, path = "/suppliers/{id}", tag = "purchasing", security(("bearer" = ["purchase_orders.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SupplierView), (status = 404, body = ErrorBody)))]
async fn get_supplier(
    Authorized(..): Authorized<perm::PurchaseOrdersRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SupplierView>> {
    Ok(Json(ctx.purchasing().get_supplier(id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSupplierBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 254, pattern = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = r"^\+[1-9][0-9]{7,14}$")]
    phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    address: Option<Option<String>>,
    #[schema(pattern = r"^[A-Z]{3}$")]
    currency: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>, minimum = 0, maximum = 3650)]
    lead_time_days: Option<Option<Whole<i32>>>,
    active: Option<bool>,
}

/// Change a supplier.
#[utoipa::path(patch, path = "/suppliers/{id}", tag = "purchasing", security(("bearer" = ["suppliers.manage"])),
    params(("id" = Uuid, Path)), request_body = UpdateSupplierBody,
    responses((status = 200, body = SupplierView), (status = 404, body = ErrorBody)))]
async fn update_supplier(
    Authorized(actor, ..): Authorized<perm::SuppliersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<UpdateSupplierBody>,
) -> ApiResult<Json<SupplierView>> {
    let patch = SupplierPatch {
        name: body.name,
        email: body.email,
        phone: body.phone,
        address: body.address,
        currency: body.currency,
        lead_time_days: body.lead_time_days.map(|d| d.map(|d| d.0)),
        active: body.active,
    };
    Ok(Json(
        ctx.purchasing()
            .update_supplier(actor.actor(), id, patch, &client)
            .await?,
    ))
}

/// Delete a supplier no purchase order names.
#[utoipa::path(delete, path = "/suppliers/{id}", tag = "purchasing", security(("bearer" = ["suppliers.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "`suppliers.in_use`", body = ErrorBody)))]
async fn delete_supplier(
    Authorized(actor, ..): Authorized<perm::SuppliersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    ctx.purchasing()
        .delete_supplier(actor.actor(), id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- purchase orders ---

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrdersQuery {
    state: Option<PoState>,
    supplier_id: Option<Uuid>,
    /// Created at or after this instant.
    from: Option<DateTime<Utc>>,
    /// Created before this instant.
    to: Option<DateTime<Utc>>,
}

/// Purchase orders, newest first.
#[utoipa::path(get, path = "/purchase-orders", tag = "purchasing", security(("bearer" = ["purchase_orders.read"])),
    params(PaginationQuery, OrdersQuery),
    responses((status = 200, body = PageOf<PurchaseOrderView>), (status = 403, body = ErrorBody)))]
async fn list_orders(
    Authorized(..): Authorized<perm::PurchaseOrdersRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<OrdersQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<PurchaseOrderView>>> {
    let filter = PurchaseOrderFilter {
        state: query.state,
        supplier_id: query.supplier_id,
        from: query.from,
        to: query.to,
    };
    Ok(Json(ctx.purchasing().list_orders(&filter, &page).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineBody {
    product_id: Uuid,
    /// Greater than 0, in the product's unit.
    #[schema(value_type = f64, exclusive_minimum = 0)]
    quantity: serde_json::Number,
    /// Minor units of the order's currency per unit.
    #[schema(value_type = i64, minimum = 0)]
    unit_cost: Whole<i64>,
}

impl From<OrderLineBody> for OrderLine {
    fn from(l: OrderLineBody) -> Self {
        OrderLine {
            product_id: l.product_id,
            quantity: l.quantity,
            price: l.unit_cost.0,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePurchaseOrderBody {
    supplier_id: Uuid,
    /// ISO 4217; defaults to the supplier's.
    #[schema(pattern = r"^[A-Z]{3}$")]
    currency: Option<String>,
    expected_at: Option<NaiveDate>,
    #[schema(max_length = 1000)]
    notes: Option<String>,
    #[schema(min_items = 1, max_items = 500)]
    lines: Vec<OrderLineBody>,
}

/// Draft a purchase order. The total is computed from the lines.
#[utoipa::path(post, path = "/purchase-orders", tag = "purchasing", security(("bearer" = ["purchase_orders.create"])),
    request_body = CreatePurchaseOrderBody,
    responses((status = 201, body = PurchaseOrderView),
        (status = 404, description = "`suppliers.not_found`, `products.not_found`", body = ErrorBody),
        (status = 409, description = "`suppliers.inactive`, `products.archived`", body = ErrorBody)))]
async fn create_order(
    Authorized(actor, ..): Authorized<perm::PurchaseOrdersCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreatePurchaseOrderBody>,
) -> ApiResult<(StatusCode, Json<PurchaseOrderView>)> {
    let new = NewPurchaseOrder {
        supplier_id: body.supplier_id,
        currency: body.currency,
        expected_at: body.expected_at,
        notes: body.notes,
        lines: body.lines.into_iter().map(Into::into).collect(),
    };
    let created = ctx
        .purchasing()
        .create_order(actor.actor(), new, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A purchase order with its lines.
#[utoipa::path(get, path = "/purchase-orders/{id}", tag = "purchasing", security(("bearer" = ["purchase_orders.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PurchaseOrderView), (status = 404, body = ErrorBody)))]
async fn get_order(
    Authorized(..): Authorized<perm::PurchaseOrdersRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PurchaseOrderView>> {
    Ok(Json(ctx.purchasing().get_order(id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePurchaseOrderBody {
    supplier_id: Option<Uuid>,
    #[schema(pattern = r"^[A-Z]{3}$")]
    currency: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<NaiveDate>)]
    expected_at: Option<Option<NaiveDate>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    notes: Option<Option<String>>,
    /// Replaces every line.
    #[schema(min_items = 1, max_items = 500)]
    lines: Option<Vec<OrderLineBody>>,
}

/// Edit a draft purchase order.
#[utoipa::path(patch, path = "/purchase-orders/{id}", tag = "purchasing", security(("bearer" = ["purchase_orders.create"])),
    params(("id" = Uuid, Path)), request_body = UpdatePurchaseOrderBody,
    responses((status = 200, body = PurchaseOrderView), (status = 404, body = ErrorBody),
        (status = 409, description = "`purchase_order.invalid_state` (not a draft)", body = ErrorBody)))]
async fn update_order(
    Authorized(actor, ..): Authorized<perm::PurchaseOrdersCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<UpdatePurchaseOrderBody>,
) -> ApiResult<Json<PurchaseOrderView>> {
    let patch = PurchaseOrderPatch {
        supplier_id: body.supplier_id,
        currency: body.currency,
        expected_at: body.expected_at,
        notes: body.notes,
        lines: body
            .lines
            .map(|lines| lines.into_iter().map(Into::into).collect()),
    };
    Ok(Json(
        ctx.purchasing()
            .update_order(actor.actor(), id, patch, &client)
            .await?,
    ))
}

/// Submit a draft for approval.
#[utoipa::path(post, path = "/purchase-orders/{id}/submit", tag = "purchasing", security(("bearer" = ["purchase_orders.create"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PurchaseOrderView), (status = 404, body = ErrorBody),
        (status = 409, description = "`purchase_order.invalid_state` (`details.state`)", body = ErrorBody)))]
async fn submit(
    Authorized(actor, ..): Authorized<perm::PurchaseOrdersCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PurchaseOrderView>> {
    Ok(Json(
        ctx.purchasing().submit(actor.actor(), id, &client).await?,
    ))
}

/// Approve a submitted order (never its creator).
#[utoipa::path(post, path = "/purchase-orders/{id}/approve", tag = "purchasing", security(("bearer" = ["purchase_orders.approve"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PurchaseOrderView),
        (status = 403, description = "`purchase_order.self_approval`", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`purchase_order.invalid_state` (`details.state`)", body = ErrorBody)))]
async fn approve(
    Authorized(actor, ..): Authorized<perm::PurchaseOrdersApprove>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PurchaseOrderView>> {
    Ok(Json(
        ctx.purchasing().approve(actor.actor(), id, &client).await?,
    ))
}

/// Send an approved order to the supplier: an email with the lines, and the lines as CSV.
#[utoipa::path(post, path = "/purchase-orders/{id}/send", tag = "purchasing", security(("bearer" = ["purchase_orders.create"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PurchaseOrderView), (status = 404, body = ErrorBody),
        (status = 409, description = "`purchase_order.invalid_state`, `purchase_order.supplier_email_missing`", body = ErrorBody)))]
async fn send(
    Authorized(actor, ..): Authorized<perm::PurchaseOrdersCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PurchaseOrderView>> {
    Ok(Json(
        ctx.purchasing().send(actor.actor(), id, &client).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptLineBody {
    /// A line of this purchase order.
    line_id: Uuid,
    /// Greater than 0, in the product's unit.
    #[schema(value_type = f64, exclusive_minimum = 0)]
    quantity: serde_json::Number,
    /// Required for products that track expiry.
    #[schema(
        max_length = 64,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    lot: Option<String>,
    /// Required for products that track expiry.
    expiry: Option<NaiveDate>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveBody {
    location_id: Uuid,
    #[schema(min_items = 1, max_items = 500)]
    lines: Vec<ReceiptLineBody>,
}

/// Receive goods: batches at each line's unit cost, `receipt` movements referencing the order,
/// received quantities and the order's state, all at once.
#[utoipa::path(post, path = "/purchase-orders/{id}/receive", tag = "purchasing", security(("bearer" = ["purchase_orders.receive"])),
    params(("id" = Uuid, Path)), request_body = ReceiveBody,
    responses((status = 200, description = "The order, with `receipt` (its lines and movements)", body = PurchaseOrderView),
        (status = 404, description = "`purchase_order.not_found`, `locations.not_found`", body = ErrorBody),
        (status = 409, description = "`purchase_order.invalid_state`, `locations.inactive`, `products.archived`", body = ErrorBody),
        (status = 422, description = "`purchase_order.over_receipt` (`details.lines`), lot/expiry required", body = ErrorBody)))]
async fn receive(
    Authorized(actor, ..): Authorized<perm::PurchaseOrdersReceive>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<ReceiveBody>,
) -> ApiResult<Json<PurchaseOrderView>> {
    let input = NewReceipt {
        location_id: body.location_id,
        lines: body
            .lines
            .into_iter()
            .map(|l| ReceiptLine {
                line_id: l.line_id,
                quantity: l.quantity,
                lot: l.lot,
                expiry: l.expiry,
            })
            .collect(),
    };
    Ok(Json(
        ctx.purchasing()
            .receive(actor.actor(), id, input, &client)
            .await?,
    ))
}

/// Cancel a draft, submitted or approved order.
#[utoipa::path(post, path = "/purchase-orders/{id}/cancel", tag = "purchasing", security(("bearer" = ["purchase_orders.create"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PurchaseOrderView), (status = 404, body = ErrorBody),
        (status = 409, description = "`purchase_order.invalid_state` (`details.state`)", body = ErrorBody)))]
async fn cancel(
    Authorized(actor, ..): Authorized<perm::PurchaseOrdersCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PurchaseOrderView>> {
    Ok(Json(
        ctx.purchasing().cancel(actor.actor(), id, &client).await?,
    ))
}

/// Close a received (or partially received) order: nothing more will come.
#[utoipa::path(post, path = "/purchase-orders/{id}/close", tag = "purchasing", security(("bearer" = ["purchase_orders.create"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PurchaseOrderView), (status = 404, body = ErrorBody),
        (status = 409, description = "`purchase_order.invalid_state` (`details.state`)", body = ErrorBody)))]
async fn close(
    Authorized(actor, ..): Authorized<perm::PurchaseOrdersCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PurchaseOrderView>> {
    Ok(Json(
        ctx.purchasing().close(actor.actor(), id, &client).await?,
    ))
}

/// The receipts posted against an order, oldest first.
#[utoipa::path(get, path = "/purchase-orders/{id}/receipts", tag = "purchasing", security(("bearer" = ["purchase_orders.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PageOf<ReceiptView>), (status = 404, body = ErrorBody)))]
async fn list_receipts(
    Authorized(..): Authorized<perm::PurchaseOrdersRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Page<ReceiptView>>> {
    Ok(Json(Page {
        data: ctx.purchasing().receipts(id).await?,
        next_cursor: None,
    }))
}
