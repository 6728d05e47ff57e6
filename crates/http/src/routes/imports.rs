//! `/api/v1/imports` and `/api/v1/exports/{kind}.csv`: bulk CSV in and out.
//!
//! What a caller needs depends on the kind of file (`products.manage` for products,
//! `warehouses.manage` for locations, `stock.adjust` for stock; `products.read` /
//! `stock.read` to export), so these routes take any signed-in user and check the kind's
//! permission first. Imports are their submitter's: anyone else gets 404.

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use depot_app::AppContext;
use depot_app::imports::{ImportRequest, ImportView, Submitted};
use depot_domain::import::{ExportKind, ImportKind, ImportMode};
use depot_domain::pagination::Page;
use depot_domain::{AppError, ErrorCode};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Authenticated, Client};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiQuery, PageOf, Pagination, PaginationQuery};
use crate::idempotency::idempotent;

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(unlimited(idempotent(routes!(create_import))))
        .routes(routes!(list_imports))
        .routes(routes!(get_import))
        .routes(routes!(export_csv))
}

/// Lifts the JSON body limit from a route that reads its body itself (under
/// `import_max_bytes`).
fn unlimited(route: UtoipaMethodRouter<AppContext>) -> UtoipaMethodRouter<AppContext> {
    let (schemas, paths, method_router) = route;
    (
        schemas,
        paths,
        method_router.layer(DefaultBodyLimit::disable()),
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// What the file holds.
    kind: ImportKind,
    /// `validate` (the default) checks every row and writes nothing; `apply` writes every
    /// row or none.
    mode: Option<ImportMode>,
    /// Opening stock: count the levels that already hold stock (`count` movements) instead of
    /// refusing them.
    replace: Option<bool>,
    /// A name to remember the file by.
    #[param(max_length = 200)]
    file_name: Option<String>,
}

/// A CSV file as a form upload: the field `file`, nothing else.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ImportUpload {
    /// The CSV file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Most characters of a remembered file name.
const FILE_NAME_MAX: usize = 200;

/// Import a CSV file: `products`, `locations`, `opening_stock` or `stock_counts`.
///
/// The body is the file (`Content-Type: text/csv`, so `curl --data-binary @file.csv` works)
/// or a form upload with the field `file`. UTF-8 with or without a byte-order mark; `,` or `;`
/// between fields; quoted fields. The columns are the API's field names (products: `sku`,
/// `name`, `unit`, `category_id` or `category` (by name), `barcode`, `reorder_point`,
/// `reorder_quantity`, `tracks_expiry`, `depletion_policy`, `status`; locations: `code`, `name`,
/// `address`, `active`; stock: `sku`, `location_code`, `quantity`, `lot`, `expiry`,
/// `unit_cost`, `currency`, `received_at`); an unknown column is refused by name.
///
/// Every row is checked and every error answered at once (`errors[]`: row — the header is
/// row 1 —, column, code, message). `apply` writes all rows or none (422
/// `imports.invalid_rows` with the job in `details`); applying the same file again changes
/// nothing. A file over `import_sync_max_bytes` is answered 202 and runs as a background job:
/// poll `GET /imports/{id}`.
#[utoipa::path(post, path = "/imports", tag = "imports", security(("bearer" = [])),
    params(ImportQuery),
    request_body(content((String = "text/csv"), (ImportUpload = "multipart/form-data"))),
    responses((status = 200, description = "Validated, or applied", body = ImportView),
        (status = 202, description = "Queued: the file runs as a background job", body = ImportView),
        (status = 403, description = "`auth.forbidden`: the kind's permission is missing", body = ErrorBody),
        (status = 422, description = "`imports.invalid_rows`: nothing was written", body = ErrorBody)))]
async fn create_import(
    Authenticated(me): Authenticated,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiQuery(query): ApiQuery<ImportQuery>,
    request: Request,
) -> ApiResult<Response> {
    me.require(query.kind.permission())?;
    let (file_name, content) = read_file(&ctx, request).await?;
    // A blank name is no name.
    let file_name = query
        .file_name
        .filter(|n| !n.trim().is_empty())
        .or(file_name.filter(|n| !n.trim().is_empty()));
    if let Some(name) = file_name.as_deref() {
        let mut v = depot_domain::Validator::new();
        v.line("file_name", name, 1, FILE_NAME_MAX);
        v.finish()?;
    }
    let submitted = ctx
        .imports()
        .submit(
            me.actor(),
            ImportRequest {
                kind: query.kind,
                mode: query.mode.unwrap_or(ImportMode::Validate),
                replace: query.replace.unwrap_or(false),
                file_name,
                content,
            },
            &client,
            false,
        )
        .await?;
    Ok(match submitted {
        Submitted::Finished(view) => {
            if let Some(rejection) = view.rejection() {
                return Err(rejection.into());
            }
            (StatusCode::OK, Json(view)).into_response()
        }
        Submitted::Queued(view) => (StatusCode::ACCEPTED, Json(view)).into_response(),
    })
}

