//! `/api/v1/auth`: sign-in (password, then TOTP when on), refresh, logout, sessions, CSRF,
//! MFA enrolment and password reset.
//!
//! Two client styles: native clients get the refresh token in the JSON body and send it back
//! in the body; browsers ask for `"use_cookie": true` and get it in a `__Host-` cookie that
//! script cannot read, and then must send `X-CSRF-Token` (plus an allowed `Origin`) with every
//! cookie-authenticated request.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::{ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use depot_app::AppContext;
use depot_app::auth::mfa::{Enrolment, SecondFactor};
use depot_app::auth::sessions::{CsrfProof, Device, IssuedTokens, LoginOutcome, SessionView};
use depot_domain::AppError;
use depot_domain::ErrorCode;
use depot_domain::pagination::Page;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{
    Authenticated, CSRF_COOKIE, CSRF_HEADER, Client, Enrolling, REFRESH_COOKIE, cleared_cookies,
    cookie, csrf_cookie, session_cookies,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, PageOf, Pagination, PaginationQuery};

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(mfa_verify))
        .routes(routes!(refresh))
        .routes(routes!(rotate_csrf))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(mfa_enroll))
        .routes(routes!(mfa_enable))
        .routes(routes!(mfa_disable))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[schema(max_length = 254)]
    email: String,
    #[schema(format = Password, max_length = 1024)]
    password: String,
    /// A stable id of the device, shown in the session list.
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    device_id: Option<String>,
    /// A human name of the device ("Ann's laptop").
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    device_name: Option<String>,
    /// Browser clients: put the refresh token in an HttpOnly cookie instead of the body.
    #[serde(default)]
    use_cookie: bool,
}

/// Tokens of a new or refreshed session. With the cookie flow `refresh_token` is null (it is
/// in the cookie).
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: Option<String>,
    session_id: Uuid,
    csrf_token: String,
}

/// The password was right; the account has MFA on.
#[derive(Serialize, ToSchema)]
pub struct MfaChallenge {
    mfa_required: bool,
    /// Send it with a code to `POST /api/v1/auth/mfa/verify`.
    challenge_token: String,
    expires_in: u64,
}

fn tokens_response(ctx: &AppContext, tokens: IssuedTokens, use_cookie: bool) -> Response {
    let body = TokenResponse {
        access_token: tokens.access_token,
        token_type: tokens.token_type,
        expires_in: tokens.expires_in,
        refresh_token: (!use_cookie).then(|| tokens.refresh_token.clone()),
        session_id: tokens.session_id,
        csrf_token: tokens.csrf_token.clone(),
    };
    let mut response = Json(body).into_response();
    if use_cookie {
        let max_age = ctx.sessions().config().absolute_ttl.as_secs();
        set_cookies(
            &mut response,
            session_cookies(&tokens.refresh_token, &tokens.csrf_token, max_age),
        );
    }
    response
}

/// Sign in with email and password.
///
/// Unknown email, wrong password, and a locked or disabled account all answer the same 401
/// `auth.invalid_credentials`. Accounts with MFA get a challenge to complete at
/// `/auth/mfa/verify`; holders of an MFA-required role without MFA get 403
/// `auth.mfa_enrolment_required` with an enrolment token. Rate-limited per IP and per account.
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in, or an MFA challenge", body = TokenResponse),
        (status = 401, description = "Invalid credentials", body = ErrorBody),
        (status = 403, description = "MFA enrolment required", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody),
    ))]
async fn login(
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Response> {
    let device = Device {
        device_id: body.device_id,
        device_name: body.device_name,
    };
    match ctx
        .sessions()
        .login(&body.email, body.password, device, &client)
        .await?
    {
        LoginOutcome::Signed(tokens) => Ok(tokens_response(&ctx, tokens, body.use_cookie)),
        LoginOutcome::MfaRequired {
            challenge_token,
            expires_in,
        } => Ok(Json(MfaChallenge {
            mfa_required: true,
            challenge_token,
            expires_in,
        })
        .into_response()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyBody {
    challenge_token: String,
    /// The 6-digit code from the authenticator app…
    code: Option<String>,
    /// …or one of the recovery codes.
    recovery_code: Option<String>,
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    device_id: Option<String>,
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    device_name: Option<String>,
    #[serde(default)]
    use_cookie: bool,
}

/// Second sign-in step: the challenge and a TOTP or recovery code. A code is accepted once.
#[utoipa::path(post, path = "/auth/mfa/verify", tag = "auth", security(()), request_body = MfaVerifyBody,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Invalid or reused code", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody),
    ))]
async fn mfa_verify(
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<MfaVerifyBody>,
) -> ApiResult<Response> {
    let tokens = ctx
        .mfa()
        .mfa_verify(
            &body.challenge_token,
            SecondFactor {
                code: body.code,
                recovery_code: body.recovery_code,
            },
            Device {
                device_id: body.device_id,
                device_name: body.device_name,
            },
            &client,
        )
        .await?;
    Ok(tokens_response(&ctx, tokens, body.use_cookie))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// Native clients: the refresh token. Browsers leave it out and send the cookie.
    refresh_token: Option<String>,
}

/// The CSRF evidence of a cookie-authenticated request.
struct CookieAuth {
    refresh_token: Option<String>,
    proof: CsrfProof,
}

impl<S: Send + Sync> FromRequestParts<S> for CookieAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(cookie_auth(parts))
    }
}

