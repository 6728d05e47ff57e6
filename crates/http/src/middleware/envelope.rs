//! Makes every 4xx/5xx response a JSON error envelope carrying the request id.

use axum::Json;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::request_id::RequestId;
use crate::error::{ErrorBody, generic_error};

/// Marks a non-2xx response whose body is a deliberate report (such as `/readyz`), not an error.
#[derive(Debug, Clone, Copy)]
pub struct KeepBody;

pub async fn error_envelope(request: Request, next: Next) -> Response {
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let response = next.run(request).await;
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    if !is_error || response.extensions().get::<KeepBody>().is_some() {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let mut body = parts
        .extensions
        .remove::<ErrorBody>()
        .unwrap_or_else(|| ErrorBody::from_error(&generic_error(status)));
    body.request_id = request_id;
    // Keep headers such as `Allow` and `Retry-After`; replace the body and its length.
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut rebuilt = Json(body).into_response();
    let content_type = rebuilt.headers_mut().remove(header::CONTENT_TYPE);
    parts.headers.extend(rebuilt.headers_mut().drain());
    if let Some(ct) = content_type {
        parts.headers.insert(header::CONTENT_TYPE, ct);
    }
    Response::from_parts(parts, rebuilt.into_body())
}
