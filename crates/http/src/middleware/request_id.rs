//! Request ids: accept a well-formed `X-Request-Id`, else generate a UUIDv7; echo it on the
//! response; open a tracing span carrying it so every log line of the request has it; and write
//! one access-log line per request.
//!
//! The same span is the request's span in its trace: it continues the caller's W3C
//! `traceparent` when there is one, is named after the matched route template and records the
//! status (when tracing is on; see `depot::telemetry`).

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

/// The `traceparent` naming the request's span, when a trace is being kept; in request
/// extensions, for [`crate::auth::client_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(pub String);

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

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
        user_id = tracing::field::Empty,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    depot_app::trace::continue_trace(
        &span,
        request
            .headers()
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok()),
    );
    if let Some(traceparent) = depot_app::trace::traceparent_of(&span) {
        request.extensions_mut().insert(TraceParent(traceparent));
    }
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
    depot_app::trace::rename(&span, format!("{method} {route}"));
    span.record("http.route", route);
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
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
