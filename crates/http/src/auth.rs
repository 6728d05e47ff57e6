//! Authentication extractors. A handler states what it needs in its signature, in one place:
//!
//! - [`Authorized<perm::X>`](Authorized): a valid access token whose holder has permission X
//!   (401 without a valid token, 403 without the permission);
//! - [`Authenticated`]: any signed-in user (self-service routes);
//! - no extractor: a public route (sign-in, refresh, password reset).
//!
//! The OpenAPI `security` of each operation repeats the requirement for clients, and a test
//! walks every operation to prove the two agree.

use depot_domain::ErrorCode;
use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use axum_extra::extract::cookie::{Cookie, SameSite};
use depot_app::AppContext;
use depot_app::ClientInfo;
use depot_app::auth::principal::Principal;
use depot_app::auth::tokens::TokenUse;
use depot_app::idempotency::Claim;
use depot_domain::AppError;
use depot_domain::auth::Grant;
use uuid::Uuid;

use crate::error::ApiError;
use crate::middleware::client_addr::ClientAddr;
use crate::middleware::request_id::{RequestId, TraceParent};

/// Refresh-token cookie of the browser flow (`HttpOnly; Secure; SameSite=Strict`).
pub const REFRESH_COOKIE: &str = "__Host-depot_refresh";
/// CSRF cookie (readable by the page, echoed in `X-CSRF-Token`).
pub const CSRF_COOKIE: &str = "__Host-depot_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who is calling from where: IP (the TCP peer, or the client a trusted proxy names), user
/// agent, request id.
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_info(parts)))
    }
}

pub fn client_info(parts: &Parts) -> ClientInfo {
    ClientInfo {
        ip: parts
            .extensions
            .get::<ClientAddr>()
            .map(|c| c.0)
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip())
            })
            .map(|ip| ip.to_string()),
        user_agent: parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        idempotency: parts.extensions.get::<Claim>().cloned(),
        traceparent: parts.extensions.get::<TraceParent>().map(|t| t.0.clone()),
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError(AppError::new(
                ErrorCode::AuthRequired,
                "sign in and send the access token as `Authorization: Bearer <token>`",
            ))
        })
}

/// Any signed-in user.
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppContext> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(Self(p.clone()));
        }
        let principal = ctx.authenticator().authenticate(bearer(parts)?).await?;
        tracing::Span::current().record("user_id", tracing::field::display(principal.user_id));
        ctx.api_limits().check_user(principal.user_id).await?;
        parts.extensions.insert(principal.clone());
        Ok(Self(principal))
    }
}

/// A signed-in user holding the permission named by `P` (a marker from
/// [`depot_domain::auth::perm`]).
pub struct Authorized<P: Grant>(pub Principal, pub PhantomData<P>);

impl<P: Grant> FromRequestParts<AppContext> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, ctx).await?;
        principal.require(P::PERMISSION)?;
        Ok(Self(principal, PhantomData))
    }
}

/// The user behind an access token *or* an MFA enrolment token (issued at sign-in to holders
/// of an `mfa_required` role who have no second factor yet): only the enrolment routes take it.
pub struct Enrolling(pub Uuid);

impl FromRequestParts<AppContext> for Enrolling {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        if let Ok(claims) = ctx
            .authenticator()
            .verify_step_token(token, TokenUse::MfaEnrolment)
        {
            return Ok(Self(claims.sub));
        }
        let principal = ctx.authenticator().authenticate(token).await?;
        Ok(Self(principal.user_id))
    }
}

/// `Set-Cookie` values of the browser flow.
pub fn session_cookies(refresh: &str, csrf: &str, max_age_secs: u64) -> [String; 2] {
    let max_age = time_secs(max_age_secs);
    [
        Cookie::build((REFRESH_COOKIE, refresh.to_owned()))
            .path("/")
            .secure(true)
            .http_only(true)
            .same_site(SameSite::Strict)
            .max_age(max_age)
            .build()
            .to_string(),
        csrf_cookie(csrf, max_age_secs),
    ]
}

pub fn csrf_cookie(csrf: &str, max_age_secs: u64) -> String {
    Cookie::build((CSRF_COOKIE, csrf.to_owned()))
        .path("/")
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(time_secs(max_age_secs))
        .build()
        .to_string()
}

/// Expired cookies that make the browser forget the session.
pub fn cleared_cookies() -> [String; 2] {
    [REFRESH_COOKIE, CSRF_COOKIE].map(|name| {
        Cookie::build((name, ""))
            .path("/")
            .secure(true)
            .http_only(name == REFRESH_COOKIE)
            .same_site(SameSite::Strict)
            .max_age(time_secs(0))
            .build()
            .to_string()
    })
}

fn time_secs(secs: u64) -> cookie::time::Duration {
    cookie::time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// A cookie's value from the request headers.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| Cookie::parse(c.trim().to_owned()).ok())
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}
