//! `/api/v1/categories`, `/api/v1/products`, `/api/v1/locations` and `/api/v1/barcodes/{code}`:
//! the catalogue.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use depot_app::AppContext;
use depot_app::catalog::{
    BarcodeView, CategoryPatch, CategoryView, LocationPatch, LocationView, NewCategory,
    NewLocation, NewProduct, ProductPatch, ProductView,
};
use depot_domain::auth::perm;
use depot_domain::pagination::Page;
use depot_domain::stock::{DepletionPolicy, ProductFilter, ProductStatus, Unit};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Authorized, Client};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, PageOf, Pagination, PaginationQuery, nullable};
use crate::idempotency::idempotent;

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(list_categories))
        .routes(idempotent(routes!(create_category)))
        .routes(routes!(get_category, update_category, delete_category))
        .routes(routes!(list_products))
        .routes(idempotent(routes!(create_product)))
        .routes(routes!(get_product, update_product, delete_product))
        .routes(routes!(list_locations))
        .routes(idempotent(routes!(create_location)))
        .routes(routes!(get_location, update_location, delete_location))
        .routes(routes!(resolve_barcode))
}

// --- categories ---

/// List categories by name.
#[utoipa::path(get, path = "/categories", tag = "catalog", security(("bearer" = ["products.read"])),
    params(PaginationQuery),
    responses((status = 200, body = PageOf<CategoryView>), (status = 403, body = ErrorBody)))]
