//! The error envelope of every 4xx/5xx response:
//! `{"error", "code", "message", "details", "request_id"}`.
//!
//! Handlers return [`ApiError`]; its response carries the [`ErrorBody`] as an extension so that
//! the envelope middleware can add the request id. Responses that did not come from an
//! `ApiError` (a 405 from the router, a 413 from a body limit, a panic) get a generic envelope
//! for their status there too — no plain-text error leaves the server.

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use depot_domain::{AppError, ErrorCategory, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON error envelope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Error category: `validation`, `not_found`, `conflict`, `unauthorized`, …
    pub error: &'static str,
    /// Stable machine-readable code, e.g. `stock.insufficient`.
    pub code: String,
    /// Human-readable, safe to show.
    pub message: String,
    /// Structured details; validation errors list every failing field under `fields`.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// The request id, also in the `X-Request-Id` header.
    pub request_id: Option<String>,
}

/// An [`AppError`] on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        Self(err)
    }
}

/// HTTP status of an error code: its category's, except where HTTP has a more precise one.
pub fn status_of_code(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        other => status_of(other.category()),
    }
}

/// HTTP status of an error category.
pub fn status_of(category: ErrorCategory) -> StatusCode {
    match category {
        ErrorCategory::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCategory::Validation => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCategory::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCategory::Forbidden => StatusCode::FORBIDDEN,
        ErrorCategory::NotFound => StatusCode::NOT_FOUND,
        ErrorCategory::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCategory::Conflict => StatusCode::CONFLICT,
        ErrorCategory::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCategory::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCategory::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCategory::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The envelope for a response that carries no [`ErrorBody`]: derived from its status alone.
pub fn generic_error(status: StatusCode) -> AppError {
    let (code, message) = match status {
        StatusCode::BAD_REQUEST => (ErrorCode::RequestBadRequest, "the request is malformed"),
        StatusCode::UNAUTHORIZED => (ErrorCode::AuthRequired, "authentication is required"),
        StatusCode::FORBIDDEN => (ErrorCode::AuthForbidden, "not allowed"),
        StatusCode::NOT_FOUND => (ErrorCode::RouteNotFound, "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::RouteMethodNotAllowed,
            "this method is not allowed on this resource",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            ErrorCode::RequestTimeout,
            "the request took too long and was cancelled",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            (ErrorCode::RequestTooLarge, "the request body is too large")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::RequestUnsupportedMediaType,
            "the request body must be application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (ErrorCode::ValidationFailed, "the request is invalid"),
        StatusCode::TOO_MANY_REQUESTS => (ErrorCode::RateLimited, "too many requests"),
        StatusCode::SERVICE_UNAVAILABLE => (
            ErrorCode::ServiceUnavailable,
            "the service is unavailable, try again",
        ),
        s if s.is_client_error() => (ErrorCode::RequestRejected, "the request was rejected"),
        _ => (ErrorCode::Internal, "internal server error"),
    };
    AppError::new(code, message)
}

impl ErrorBody {
    pub fn from_error(err: &AppError) -> Self {
        Self {
            error: err.category().as_str(),
            code: err.code().to_owned(),
            message: err.message().to_owned(),
            details: err
                .details()
                .cloned()
                .unwrap_or_else(|| serde_json::json!({})),
            request_id: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let err = self.0;
        let status = status_of_code(err.error_code());
        if status.is_server_error() {
            // The cause chain goes to the log (with the request id from the span), never to
            // the client.
            tracing::error!(code = err.code(), cause = %err.cause_chain(), "request failed");
        }
        let body = ErrorBody::from_error(&err);
        let mut response = (status, Json(body.clone())).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            rate_limit_headers(response.headers_mut(), &body.details);
        }
        response.extensions_mut().insert(body);
        response
    }
}

/// `Retry-After`, `RateLimit` and `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers)
/// from the details of a `rate_limited` error.
fn rate_limit_headers(headers: &mut HeaderMap, details: &serde_json::Value) {
    let number = |key: &str| details.get(key).and_then(serde_json::Value::as_u64);
    let (Some(retry), Some(limit), Some(window)) = (
        number("retry_after_secs"),
        number("limit"),
        number("window_secs"),
    ) else {
        return;
    };
    let remaining = number("remaining").unwrap_or(0);
    let policy = details
        .get("policy")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("default");
    for (name, value) in [
        ("retry-after", retry.to_string()),
        (
            "ratelimit-policy",
            format!("\"{policy}\";q={limit};w={window}"),
        ),
        ("ratelimit", format!("\"{policy}\";r={remaining};t={retry}")),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
