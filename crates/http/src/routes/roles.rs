//! `/api/v1/roles` and `/api/v1/permissions`: the permission catalogue and editable roles.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use depot_app::AppContext;
use depot_app::roles::{RolePatch, RoleView};
use depot_domain::auth::{Permission, perm};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Authorized, Client};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiJson;

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(list_permissions))
        .routes(routes!(list_roles))
        .routes(crate::idempotency::idempotent(routes!(create_role)))
        .routes(routes!(get_role, update_role, delete_role))
}

#[derive(Serialize, ToSchema)]
pub struct PermissionView {
    code: &'static str,
    description: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct List<T> {
    data: Vec<T>,
}

/// The permission catalogue.
#[utoipa::path(get, path = "/permissions", tag = "roles", security(("bearer" = ["roles.read"])),
    responses((status = 200, body = List<PermissionView>), (status = 403, body = ErrorBody)))]
async fn list_permissions(
    Authorized(..): Authorized<perm::RolesRead>,
) -> Json<List<PermissionView>> {
    Json(List {
        data: Permission::ALL
            .iter()
            .map(|p| PermissionView {
                code: p.code(),
                description: p.description(),
            })
            .collect(),
    })
}

/// Every role with its permissions, by name.
#[utoipa::path(get, path = "/roles", tag = "roles", security(("bearer" = ["roles.read"])),
    responses((status = 200, body = List<RoleView>), (status = 403, body = ErrorBody)))]
async fn list_roles(
    Authorized(..): Authorized<perm::RolesRead>,
    State(ctx): State<AppContext>,
) -> ApiResult<Json<List<RoleView>>> {
    Ok(Json(List {
        data: ctx.roles().list().await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleBody {
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$")]
    name: String,
    #[serde(default)]
    #[schema(max_length = 1000)]
    description: String,
    #[serde(default)]
    #[schema(value_type = Vec<PermissionCode>)]
    permissions: Vec<String>,
    #[serde(default)]
    mfa_required: bool,
}

/// Create a role.
#[utoipa::path(post, path = "/roles", tag = "roles", security(("bearer" = ["roles.manage"])),
    request_body = CreateRoleBody,
    responses((status = 201, body = RoleView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_role(
    Authorized(actor, ..): Authorized<perm::RolesManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateRoleBody>,
) -> ApiResult<(StatusCode, Json<RoleView>)> {
    let role = ctx
        .roles()
        .create(
            actor.actor(),
            body.name,
            body.description,
            body.permissions,
            body.mfa_required,
            &client,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(role)))
}

/// Read a role.
#[utoipa::path(get, path = "/roles/{id}", tag = "roles", security(("bearer" = ["roles.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = RoleView), (status = 404, body = ErrorBody)))]
async fn get_role(
    Authorized(..): Authorized<perm::RolesRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<RoleView>> {
    Ok(Json(ctx.roles().get(id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleBody {
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$")]
    name: Option<String>,
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// Replaces the permissions; effective on the holders' next request.
    #[schema(value_type = Option<Vec<PermissionCode>>)]
    permissions: Option<Vec<String>>,
    mfa_required: Option<bool>,
}

/// Edit a role.
#[utoipa::path(patch, path = "/roles/{id}", tag = "roles", security(("bearer" = ["roles.manage"])),
    params(("id" = Uuid, Path)), request_body = UpdateRoleBody,
    responses((status = 200, body = RoleView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_role(
    Authorized(actor, ..): Authorized<perm::RolesManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<UpdateRoleBody>,
) -> ApiResult<Json<RoleView>> {
    let patch = RolePatch {
        name: body.name,
        description: body.description,
        permissions: body.permissions,
        mfa_required: body.mfa_required,
    };
    Ok(Json(
        ctx.roles()
            .update(actor.actor(), id, patch, &client)
            .await?,
    ))
}

/// Delete a custom role (built-in roles cannot be deleted).
#[utoipa::path(delete, path = "/roles/{id}", tag = "roles", security(("bearer" = ["roles.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_role(
    Authorized(actor, ..): Authorized<perm::RolesManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    ctx.roles().delete(actor.actor(), id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A permission code of the catalogue (`GET /permissions`), for request schemas.
pub struct PermissionCode;

impl utoipa::PartialSchema for PermissionCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Permission::ALL.iter().map(|p| p.code())))
            .into()
    }
}

impl ToSchema for PermissionCode {}
