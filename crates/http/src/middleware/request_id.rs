//! Request ids: accept a well-formed `X-Request-Id`, else generate a UUIDv7; echo it on the
//! response; open a tracing span carrying it so every log line of the request has it; and write
//! one access-log line per request.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::metrics::MatchedRoute;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served; in request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// A client-supplied id is used only if it is 1–128 characters of `[A-Za-z0-9._:-]`.
pub fn is_well_formed(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_well_formed(v))
        .map(str::to_owned)
        .unwrap_or_else(|| depot_domain::id::new_id().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));

    let method = request.method().clone();
    let span = tracing::info_span!(
        "http_request",
        request_id = %id,
        method = %method,
        user_id = tracing::field::Empty
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;

    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    let route = response
        .extensions()
        .get::<MatchedRoute>()
        .map_or("unmatched", |r| r.0.as_str());
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(route, status, latency_ms, "request served");
        } else {
            tracing::info!(route, status, latency_ms, "request served");
        }
    });
    response
}

#[cfg(test)]
mod tests {
    use super::is_well_formed;

    #[test]
    fn accepts_sane_ids_only() {
        assert!(is_well_formed("abc-123_DEF.4:5"));
        assert!(is_well_formed(&"a".repeat(128)));
        assert!(!is_well_formed(""));
        assert!(!is_well_formed(&"a".repeat(129)));
        assert!(!is_well_formed("has space"));
        assert!(!is_well_formed("new\nline"));
        assert!(!is_well_formed("<script>"));
    }
}