fn cookie_auth(parts: &Parts) -> CookieAuth {
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    CookieAuth {
        refresh_token: cookie(parts, REFRESH_COOKIE),
        proof: CsrfProof {
            origin: header(ORIGIN.as_str()),
            header: header(CSRF_HEADER),
            cookie: cookie(parts, CSRF_COOKIE),
        },
    }
}

/// Rotate the refresh token: a new access token and a new refresh token; the old refresh token
/// is spent. Presenting a spent token revokes the whole session (401
/// `auth.refresh_token_reused`). Browsers send the cookie plus `X-CSRF-Token` and `Origin`.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", security((), ("csrf" = [])),
    request_body(content = RefreshBody, description = "Optional with the cookie flow"),
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Invalid, expired or reused refresh token", body = ErrorBody),
        (status = 403, description = "CSRF check failed (cookie flow)", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody),
    ))]
async fn refresh(
    State(ctx): State<AppContext>,
    Client(client): Client,
    cookie_auth: CookieAuth,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    // The body is optional: browsers send none and use the cookie.
    let body: RefreshBody = if body.iter().all(u8::is_ascii_whitespace) {
        RefreshBody::default()
    } else {
        let value = serde_json::from_slice::<crate::input::UniqueKeys>(&body)
            .map(|unique| unique.0)
            .map_err(|e| {
                ApiError(
                    AppError::new(
                        ErrorCode::RequestMalformedJson,
                        "the request body is not valid JSON",
                    )
                    .with_details(serde_json::json!({ "reason": e.to_string() })),
                )
            })?;
        crate::extract::checked(value)?
    };
    let (token, proof, use_cookie) = match (body.refresh_token, cookie_auth.refresh_token) {
        (Some(token), _) => (token, None, false),
        (None, Some(token)) => (token, Some(cookie_auth.proof), true),
        (None, None) => {
            return Err(ApiError(AppError::new(
                ErrorCode::AuthInvalidRefreshToken,
                "send the refresh token in the body or the session cookie",
            )));
        }
    };
    let tokens = ctx.sessions().refresh(&token, proof, &client).await?;
    Ok(tokens_response(&ctx, tokens, use_cookie))
}

#[derive(Serialize, ToSchema)]
pub struct CsrfResponse {
    csrf_token: String,
}

/// Rotate the CSRF token of the cookie session (the current one must be presented).
#[utoipa::path(post, path = "/auth/csrf", tag = "auth", security(("csrf" = [])),
    responses(
        (status = 200, description = "The new token (also set as cookie)", body = CsrfResponse),
        (status = 401, description = "No live session cookie", body = ErrorBody),
        (status = 403, description = "CSRF check failed", body = ErrorBody),
    ))]
async fn rotate_csrf(
    State(ctx): State<AppContext>,
    Client(client): Client,
    cookie_auth: CookieAuth,
) -> ApiResult<Response> {
    let token = cookie_auth.refresh_token.ok_or_else(|| {
        ApiError(AppError::new(
            ErrorCode::AuthInvalidRefreshToken,
            "no session cookie",
        ))
    })?;
    let csrf = ctx
        .sessions()
        .rotate_csrf(&token, cookie_auth.proof, &client)
        .await?;
    let mut response = Json(CsrfResponse {
        csrf_token: csrf.clone(),
    })
    .into_response();
    let max_age = ctx.sessions().config().absolute_ttl.as_secs();
    set_cookies(&mut response, [csrf_cookie(&csrf, max_age)]);
    Ok(response)
}

/// Appends one `Set-Cookie` per value (values are built by `crate::auth`, always valid).
fn set_cookies(response: &mut Response, cookies: impl IntoIterator<Item = String>) {
    for value in cookies {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }
}

