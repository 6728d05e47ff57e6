//! `/api/v1/payments`: payments of sales orders — a gateway session (SSLCommerz) or a manual
//! payment recorded by staff — their refunds, the review of held ones, and the gateway's
//! callbacks: the IPN (public, form-encoded, verified by signature and the validation API)
//! and the browser's return pages (which only show where the payment stands).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use depot_app::AppContext;
use depot_app::payments::{NewGatewayPayment, NewRefund, PaymentStatusView, RefundView};
use depot_app::sales::{NewPayment, PaymentView};
use depot_domain::auth::perm;
use depot_domain::pagination::Page;
use depot_domain::trade::{PaymentFilter, PaymentMethod, PaymentState};
use depot_domain::{AppError, ErrorCode, FieldError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Authorized, Client};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, PageOf, Pagination, PaginationQuery, Whole};
use crate::idempotency::idempotent;

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(list_payments))
        .routes(idempotent(routes!(create_payment)))
        .routes(routes!(get_payment))
        .routes(routes!(list_refunds))
        .routes(idempotent(routes!(create_refund)))
        .routes(idempotent(routes!(approve)))
        .routes(idempotent(routes!(cancel)))
        .routes(routes!(ipn))
        .routes(routes!(returned_get, returned_post))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentsQuery {
    sales_order_id: Option<Uuid>,
    state: Option<PaymentState>,
    method: Option<PaymentMethod>,
}

/// Payments, newest first (a sales user sees those of their own orders).
#[utoipa::path(get, path = "/payments", tag = "payments", security(("bearer" = ["payments.read"])),
    params(PaginationQuery, PaymentsQuery),
    responses((status = 200, body = PageOf<PaymentView>), (status = 403, body = ErrorBody)))]
async fn list_payments(
    Authorized(principal, ..): Authorized<perm::PaymentsRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<PaymentsQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<PaymentView>>> {
    let filter = PaymentFilter {
        sales_order_id: query.sales_order_id,
        state: query.state,
        method: query.method,
        owner_id: None,
    };
    Ok(Json(ctx.payments().list(&principal, filter, &page).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentStartBody {
    order_id: Uuid,
    /// `sslcommerz` opens a gateway session for what the order owes; `cash`,
    /// `bank_transfer` and `card_terminal` record money received by hand (`amount` required).
    method: PaymentMethod,
    /// Manual payments: minor units of the order's currency, at most what is due.
    #[schema(value_type = Option<i64>, minimum = 1)]
    amount: Option<Whole<i64>>,
    /// Manual payments: the receipt, transfer or terminal slip number.
    #[schema(min_length = 1, max_length = 200)]
    reference: Option<String>,
}

/// Start a payment: a gateway session (201 with `gateway_url`, where the buyer pays) or a
/// manual payment (201, `paid`).
#[utoipa::path(post, path = "/payments", tag = "payments", security(("bearer" = ["payments.create"])),
    request_body = PaymentStartBody,
    responses((status = 201, body = PaymentView), (status = 404, body = ErrorBody),
        (status = 409, description = "`sales_order.invalid_state`, `payments.active_exists`, `payments.nothing_due`", body = ErrorBody),
        (status = 422, description = "`payments.exceeds_balance`", body = ErrorBody),
        (status = 503, description = "`payments.gateway_unavailable`, `payments.gateway_refused`, `payments.disabled`", body = ErrorBody)))]
async fn create_payment(
    Authorized(principal, ..): Authorized<perm::PaymentsCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<PaymentStartBody>,
) -> ApiResult<(StatusCode, Json<PaymentView>)> {
    let created = if body.method.is_manual() {
        let Some(Whole(amount)) = body.amount else {
            return Err(AppError::validation(vec![FieldError::new(
                "amount",
                "required",
                "is required for a manual payment",
            )])
            .into());
        };
        let input = NewPayment {
            method: body.method,
            amount,
            reference: body.reference,
        };
        ctx.sales()
            .record_payment(&principal, body.order_id, input, &client)
            .await?
    } else {
        if body.amount.is_some() || body.reference.is_some() {
            return Err(AppError::validation(vec![FieldError::new(
                "amount",
                "not_allowed",
                "a gateway payment is for what the order owes; amount and reference are not taken",
            )])
            .into());
        }
        let input = NewGatewayPayment {
            order_id: body.order_id,
            method: body.method,
        };
        ctx.payments().start(&principal, input, &client).await?
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// A payment.
#[utoipa::path(get, path = "/payments/{id}", tag = "payments", security(("bearer" = ["payments.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PaymentView), (status = 404, body = ErrorBody)))]
async fn get_payment(
    Authorized(principal, ..): Authorized<perm::PaymentsRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PaymentView>> {
    Ok(Json(ctx.payments().get(&principal, id).await?))
}

/// The refunds of a payment, oldest first.
#[utoipa::path(get, path = "/payments/{id}/refunds", tag = "payments", security(("bearer" = ["payments.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PageOf<RefundView>), (status = 404, body = ErrorBody)))]
async fn list_refunds(
    Authorized(principal, ..): Authorized<perm::PaymentsRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Page<RefundView>>> {
    Ok(Json(Page {
        data: ctx.payments().refunds(&principal, id).await?,
        next_cursor: None,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// Minor units of the payment's currency; at most what is left of it.
    #[schema(value_type = i64, minimum = 1)]
    amount: Whole<i64>,
    #[schema(min_length = 1, max_length = 255)]
    remarks: String,
}

/// Refund a part or all of a paid payment: `refunded` at once for a manual payment, `pending`
/// while the gateway works (the payment is `refund_pending` until it is done).
#[utoipa::path(post, path = "/payments/{id}/refunds", tag = "payments", security(("bearer" = ["payments.refund"])),
    params(("id" = Uuid, Path)), request_body = RefundBody,
    responses((status = 201, body = RefundView), (status = 404, body = ErrorBody),
        (status = 409, description = "`payments.invalid_state`", body = ErrorBody),
        (status = 422, description = "`payments.refund_exceeds` (`details.refundable`)", body = ErrorBody),
        (status = 503, description = "`payments.gateway_unavailable`", body = ErrorBody)))]
async fn create_refund(
    Authorized(principal, ..): Authorized<perm::PaymentsRefund>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<RefundBody>,
) -> ApiResult<(StatusCode, Json<RefundView>)> {
    let input = NewRefund {
        amount: body.amount.0,
        remarks: body.remarks,
    };
    let refund = ctx
        .payments()
        .refund(&principal, id, input, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(refund)))
}

/// Approve a payment held for review: `paid`, and its order credited.
#[utoipa::path(post, path = "/payments/{id}/approve", tag = "payments", security(("bearer" = ["payments.refund"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PaymentView), (status = 404, body = ErrorBody),
        (status = 409, description = "`payments.invalid_state`, `sales_order.invalid_state`", body = ErrorBody),
        (status = 422, description = "`payments.exceeds_balance`", body = ErrorBody)))]
async fn approve(
    Authorized(principal, ..): Authorized<perm::PaymentsRefund>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PaymentView>> {
    Ok(Json(ctx.payments().approve(&principal, id, &client).await?))
}

/// Cancel a payment still waiting for the gateway (or, with `payments.refund`, one held for
/// review).
#[utoipa::path(post, path = "/payments/{id}/cancel", tag = "payments", security(("bearer" = ["payments.create"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PaymentView), (status = 404, body = ErrorBody),
        (status = 409, description = "`payments.invalid_state`", body = ErrorBody)))]
async fn cancel(
    Authorized(principal, ..): Authorized<perm::PaymentsCreate>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PaymentView>> {
    Ok(Json(ctx.payments().cancel(&principal, id, &client).await?))
}

/// The fields of an SSLCommerz callback (every field is a string; the signed ones are named
/// by `verify_key`).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct IpnForm {
    tran_id: String,
    val_id: Option<String>,
    status: String,
    amount: Option<String>,
    currency: Option<String>,
    verify_sign: String,
    verify_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct IpnAnswer {
    /// Where the payment stands after the callback.
    state: PaymentState,
}

/// Parses a form body keeping every field as posted (order, empty values, repeats).
pub(crate) fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The gateway's IPN (public, form-encoded). Believed only when `verify_sign` verifies and
/// the validation API vouches for the transaction — against the stored payment, never the
/// posted values. A repeat answers 200 and changes nothing.
#[utoipa::path(post, path = "/payments/sslcommerz/ipn", tag = "payments", security(()),
    request_body(content = IpnForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = IpnAnswer),
        (status = 400, description = "`payments.invalid_signature`", body = ErrorBody),
        (status = 404, description = "`payments.not_found`: no payment has this `tran_id`", body = ErrorBody),
        (status = 503, description = "`payments.disabled`, `payments.gateway_unavailable` (the gateway retries)", body = ErrorBody)))]
