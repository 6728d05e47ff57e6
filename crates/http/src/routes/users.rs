//! `/api/v1/users`: account administration and self-service (`/users/me`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use depot_app::AppContext;
use depot_app::users::{NewUser, UserFilter, UserPatch, UserView};
use depot_domain::auth::perm;
use depot_domain::pagination::Page;
use depot_domain::state::UserStatus;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Authenticated, Authorized, Client};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, PageOf, Pagination, PaginationQuery, nullable};

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(crate::idempotency::idempotent(routes!(create_user)))
        .routes(routes!(me, update_me))
        .routes(routes!(change_password))
        .routes(routes!(get_user, update_user))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
        .routes(routes!(unlock_user))
        .routes(routes!(revoke_user_sessions))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    status: Option<UserStatus>,
    /// Case-insensitive part of the email or name.
    q: Option<String>,
}

/// List users, oldest first.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = ["users.read"])),
    params(PaginationQuery, UsersQuery),
    responses((status = 200, body = PageOf<UserView>), (status = 403, body = ErrorBody)))]
async fn list_users(
    Authorized(..): Authorized<perm::UsersRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<UsersQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<UserView>>> {
    let filter = UserFilter {
        status: query.status,
        search: query.q.filter(|q| !q.trim().is_empty()),
    };
    Ok(Json(ctx.users().list(&filter, &page).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    display_name: String,
    /// E.164, e.g. `+8801712345678`.
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    phone: Option<String>,
    /// Optional: without one the user is emailed a link to set their password.
    #[schema(format = Password, min_length = 12, max_length = 128)]
    password: Option<String>,
    /// Role names.
    #[serde(default)]
    roles: Vec<String>,
}

/// Create a user.
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = ["users.manage"])),
    request_body = CreateUserBody,
    responses((status = 201, body = UserView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user(
    Authorized(actor, ..): Authorized<perm::UsersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let user = ctx
        .users()
        .create(
            actor.actor(),
            NewUser {
                email: body.email,
                display_name: body.display_name,
                phone: body.phone,
                password: body.password,
                roles: body.roles,
            },
            &client,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Read a user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = ["users.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
async fn get_user(
    Authorized(..): Authorized<perm::UsersRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(ctx.users().get(id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    display_name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = r"^\+[1-9][0-9]{7,14}$")]
    phone: Option<Option<String>>,
    /// Replaces the user's roles; signs them out everywhere when it changes anything.
    roles: Option<Vec<String>>,
}

/// Update a user.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", security(("bearer" = ["users.manage"])),
    params(("id" = Uuid, Path)), request_body = UpdateUserBody,
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody),
        (status = 409, description = "`users.email_taken`, `users.last_admin`", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_user(
    Authorized(actor, ..): Authorized<perm::UsersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<UpdateUserBody>,
) -> ApiResult<Json<UserView>> {
    let patch = UserPatch {
        email: body.email,
        display_name: body.display_name,
        phone: body.phone,
        roles: body.roles,
    };
    Ok(Json(
        ctx.users()
            .update(actor.actor(), id, patch, &client)
            .await?,
    ))
}

/// Disable a user: they cannot sign in, and every session and token of theirs dies now.
#[utoipa::path(post, path = "/users/{id}/disable", tag = "users", security(("bearer" = ["users.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn disable_user(
    Authorized(actor, ..): Authorized<perm::UsersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(
        ctx.users()
            .set_enabled(actor.actor(), id, false, &client)
            .await?,
    ))
}

/// Enable a disabled user.
#[utoipa::path(post, path = "/users/{id}/enable", tag = "users", security(("bearer" = ["users.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
async fn enable_user(
    Authorized(actor, ..): Authorized<perm::UsersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(
        ctx.users()
            .set_enabled(actor.actor(), id, true, &client)
            .await?,
    ))
}

/// Unlock an account locked by failed sign-ins.
#[utoipa::path(post, path = "/users/{id}/unlock", tag = "users", security(("bearer" = ["users.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
async fn unlock_user(
    Authorized(actor, ..): Authorized<perm::UsersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(ctx.users().unlock(actor.actor(), id, &client).await?))
}

#[derive(serde::Serialize, ToSchema)]
pub struct Revoked {
    revoked: u64,
}

/// Sign a user out everywhere: every session ends and every access token already issued to
/// them stops working now.
#[utoipa::path(post, path = "/users/{id}/sessions/revoke", tag = "users", security(("bearer" = ["users.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Revoked), (status = 404, body = ErrorBody)))]
async fn revoke_user_sessions(
    Authorized(actor, ..): Authorized<perm::UsersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Revoked>> {
    let revoked = ctx
        .users()
        .revoke_all_sessions(actor.actor(), id, &client)
        .await?;
    Ok(Json(Revoked { revoked }))
}

/// The caller's own account.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
async fn me(
    Authenticated(me): Authenticated,
    State(ctx): State<AppContext>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(ctx.users().get(me.user_id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = r"^\+[1-9][0-9]{7,14}$")]
    phone: Option<Option<String>>,
}

/// Update one's own name and phone.
#[utoipa::path(patch, path = "/users/me", tag = "users", security(("bearer" = [])),
    request_body = UpdateMeBody,
    responses((status = 200, body = UserView), (status = 422, body = ErrorBody)))]
async fn update_me(
    Authenticated(me): Authenticated,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<UpdateMeBody>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(
        ctx.users()
            .update_me(&me, body.display_name, body.phone, &client)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    #[schema(format = Password, max_length = 1024)]
    current_password: String,
    #[schema(format = Password, min_length = 12, max_length = 128)]
    new_password: String,
}

/// Change one's password (the current one is required). Other sessions are signed out.
#[utoipa::path(post, path = "/users/me/password", tag = "users", security(("bearer" = [])),
    request_body = ChangePasswordBody,
    responses((status = 204), (status = 422, body = ErrorBody)))]
async fn change_password(
    Authenticated(me): Authenticated,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> ApiResult<StatusCode> {
    ctx.passwords()
        .change_password(&me, body.current_password, body.new_password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
