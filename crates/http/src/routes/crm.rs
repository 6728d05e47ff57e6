//! `/api/v1/customers`: customers owned by sales users, their contacts and activities, and
//! reassignment. Someone else's customer (without `customers.manage_all`) does not exist: 404.
//! Every POST honours `Idempotency-Key`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::NaiveDate;
use depot_app::AppContext;
use depot_app::crm::{
    ActivityPatch, ActivityView, ContactPatch, ContactView, CustomerPatch, CustomerView,
    NewActivity, NewContact, NewCustomer,
};
use depot_domain::auth::perm;
use depot_domain::pagination::Page;
use depot_domain::trade::{ActivityFilter, ActivityKind, CustomerFilter, CustomerStatus};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Authorized, Client};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, PageOf, Pagination, PaginationQuery, nullable};
use crate::idempotency::idempotent;

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new()
        .routes(routes!(list_customers))
        .routes(idempotent(routes!(create_customer)))
        .routes(routes!(get_customer, update_customer, delete_customer))
        .routes(idempotent(routes!(reassign)))
        .routes(routes!(list_contacts))
        .routes(idempotent(routes!(add_contact)))
        .routes(routes!(update_contact, delete_contact))
        .routes(routes!(list_activities))
        .routes(idempotent(routes!(add_activity)))
        .routes(routes!(update_activity, delete_activity))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomersQuery {
    /// Part of the name, email or phone (case-insensitive, literal).
    q: Option<String>,
    status: Option<CustomerStatus>,
    owner_id: Option<Uuid>,
    tag: Option<String>,
}

/// Customers by name: your own, or everyone's with `customers.manage_all`.
#[utoipa::path(get, path = "/customers", tag = "crm", security(("bearer" = ["customers.read"])),
    params(PaginationQuery, CustomersQuery),
    responses((status = 200, body = PageOf<CustomerView>), (status = 403, body = ErrorBody)))]
async fn list_customers(
    Authorized(principal, ..): Authorized<perm::CustomersRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<CustomersQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<CustomerView>>> {
    let filter = CustomerFilter {
        search: query.q.filter(|q| !q.is_empty()),
        status: query.status,
        owner_id: query.owner_id,
        tag: query
            .tag
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty()),
    };
    Ok(Json(
        ctx.customers().list(&principal, &filter, &page).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomerBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    name: String,
    #[schema(
        max_length = 254,
        pattern = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
    )]
    email: Option<String>,
    /// E.164: `+` and 8 to 15 digits.
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    phone: Option<String>,
    #[schema(max_length = 1000)]
    address: Option<String>,
    #[serde(default = "lead")]
    #[schema(default = "lead")]
    status: CustomerStatus,
    #[serde(default)]
    #[schema(max_items = 20)]
    tags: Vec<Tag>,
    /// A sales user; defaults to you (someone else needs `customers.manage_all`).
    owner_id: Option<Uuid>,
}

/// A tag: 1 to 50 characters, stored lower-case.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Tag(String);

impl utoipa::PartialSchema for Tag {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(50))
            .pattern(Some(
                r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$",
            ))
            .into()
    }
}

impl ToSchema for Tag {}

fn lead() -> CustomerStatus {
    CustomerStatus::Lead
}

/// Create a customer.
#[utoipa::path(post, path = "/customers", tag = "crm", security(("bearer" = ["customers.manage"])),
    request_body = CreateCustomerBody,
    responses((status = 201, body = CustomerView),
        (status = 422, description = "invalid fields, `customers.invalid_owner`", body = ErrorBody)))]
