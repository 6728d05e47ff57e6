//! `/api/v1/notifications` (the caller's inbox; everyone's with `notifications.manage_all`)
//! and the notification preferences of `/api/v1/users/me` and `/api/v1/users/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use depot_app::AppContext;
use depot_app::notifications::{
    NotificationQuery, NotificationView, PreferenceChange, PreferencesView, ReadAll, UnreadCount,
};
use depot_domain::auth::perm;
use depot_domain::notify::{Channel, NotificationStatus, NotificationType};
use depot_domain::pagination::Page;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Authenticated, Authorized, Client};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, PageOf, Pagination, PaginationQuery};

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(unread_count))
        .routes(routes!(read_all))
        .routes(routes!(get_notification))
        .routes(routes!(read_notification))
        .routes(routes!(my_preferences, set_my_preferences))
        .routes(routes!(user_preferences, set_user_preferences))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    /// Every user's (needs `notifications.manage_all`); else only the caller's.
    #[serde(default)]
    all_users: bool,
    /// With `all_users`: only this user's.
    user_id: Option<Uuid>,
    /// Only unread (`true`) or read (`false`) ones.
    unread: Option<bool>,
    /// Only this type.
    r#type: Option<NotificationType>,
    status: Option<NotificationStatus>,
    /// `in_app` (the inbox, the default) or `email` (the emails sent).
    channel: Option<Channel>,
}

/// Your notifications, newest first.
#[utoipa::path(get, path = "/notifications", tag = "notifications", security(("bearer" = [])),
    params(PaginationQuery, NotificationsQuery),
    responses((status = 200, body = PageOf<NotificationView>), (status = 403, body = ErrorBody)))]
async fn list_notifications(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
    ApiQuery(query): ApiQuery<NotificationsQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<NotificationView>>> {
    let query = NotificationQuery {
        all_users: query.all_users,
        user_id: query.user_id,
        unread: query.unread,
        kind: query.r#type,
        status: query.status,
        channel: query.channel,
    };
    Ok(Json(ctx.notifications().list(&me, query, &page).await?))
}

/// How many of your in-app notifications are unread.
#[utoipa::path(get, path = "/notifications/unread-count", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = UnreadCount)))]
async fn unread_count(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
) -> ApiResult<Json<UnreadCount>> {
    Ok(Json(ctx.notifications().unread_count(&me).await?))
}

/// Mark every in-app notification of yours read.
#[utoipa::path(post, path = "/notifications/read-all", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = ReadAll)))]
async fn read_all(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
) -> ApiResult<Json<ReadAll>> {
    Ok(Json(ctx.notifications().mark_all_read(&me).await?))
}

/// Read a notification (yours, or anyone's with `notifications.manage_all`).
#[utoipa::path(get, path = "/notifications/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = NotificationView), (status = 404, body = ErrorBody)))]
async fn get_notification(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<NotificationView>> {
    Ok(Json(ctx.notifications().get(&me, id).await?))
}

/// Mark one of your notifications read (again changes nothing).
#[utoipa::path(post, path = "/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = NotificationView), (status = 404, body = ErrorBody)))]
async fn read_notification(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<NotificationView>> {
    Ok(Json(ctx.notifications().mark_read(&me, id).await?))
}

/// Changes to notification preferences: only the listed (type, channel) pairs change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesBody {
    #[schema(max_items = 32)]
    preferences: Vec<PreferenceChange>,
}

/// Your notification preferences: every type × channel, with the defaults filled in.
#[utoipa::path(get, path = "/users/me/notification-preferences", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = PreferencesView)))]
async fn my_preferences(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
) -> ApiResult<Json<PreferencesView>> {
    Ok(Json(ctx.notifications().preferences(me.user_id).await?))
}

/// Change your notification preferences. Security notifications cannot be switched off
/// (`locked`); email needs a valid address on the account (`address_required`).
#[utoipa::path(put, path = "/users/me/notification-preferences", tag = "notifications", security(("bearer" = [])),
    request_body = PreferencesBody,
    responses((status = 200, body = PreferencesView), (status = 422, body = ErrorBody)))]
async fn set_my_preferences(
    State(ctx): State<AppContext>,
    Authenticated(me): Authenticated,
    Client(client): Client,
    ApiJson(body): ApiJson<PreferencesBody>,
) -> ApiResult<Json<PreferencesView>> {
    Ok(Json(
        ctx.notifications()
            .set_preferences(&me, me.user_id, body.preferences, &client)
            .await?,
    ))
}

/// A user's notification preferences.
#[utoipa::path(get, path = "/users/{id}/notification-preferences", tag = "notifications", security(("bearer" = ["users.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PreferencesView), (status = 404, body = ErrorBody)))]
async fn user_preferences(
    Authorized(..): Authorized<perm::UsersManage>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PreferencesView>> {
    Ok(Json(ctx.notifications().preferences(id).await?))
}

/// Change a user's notification preferences (as for your own).
#[utoipa::path(put, path = "/users/{id}/notification-preferences", tag = "notifications", security(("bearer" = ["users.manage"])),
    params(("id" = Uuid, Path)),
    request_body = PreferencesBody,
    responses((status = 200, body = PreferencesView), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn set_user_preferences(
    Authorized(me, ..): Authorized<perm::UsersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<PreferencesBody>,
) -> ApiResult<Json<PreferencesView>> {
    Ok(Json(
        ctx.notifications()
            .set_preferences(&me, id, body.preferences, &client)
            .await?,
    ))
}