async fn list_categories(
    Authorized(..): Authorized<perm::ProductsRead>,
    State(ctx): State<AppContext>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<CategoryView>>> {
    Ok(Json(ctx.catalog().list_categories(&page).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCategoryBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    name: String,
    /// Default for the category's products; absent = the configured default.
    depletion_policy: Option<DepletionPolicy>,
}

/// Create a category.
#[utoipa::path(post, path = "/categories", tag = "catalog", security(("bearer" = ["products.manage"])),
    request_body = CreateCategoryBody,
    responses((status = 201, body = CategoryView), (status = 409, description = "`categories.name_taken`", body = ErrorBody)))]
async fn create_category(
    Authorized(actor, ..): Authorized<perm::ProductsManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateCategoryBody>,
) -> ApiResult<(StatusCode, Json<CategoryView>)> {
    let new = NewCategory {
        name: body.name,
        depletion_policy: body.depletion_policy,
    };
    let created = ctx
        .catalog()
        .create_category(actor.actor(), new, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Read a category.
#[utoipa::path(get, path = "/categories/{id}", tag = "catalog", security(("bearer" = ["products.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = CategoryView), (status = 404, body = ErrorBody)))]
async fn get_category(
    Authorized(..): Authorized<perm::ProductsRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<CategoryView>> {
    Ok(Json(ctx.catalog().get_category(id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCategoryBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    name: Option<String>,
    /// `null` returns to the configured default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DepletionPolicy>)]
    depletion_policy: Option<Option<DepletionPolicy>>,
}

/// Edit a category.
#[utoipa::path(patch, path = "/categories/{id}", tag = "catalog", security(("bearer" = ["products.manage"])),
    params(("id" = Uuid, Path)), request_body = UpdateCategoryBody,
    responses((status = 200, body = CategoryView), (status = 404, body = ErrorBody),
        (status = 409, description = "`categories.name_taken`", body = ErrorBody)))]
async fn update_category(
    Authorized(actor, ..): Authorized<perm::ProductsManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<UpdateCategoryBody>,
) -> ApiResult<Json<CategoryView>> {
    let patch = CategoryPatch {
        name: body.name,
        depletion_policy: body.depletion_policy,
    };
    Ok(Json(
        ctx.catalog()
            .update_category(actor.actor(), id, patch, &client)
            .await?,
    ))
}

/// Delete a category that has no products.
#[utoipa::path(delete, path = "/categories/{id}", tag = "catalog", security(("bearer" = ["products.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "`categories.in_use`", body = ErrorBody)))]
async fn delete_category(
    Authorized(actor, ..): Authorized<perm::ProductsManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    ctx.catalog()
        .delete_category(actor.actor(), id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- products ---

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductsQuery {
    /// Case-insensitive part of the SKU, name or barcode (matched literally).
    q: Option<String>,
    category_id: Option<Uuid>,
    status: Option<ProductStatus>,
}

/// List products by SKU (case-insensitively), then id.
#[utoipa::path(get, path = "/products", tag = "catalog", security(("bearer" = ["products.read"])),
    params(PaginationQuery, ProductsQuery),
    responses((status = 200, body = PageOf<ProductView>), (status = 403, body = ErrorBody)))]
async fn list_products(
    Authorized(..): Authorized<perm::ProductsRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<ProductsQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<ProductView>>> {
    let filter = ProductFilter {
        search: query.q.filter(|q| !q.trim().is_empty()),
        category_id: query.category_id,
        status: query.status,
    };
    Ok(Json(ctx.catalog().list_products(&filter, &page).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductBody {
    /// Unique, compared case-insensitively.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")]
    sku: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    name: String,
    /// Countable units (`pcs`, `box`) take whole quantities; measured ones up to 3 decimals.
    unit: Unit,
    category_id: Option<Uuid>,
    /// Unique when set (EAN/UPC digits, or any printable code).
    #[schema(pattern = r"^[!-~]{1,64}$")]
    barcode: Option<String>,
    /// In the product's unit; at or below it a `low_stock` alert opens.
    #[schema(value_type = Option<f64>, minimum = 0)]
    reorder_point: Option<serde_json::Number>,
    #[schema(value_type = Option<f64>, minimum = 0)]
    reorder_quantity: Option<serde_json::Number>,
    /// When true, stock coming in needs a lot and an expiry date.
    #[serde(default)]
    tracks_expiry: bool,
    /// Absent = the category's, else the configured default.
    depletion_policy: Option<DepletionPolicy>,
    #[serde(default = "active")]
    #[schema(default = "active")]
    status: ProductStatus,
}

fn active() -> ProductStatus {
    ProductStatus::Active
}

/// Create a product.
#[utoipa::path(post, path = "/products", tag = "catalog", security(("bearer" = ["products.manage"])),
    request_body = CreateProductBody,
    responses((status = 201, body = ProductView), (status = 404, description = "`categories.not_found`", body = ErrorBody),
        (status = 409, description = "`products.sku_taken`, `products.barcode_taken`", body = ErrorBody)))]
async fn create_product(
    Authorized(actor, ..): Authorized<perm::ProductsManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateProductBody>,
) -> ApiResult<(StatusCode, Json<ProductView>)> {
    let new = NewProduct {
        sku: body.sku,
        name: body.name,
        unit: body.unit,
        category_id: body.category_id,
        barcode: body.barcode,
        reorder_point: body.reorder_point,
        reorder_quantity: body.reorder_quantity,
        tracks_expiry: body.tracks_expiry,
        depletion_policy: body.depletion_policy,
        status: body.status,
    };
    let created = ctx
        .catalog()
        .create_product(actor.actor(), new, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Read a product.
#[utoipa::path(get, path = "/products/{id}", tag = "catalog", security(("bearer" = ["products.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ProductView), (status = 404, body = ErrorBody)))]
async fn get_product(
    Authorized(..): Authorized<perm::ProductsRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ProductView>> {
    Ok(Json(ctx.catalog().get_product(id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProductBody {
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")]
    sku: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    name: Option<String>,
    /// Only while the product has never had stock.
    unit: Option<Unit>,
    /// `null` takes it out of its category.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    category_id: Option<Option<Uuid>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = r"^[!-~]{1,64}$")]
    barcode: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>, minimum = 0)]
    reorder_point: Option<Option<serde_json::Number>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>, minimum = 0)]
    reorder_quantity: Option<Option<serde_json::Number>>,
    tracks_expiry: Option<bool>,
    /// `null` returns to the category's policy.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DepletionPolicy>)]
    depletion_policy: Option<Option<DepletionPolicy>>,
    status: Option<ProductStatus>,
}

/// Edit a product.
#[utoipa::path(patch, path = "/products/{id}", tag = "catalog", security(("bearer" = ["products.manage"])),
    params(("id" = Uuid, Path)), request_body = UpdateProductBody,
    responses((status = 200, body = ProductView), (status = 404, body = ErrorBody),
        (status = 409, description = "`products.sku_taken`, `products.barcode_taken`, `products.in_use` (unit change with stock)", body = ErrorBody)))]
async fn update_product(
    Authorized(actor, ..): Authorized<perm::ProductsManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<UpdateProductBody>,
) -> ApiResult<Json<ProductView>> {
    let patch = ProductPatch {
        sku: body.sku,
        name: body.name,
        unit: body.unit,
        category_id: body.category_id,
        barcode: body.barcode,
        reorder_point: body.reorder_point,
        reorder_quantity: body.reorder_quantity,
        tracks_expiry: body.tracks_expiry,
        depletion_policy: body.depletion_policy,
        status: body.status,
    };
    Ok(Json(
        ctx.catalog()
            .update_product(actor.actor(), id, patch, &client)
            .await?,
    ))
}

/// Delete a product that never had stock (archive one that had).
#[utoipa::path(delete, path = "/products/{id}", tag = "catalog", security(("bearer" = ["products.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "`products.in_use`", body = ErrorBody)))]
async fn delete_product(
    Authorized(actor, ..): Authorized<perm::ProductsManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    ctx.catalog()
        .delete_product(actor.actor(), id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- locations ---

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LocationsQuery {
    active: Option<bool>,
}

/// List locations by code (case-insensitively), then id.
#[utoipa::path(get, path = "/locations", tag = "catalog", security(("bearer" = ["products.read"])),
    params(PaginationQuery, LocationsQuery),
    responses((status = 200, body = PageOf<LocationView>), (status = 403, body = ErrorBody)))]
async fn list_locations(
    Authorized(..): Authorized<perm::ProductsRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<LocationsQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<LocationView>>> {
    Ok(Json(
        ctx.catalog().list_locations(query.active, &page).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLocationBody {
    /// Unique, compared case-insensitively.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
    code: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    name: String,
    #[schema(max_length = 1000)]
    address: Option<String>,
    /// An inactive location takes no new stock.
    #[serde(default = "yes")]
    #[schema(default = true)]
    active: bool,
}

fn yes() -> bool {
    true
}

/// Create a location.
#[utoipa::path(post, path = "/locations", tag = "catalog", security(("bearer" = ["warehouses.manage"])),
    request_body = CreateLocationBody,
    responses((status = 201, body = LocationView), (status = 409, description = "`locations.code_taken`", body = ErrorBody)))]
async fn create_location(
    Authorized(actor, ..): Authorized<perm::WarehousesManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateLocationBody>,
) -> ApiResult<(StatusCode, Json<LocationView>)> {
    let new = NewLocation {
        code: body.code,
        name: body.name,
        address: body.address,
        active: body.active,
    };
    let created = ctx
        .catalog()
        .create_location(actor.actor(), new, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Read a location.
#[utoipa::path(get, path = "/locations/{id}", tag = "catalog", security(("bearer" = ["products.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = LocationView), (status = 404, body = ErrorBody)))]
async fn get_location(
    Authorized(..): Authorized<perm::ProductsRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<LocationView>> {
    Ok(Json(ctx.catalog().get_location(id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLocationBody {
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
    code: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    address: Option<Option<String>>,
    active: Option<bool>,
}

/// Edit a location.
#[utoipa::path(patch, path = "/locations/{id}", tag = "catalog", security(("bearer" = ["warehouses.manage"])),
    params(("id" = Uuid, Path)), request_body = UpdateLocationBody,
    responses((status = 200, body = LocationView), (status = 404, body = ErrorBody),
        (status = 409, description = "`locations.code_taken`", body = ErrorBody)))]
async fn update_location(
    Authorized(actor, ..): Authorized<perm::WarehousesManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<UpdateLocationBody>,
) -> ApiResult<Json<LocationView>> {
    let patch = LocationPatch {
        code: body.code,
        name: body.name,
        address: body.address,
        active: body.active,
    };
    Ok(Json(
        ctx.catalog()
            .update_location(actor.actor(), id, patch, &client)
            .await?,
    ))
}

/// Delete a location that never held stock (deactivate one that did).
#[utoipa::path(delete, path = "/locations/{id}", tag = "catalog", security(("bearer" = ["warehouses.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "`locations.in_use`", body = ErrorBody)))]
async fn delete_location(
    Authorized(actor, ..): Authorized<perm::WarehousesManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    ctx.catalog()
        .delete_location(actor.actor(), id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- barcodes ---

/// Resolve a scanned code: a product's barcode, or a GS1 element string — AIs 01 (GTIN),
/// 10 (lot), 17 (expiry, YYMMDD), 21 (serial), in the `(01)…(17)…` form or raw with FNC1/GS
/// separators — into the product, lot and expiry.
#[utoipa::path(get, path = "/barcodes/{code}", tag = "catalog", security(("bearer" = ["products.read"])),
    params(("code" = String, Path, description = "The scanned text, percent-encoded")),
    responses((status = 200, body = BarcodeView),
        (status = 404, description = "`barcodes.not_found`", body = ErrorBody),
        (status = 422, description = "`barcodes.invalid`: a malformed GS1 element string", body = ErrorBody)))]
async fn resolve_barcode(
    Authorized(..): Authorized<perm::ProductsRead>,
    State(ctx): State<AppContext>,
    Path(code): Path<String>,
) -> ApiResult<Json<BarcodeView>> {
    Ok(Json(ctx.catalog().resolve_barcode(&code).await?))
}
