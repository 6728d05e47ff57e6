//! `/api/v1/reports` (report jobs and their exports) and `/api/v1/dashboard/summary`.
//!
//! A job is its requester's: anyone else gets 404 unless they hold `reports.manage_all`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use depot_app::AppContext;
use depot_app::auth::principal::Principal;
use depot_app::dashboard::DashboardSummary;
use depot_app::reports::{Download, ReportRequest, ReportView};
use depot_domain::auth::{Permission, perm};
use depot_domain::pagination::Page;
use depot_domain::report::{ReportFormat, ReportType};
use depot_domain::{AppError, FieldError};
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
        .routes(idempotent(routes!(create_report)))
        .routes(routes!(list_reports))
        .routes(routes!(get_report))
        .routes(routes!(cancel_report))
        .routes(routes!(download_report))
        .routes(routes!(dashboard_summary))
}

/// Everyone's jobs for a holder of `reports.manage_all`, else only the caller's.
fn viewer(me: &Principal) -> Option<Uuid> {
    (!me.has(Permission::ReportsManageAll)).then_some(me.user_id)
}

/// A report to run.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    /// `stock_on_hand`, `stock_valuation`, `movements`, `expiring_batches`,
    /// `purchase_orders` or `sales_summary`.
    #[serde(rename = "type")]
    #[schema(value_type = ReportType)]
    kind: String,
    /// The report's parameters (dates as `YYYY-MM-DD` or RFC 3339):
    /// `stock_on_hand {as_of?, location_id?, category_id?}`,
    /// `stock_valuation {as_of?, group_by?: product|category|location}`,
    /// `movements {from, to, product_id?, location_id?, kind?}`,
    /// `expiring_batches {within_days}`, `purchase_orders {from?, to?, state?}`,
    /// `sales_summary {from?, to?, group_by?: day|product|customer}`. A range may span at
    /// most `report_max_span_days` (366 by default); an open one is the latest such span.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    params: serde_json::Value,
    /// `csv` (the default).
    #[schema(value_type = Option<ReportFormat>)]
    format: Option<String>,
}

/// Request a report.
///
/// Answers 202 with a queued job; a worker writes its CSV, and `GET /reports/{id}` (or the
/// caller's WebSocket: `report.progress`, `report.updated`) follows it. The same request by the
/// same user while one is queued or running answers 200 with that job. Customers' email,
/// phone and address appear only for a holder of `reports.pii` (decided now, kept on the job).
#[utoipa::path(post, path = "/reports", tag = "reports", security(("bearer" = ["reports.read"])),
    request_body = NewReport,
    responses((status = 202, description = "Queued", body = ReportView),
        (status = 200, description = "The identical job already queued or running", body = ReportView),
        (status = 422, description = "`validation.failed`: unknown type, bad parameters (each named `params.<key>`)", body = ErrorBody)))]
async fn create_report(
    Authorized(me, ..): Authorized<perm::ReportsRead>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<NewReport>,
) -> ApiResult<Response> {
    let request = ReportRequest {
        kind: body.kind,
        params: body.params,
        format: body.format,
    };
    let (job, created) = ctx
        .reports()
        .request(me.user_id, me.has(Permission::ReportsPii), request, &client)
        .await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(job)).into_response())
}

/// Report jobs, newest first: yours, or everyone's with `reports.manage_all`.
#[utoipa::path(get, path = "/reports", tag = "reports", security(("bearer" = ["reports.read"])),
    params(PaginationQuery),
    responses((status = 200, body = PageOf<ReportView>)))]
async fn list_reports(
    Authorized(me, ..): Authorized<perm::ReportsRead>,
    State(ctx): State<AppContext>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<ReportView>>> {
    Ok(Json(ctx.reports().list(viewer(&me), &page).await?))
}

/// One report job: its status, progress, rows, bytes, error and timings.
#[utoipa::path(get, path = "/reports/{id}", tag = "reports", security(("bearer" = ["reports.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ReportView),
        (status = 404, description = "`reports.not_found` (or another user's job)", body = ErrorBody)))]
async fn get_report(
    Authorized(me, ..): Authorized<perm::ReportsRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ReportView>> {
    Ok(Json(ctx.reports().get(viewer(&me), id).await?))
}

/// Cancel a queued or running report; a running one stops within about a second and leaves
/// no export.
#[utoipa::path(post, path = "/reports/{id}/cancel", tag = "reports", security(("bearer" = ["reports.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ReportView),
        (status = 404, description = "`reports.not_found`", body = ErrorBody),
        (status = 409, description = "`reports.not_cancellable`: it has ended (`details.status`)", body = ErrorBody)))]
async fn cancel_report(
    Authorized(me, ..): Authorized<perm::ReportsRead>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ReportView>> {
    let actor = depot_domain::Actor::User(me.user_id);
    Ok(Json(
        ctx.reports()
            .cancel(actor, viewer(&me), id, &client)
            .await?,
    ))
}

/// Download a succeeded report's CSV: streamed (local storage), or a redirect (303) to a
/// short-lived presigned URL (S3).
#[utoipa::path(get, path = "/reports/{id}/download", tag = "reports", security(("bearer" = ["reports.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The CSV", content_type = "text/csv", body = String),
        (status = 303, description = "The export's presigned URL (`Location`)"),
        (status = 404, description = "`reports.not_found`", body = ErrorBody),
        (status = 409, description = "`reports.not_ready`: no export (`details.status`)", body = ErrorBody)))]
async fn download_report(
    Authorized(me, ..): Authorized<perm::ReportsRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    match ctx.reports().download(viewer(&me), id).await? {
        Download::Redirect(url) => Ok(Redirect::to(&url).into_response()),
        Download::Stream {
            size,
            file_name,
            body,
        } => {
            let body = Body::from_stream(futures::StreamExt::map(body, |chunk| {
                chunk.map_err(|e| std::io::Error::other(e.to_string()))
            }));
            let mut response = body.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            if let Ok(disposition) =
                HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
            {
                headers.insert(header::CONTENT_DISPOSITION, disposition);
            }
            Ok(response)
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Count batches expiring within this many days (the expiry warning by default).
    #[param(minimum = 0, maximum = 3650)]
    expiring_days: Option<u32>,
}

/// The dashboard: stock value, low and out-of-stock levels, batches expiring soon, purchase
/// orders under way, sales today and this month.
///
/// Each figure is cached and dropped by the writes that change it, so it is current on the
/// next request after a change (on every instance, with Redis).
#[utoipa::path(get, path = "/dashboard/summary", tag = "reports", security(("bearer" = ["reports.read"])),
    params(SummaryQuery),
    responses((status = 200, body = DashboardSummary)))]
async fn dashboard_summary(
    Authorized(..): Authorized<perm::ReportsRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<SummaryQuery>,
) -> ApiResult<Json<DashboardSummary>> {
    if let Some(days) = query.expiring_days
        && i64::from(days) > depot_domain::report::MAX_WITHIN_DAYS
    {
        return Err(AppError::validation(vec![FieldError::new(
            "expiring_days",
            "out_of_range",
            format!("must be at most {}", depot_domain::report::MAX_WITHIN_DAYS),
        )])
        .into());
    }
    Ok(Json(ctx.dashboard().summary(query.expiring_days).await?))
}