fn too_large() -> ApiError {
    ApiError(AppError::new(
        ErrorCode::RequestTooLarge,
        "the file is larger than import_max_bytes",
    ))
}

fn unreadable(reason: impl std::fmt::Display) -> ApiError {
    ApiError(
        AppError::new(
            ErrorCode::RequestUnreadableBody,
            "the request body could not be read",
        )
        .with_details(serde_json::json!({ "reason": reason.to_string() })),
    )
}

/// The uploaded file (and its name, from a form): the body itself, or the form's `file` field.
async fn read_file(
    ctx: &AppContext,
    request: Request,
) -> Result<(Option<String>, Vec<u8>), ApiError> {
    let limit = ctx.settings().import_max_bytes;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    match essence {
        "multipart/form-data" => {
            let mut form = Multipart::from_request(request, &())
                .await
                .map_err(unreadable)?;
            let mut found = None;
            while let Some(mut field) = form.next_field().await.map_err(unreadable)? {
                if field.name() != Some("file") || found.is_some() {
                    // As a JSON body's unknown field: refused by name.
                    let name = field.name().unwrap_or_default().to_owned();
                    return Err(ApiError(AppError::validation(vec![
                        depot_domain::FieldError::new(
                            name,
                            "unknown_field",
                            "the form takes one field, `file`",
                        ),
                    ])));
                }
                let name = field.file_name().map(str::to_owned);
                let mut content = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                    if content.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    content.extend_from_slice(&chunk);
                }
                found = Some((name, content));
            }
            found.ok_or_else(|| {
                ApiError(AppError::validation(vec![depot_domain::FieldError::new(
                    "file",
                    "required",
                    "the form has no file field",
                )]))
            })
        }
        "text/csv" | "application/csv" | "text/plain" | "application/octet-stream" => {
            let body: Body = request.into_body();
            let content = axum::body::to_bytes(body, limit)
                .await
                .map_err(|_| too_large())?;
            Ok((None, Vec::from(content)))
        }
        _ => Err(ApiError(AppError::new(
            ErrorCode::RequestUnsupportedMediaType,
            "send the file as text/csv, or as the field `file` of multipart/form-data",
        ))),
    }
}

/// Your imports, newest first.
#[utoipa::path(get, path = "/imports", tag = "imports", security(("bearer" = [])),
    params(PaginationQuery),
    responses((status = 200, body = PageOf<ImportView>)))]
async fn list_imports(
    Authenticated(me): Authenticated,
    State(ctx): State<AppContext>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<ImportView>>> {
    Ok(Json(ctx.imports().list(Some(me.user_id), &page).await?))
}

/// One of your imports: its status, progress and every error.
#[utoipa::path(get, path = "/imports/{id}", tag = "imports", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ImportView), (status = 404, description = "`imports.not_found`", body = ErrorBody)))]
async fn get_import(
    Authenticated(me): Authenticated,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ImportView>> {
    Ok(Json(ctx.imports().get(Some(me.user_id), id).await?))
}

/// Export `products`, `locations`, `batches` (open ones) or `levels` as CSV, streamed.
///
/// The columns are the ones the import of the same kind takes (`batches` →
/// `opening_stock` and `stock_counts`), so export → edit → import round-trips; `levels`
/// (`sku`, `location_code`, `on_hand`, `reserved`, `available`, `reorder_point`) is a summary.
/// Needs `products.read` (products, locations) or `stock.read` (batches, levels).
#[utoipa::path(get, path = "/exports/{file}", tag = "imports", security(("bearer" = [])),
    params(("file" = String, Path, description = "`products.csv`, `locations.csv`, `batches.csv` or `levels.csv`",
        pattern = r"^(products|locations|batches|levels)\.csv$")),
    responses((status = 200, description = "The CSV", content_type = "text/csv", body = String),
        (status = 404, description = "`route.not_found`: no such export", body = ErrorBody)))]
async fn export_csv(
    Authenticated(me): Authenticated,
    State(ctx): State<AppContext>,
    Path(file): Path<String>,
) -> ApiResult<Response> {
    let kind = file
        .strip_suffix(".csv")
        .and_then(ExportKind::parse)
        .ok_or_else(|| {
            AppError::new(
                ErrorCode::RouteNotFound,
                "no such export: products.csv, locations.csv, batches.csv or levels.csv",
            )
        })?;
    me.require(kind.permission())?;
    let body = Body::from_stream(futures::StreamExt::map(
        ctx.exports().stream(kind),
        |chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())),
    ));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{kind}.csv\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