async fn create_customer(
    Authorized(principal, ..): Authorized<perm::CustomersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateCustomerBody>,
) -> ApiResult<(StatusCode, Json<CustomerView>)> {
    let new = NewCustomer {
        name: body.name,
        email: body.email,
        phone: body.phone,
        address: body.address,
        status: body.status,
        tags: body.tags.into_iter().map(|t| t.0).collect(),
        owner_id: body.owner_id,
    };
    let created = ctx.customers().create(&principal, new, &client).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A customer (yours, or anyone's with `customers.manage_all`).
#[utoipa::path(get, path = "/customers/{id}", tag = "crm", security(("bearer" = ["customers.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = CustomerView), (status = 404, body = ErrorBody)))]
async fn get_customer(
    Authorized(principal, ..): Authorized<perm::CustomersRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<CustomerView>> {
    Ok(Json(ctx.customers().get(&principal, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomerBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 254, pattern = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = r"^\+[1-9][0-9]{7,14}$")]
    phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    address: Option<Option<String>>,
    status: Option<CustomerStatus>,
    /// Replaces every tag.
    #[schema(max_items = 20)]
    tags: Option<Vec<Tag>>,
}

/// Change a customer (the owner changes through `/reassign`).
#[utoipa::path(patch, path = "/customers/{id}", tag = "crm", security(("bearer" = ["customers.manage"])),
    params(("id" = Uuid, Path)), request_body = UpdateCustomerBody,
    responses((status = 200, body = CustomerView), (status = 404, body = ErrorBody)))]
async fn update_customer(
    Authorized(principal, ..): Authorized<perm::CustomersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<UpdateCustomerBody>,
) -> ApiResult<Json<CustomerView>> {
    let patch = CustomerPatch {
        name: body.name,
        email: body.email,
        phone: body.phone,
        address: body.address,
        status: body.status,
        tags: body
            .tags
            .map(|tags| tags.into_iter().map(|t| t.0).collect()),
    };
    Ok(Json(
        ctx.customers()
            .update(&principal, id, patch, &client)
            .await?,
    ))
}

/// Delete a customer no sales order names (with its contacts and activities).
#[utoipa::path(delete, path = "/customers/{id}", tag = "crm", security(("bearer" = ["customers.manage"])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 409, description = "`customers.in_use`", body = ErrorBody)))]
async fn delete_customer(
    Authorized(principal, ..): Authorized<perm::CustomersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    ctx.customers().delete(&principal, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignBody {
    /// An active user holding `customers.manage`.
    owner_id: Uuid,
}

/// Give a customer and its open activities to another sales user, in one transaction.
#[utoipa::path(post, path = "/customers/{id}/reassign", tag = "crm", security(("bearer" = ["customers.manage_all"])),
    params(("id" = Uuid, Path)), request_body = ReassignBody,
    responses((status = 200, body = CustomerView), (status = 404, body = ErrorBody),
        (status = 422, description = "`customers.invalid_owner`", body = ErrorBody)))]
async fn reassign(
    Authorized(principal, ..): Authorized<perm::CustomersManageAll>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<ReassignBody>,
) -> ApiResult<Json<CustomerView>> {
    Ok(Json(
        ctx.customers()
            .reassign(&principal, id, body.owner_id, &client)
            .await?,
    ))
}

// --- contacts ---

/// A customer's contacts by name.
#[utoipa::path(get, path = "/customers/{id}/contacts", tag = "crm", security(("bearer" = ["customers.read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PageOf<ContactView>), (status = 404, body = ErrorBody)))]
async fn list_contacts(
    Authorized(principal, ..): Authorized<perm::CustomersRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Page<ContactView>>> {
    let data = ctx.customers().contacts(&principal, id).await?;
    Ok(Json(Page {
        data,
        next_cursor: None,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContactBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    name: String,
    #[schema(
        max_length = 254,
        pattern = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
    )]
    email: Option<String>,
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    phone: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    role: Option<String>,
}

/// Add a contact to a customer.
#[utoipa::path(post, path = "/customers/{id}/contacts", tag = "crm", security(("bearer" = ["customers.manage"])),
    params(("id" = Uuid, Path)), request_body = CreateContactBody,
    responses((status = 201, body = ContactView), (status = 404, body = ErrorBody)))]
async fn add_contact(
    Authorized(principal, ..): Authorized<perm::CustomersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<CreateContactBody>,
) -> ApiResult<(StatusCode, Json<ContactView>)> {
    let new = NewContact {
        name: body.name,
        email: body.email,
        phone: body.phone,
        role: body.role,
    };
    let created = ctx
        .customers()
        .add_contact(&principal, id, new, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContactBody {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 254, pattern = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = r"^\+[1-9][0-9]{7,14}$")]
    phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(
        value_type = Option<String>,
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    role: Option<Option<String>>,
}

/// Change a contact.
#[utoipa::path(patch, path = "/customers/{id}/contacts/{contact_id}", tag = "crm", security(("bearer" = ["customers.manage"])),
    params(("id" = Uuid, Path), ("contact_id" = Uuid, Path)), request_body = UpdateContactBody,
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody)))]
async fn update_contact(
    Authorized(principal, ..): Authorized<perm::CustomersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path((id, contact_id)): Path<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<UpdateContactBody>,
) -> ApiResult<Json<ContactView>> {
    let patch = ContactPatch {
        name: body.name,
        email: body.email,
        phone: body.phone,
        role: body.role,
    };
    Ok(Json(
        ctx.customers()
            .update_contact(&principal, id, contact_id, patch, &client)
            .await?,
    ))
}