fn no_content_clearing_cookies() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_cookies(&mut response, cleared_cookies());
    response
}

/// Sign out: the session is revoked and this access token stops working at once.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), (status = 401, body = ErrorBody)))]
async fn logout(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
    Client(client): Client,
) -> ApiResult<Response> {
    ctx.sessions().logout(&me, &client).await?;
    Ok(no_content_clearing_cookies())
}

#[derive(Serialize, ToSchema)]
pub struct RevokedCount {
    revoked: u64,
}

/// Sign out every other session of the caller.
#[utoipa::path(post, path = "/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = RevokedCount), (status = 401, body = ErrorBody)))]
async fn logout_all(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
    Client(client): Client,
) -> ApiResult<Json<RevokedCount>> {
    let revoked = ctx.sessions().logout_all(&me, &client).await?;
    Ok(Json(RevokedCount { revoked }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionsQuery {
    /// Every user's sessions (needs `sessions.manage_all`).
    #[serde(default)]
    all_users: bool,
}

/// The caller's live sessions (devices), newest first.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    params(PaginationQuery, SessionsQuery),
    responses((status = 200, body = PageOf<SessionView>), (status = 401, body = ErrorBody)))]
async fn list_sessions(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
    ApiQuery(query): ApiQuery<SessionsQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<SessionView>>> {
    Ok(Json(
        ctx.sessions()
            .list_sessions(&me, query.all_users, &page)
            .await?,
    ))
}

/// Revoke one session (targeted logout). Another user's session answers 404 unless the caller
/// holds `sessions.manage_all`.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_session(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    ctx.sessions().revoke_session(&me, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotBody {
    #[schema(format = Email, max_length = 254)]
    email: String,
}

/// Email a password-reset link. Always 202, whether or not the address has an account.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "auth", security(()), request_body = ForgotBody,
    responses((status = 202), (status = 429, body = ErrorBody)))]
async fn forgot_password(
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<ForgotBody>,
) -> ApiResult<StatusCode> {
    ctx.passwords()
        .request_password_reset(&body.email, &client)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    token: String,
    #[schema(format = Password, min_length = 12, max_length = 128)]
    new_password: String,
}

/// Set a new password with the emailed token (single use). Signs out every session.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", security(()), request_body = ResetBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reset_password(
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<ResetBody>,
) -> ApiResult<StatusCode> {
    ctx.passwords()
        .reset_password(&body.token, body.new_password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start TOTP enrolment: a new secret and its `otpauth://` URI. Accepts an access token or
/// the enrolment token given at sign-in to holders of an MFA-required role.
#[utoipa::path(post, path = "/auth/mfa/totp/enroll", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Enrolment), (status = 409, body = ErrorBody)))]
async fn mfa_enroll(
    State(ctx): State<AppContext>,
    Enrolling(user_id): Enrolling,
    Client(client): Client,
) -> ApiResult<Json<Enrolment>> {
    Ok(Json(ctx.mfa().mfa_enroll(user_id, &client).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    #[schema(pattern = r"^[0-9]{6}$")]
    code: String,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes; shown only now.
    recovery_codes: Vec<String>,
}

/// Confirm enrolment with a code from the app; MFA is on from now. Returns recovery codes.
#[utoipa::path(post, path = "/auth/mfa/totp/enable", tag = "auth", security(("bearer" = [])),
    request_body = CodeBody,
    responses((status = 200, body = RecoveryCodes), (status = 401, body = ErrorBody),
        (status = 409, description = "`mfa.not_enrolling`: no enrolment started", body = ErrorBody)))]
async fn mfa_enable(
    State(ctx): State<AppContext>,
    Enrolling(user_id): Enrolling,
    Client(client): Client,
    ApiJson(body): ApiJson<CodeBody>,
) -> ApiResult<Json<RecoveryCodes>> {
    let recovery_codes = ctx.mfa().mfa_enable(user_id, &body.code, &client).await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableMfaBody {
    #[schema(format = Password, max_length = 1024)]
    password: String,
    code: Option<String>,
    recovery_code: Option<String>,
}

/// Turn MFA off (password and a code required; refused while a role requires MFA).
#[utoipa::path(post, path = "/auth/mfa/totp/disable", tag = "auth", security(("bearer" = [])),
    request_body = DisableMfaBody,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn mfa_disable(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
    Client(client): Client,
    ApiJson(body): ApiJson<DisableMfaBody>,
) -> ApiResult<StatusCode> {
    ctx.mfa()
        .mfa_disable(
            &me,
            body.password,
            SecondFactor {
                code: body.code,
                recovery_code: body.recovery_code,
            },
            &client,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