async fn ipn(
    State(ctx): State<AppContext>,
    Client(client): Client,
    body: Bytes,
) -> ApiResult<Json<IpnAnswer>> {
    let state = ctx.payments().ipn(form_fields(&body), &client).await?;
    Ok(Json(IpnAnswer { state }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReturnQuery {
    /// Our transaction id.
    #[param(min_length = 1, max_length = 30)]
    tran_id: String,
}

/// Where the buyer's browser lands back from the gateway (`success`, `fail` or `cancel`): it
/// shows where the payment stands and never changes it.
#[utoipa::path(get, path = "/payments/sslcommerz/{outcome}", tag = "payments", security(()),
    params(("outcome" = String, Path, description = "`success`, `fail` or `cancel`"), ReturnQuery),
    responses((status = 200, body = PaymentStatusView), (status = 404, body = ErrorBody)))]
async fn returned_get(
    State(ctx): State<AppContext>,
    Path(outcome): Path<String>,
    ApiQuery(query): ApiQuery<ReturnQuery>,
) -> ApiResult<Json<PaymentStatusView>> {
    shown(&ctx, &outcome, &query.tran_id).await
}

/// The gateway's form POST of the browser's return: as the GET, nothing changes.
#[utoipa::path(post, path = "/payments/sslcommerz/{outcome}", tag = "payments", security(()),
    params(("outcome" = String, Path, description = "`success`, `fail` or `cancel`")),
    request_body(content = IpnForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = PaymentStatusView), (status = 404, body = ErrorBody)))]
async fn returned_post(
    State(ctx): State<AppContext>,
    Path(outcome): Path<String>,
    body: Bytes,
) -> ApiResult<Json<PaymentStatusView>> {
    let fields = form_fields(&body);
    let tran_id = posted(&fields, "tran_id");
    shown(&ctx, &outcome, &tran_id).await
}

/// The first value posted under `key` (empty when absent).
pub(crate) fn posted(fields: &[(String, String)], key: &str) -> String {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

async fn shown(
    ctx: &AppContext,
    outcome: &str,
    tran_id: &str,
) -> ApiResult<Json<PaymentStatusView>> {
    if !matches!(outcome, "success" | "fail" | "cancel") {
        return Err(AppError::new(ErrorCode::RouteNotFound, "no such resource").into());
    }
    Ok(Json(ctx.payments().status_of(tran_id).await?))
}