/// Remove a contact.
#[utoipa::path(delete, path = "/customers/{id}/contacts/{contact_id}", tag = "crm", security(("bearer" = ["customers.manage"])),
    params(("id" = Uuid, Path), ("contact_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_contact(
    Authorized(principal, ..): Authorized<perm::CustomersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path((id, contact_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    ctx.customers()
        .delete_contact(&principal, id, contact_id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- activities ---

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivitiesQuery {
    kind: Option<ActivityKind>,
    done: Option<bool>,
    /// Due on or before this day.
    due_before: Option<NaiveDate>,
}

/// A customer's activities, newest first.
#[utoipa::path(get, path = "/customers/{id}/activities", tag = "crm", security(("bearer" = ["customers.read"])),
    params(("id" = Uuid, Path), PaginationQuery, ActivitiesQuery),
    responses((status = 200, body = PageOf<ActivityView>), (status = 404, body = ErrorBody)))]
async fn list_activities(
    Authorized(principal, ..): Authorized<perm::CustomersRead>,
    State(ctx): State<AppContext>,
    Path(id): Path<Uuid>,
    ApiQuery(query): ApiQuery<ActivitiesQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<ActivityView>>> {
    let filter = ActivityFilter {
        kind: query.kind,
        done: query.done,
        due_before: query.due_before,
    };
    Ok(Json(
        ctx.customers()
            .activities(&principal, id, &filter, &page)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateActivityBody {
    kind: ActivityKind,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    subject: String,
    #[schema(max_length = 10000)]
    body: Option<String>,
    due_date: Option<NaiveDate>,
    #[serde(default)]
    done: bool,
}

/// Log a call, email, meeting or note, or plan a task, on a customer.
#[utoipa::path(post, path = "/customers/{id}/activities", tag = "crm", security(("bearer" = ["customers.manage"])),
    params(("id" = Uuid, Path)), request_body = CreateActivityBody,
    responses((status = 201, body = ActivityView), (status = 404, body = ErrorBody)))]
async fn add_activity(
    Authorized(principal, ..): Authorized<perm::CustomersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<CreateActivityBody>,
) -> ApiResult<(StatusCode, Json<ActivityView>)> {
    let new = NewActivity {
        kind: body.kind,
        subject: body.subject,
        body: body.body,
        due_date: body.due_date,
        done: body.done,
    };
    let created = ctx
        .customers()
        .add_activity(&principal, id, new, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateActivityBody {
    kind: Option<ActivityKind>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*[^\s\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF][^\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028\u2029\u202A-\u202E\u2066-\u2069\uFEFF]*$"
    )]
    subject: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 10000)]
    body: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<NaiveDate>)]
    due_date: Option<Option<NaiveDate>>,
    done: Option<bool>,
}

/// Change an activity (mark it done, move its due date, …).
#[utoipa::path(patch, path = "/customers/{id}/activities/{activity_id}", tag = "crm", security(("bearer" = ["customers.manage"])),
    params(("id" = Uuid, Path), ("activity_id" = Uuid, Path)), request_body = UpdateActivityBody,
    responses((status = 200, body = ActivityView), (status = 404, body = ErrorBody)))]
async fn update_activity(
    Authorized(principal, ..): Authorized<perm::CustomersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path((id, activity_id)): Path<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<UpdateActivityBody>,
) -> ApiResult<Json<ActivityView>> {
    let patch = ActivityPatch {
        kind: body.kind,
        subject: body.subject,
        body: body.body,
        due_date: body.due_date,
        done: body.done,
    };
    Ok(Json(
        ctx.customers()
            .update_activity(&principal, id, activity_id, patch, &client)
            .await?,
    ))
}

/// Delete an activity.
#[utoipa::path(delete, path = "/customers/{id}/activities/{activity_id}", tag = "crm", security(("bearer" = ["customers.manage"])),
    params(("id" = Uuid, Path), ("activity_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_activity(
    Authorized(principal, ..): Authorized<perm::CustomersManage>,
    State(ctx): State<AppContext>,
    Client(client): Client,
    Path((id, activity_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    ctx.customers()
        .delete_activity(&principal, id, activity_id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
