//! The general per-IP limit on the API (`api_rate_limit_per_ip`): every `/api` request counts
//! under the client's address (after [`super::client_addr`]); the operations endpoints
//! (`/healthz`, `/readyz`, `/metrics`) and the documentation are not limited. The per-user limit
//! is counted where a request authenticates ([`crate::auth::Authenticated`]).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use depot_app::AppContext;

use super::client_addr::ClientAddr;
use crate::error::ApiError;

pub async fn api_limit(ctx: AppContext, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/api/") {
        let ip = request.extensions().get::<ClientAddr>().map(|a| a.0);
        if let Err(err) = ctx.api_limits().check_ip(ip).await {
            return ApiError(err).into_response();
        }
    }
    next.run(request).await
}
