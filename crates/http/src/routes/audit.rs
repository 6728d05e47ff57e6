//! `/api/v1/audit`: the append-only audit log, for holders of `audit.read`.

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use depot_app::AppContext;
use depot_domain::auth::perm;
use depot_domain::pagination::Page;
use depot_store::entity::audit_log;
use depot_store::repo::audit::AuditFilter;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Authorized;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{PageOf, Pagination, PaginationQuery};

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntryView {
    id: Uuid,
    occurred_at: DateTime<Utc>,
    actor_id: Option<Uuid>,
    /// e.g. `login.failure`, `role.updated`, `auth.token_reuse`.
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    request_id: Option<String>,
    ip: Option<String>,
    #[schema(value_type = Option<Object>)]
    before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    after: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    details: Option<serde_json::Value>,
}

impl From<audit_log::Model> for AuditEntryView {
    fn from(m: audit_log::Model) -> Self {
        Self {
            id: m.id,
            occurred_at: m.occurred_at,
            actor_id: m.actor_id,
            action: m.action,
            target_type: m.target_type,
            target_id: m.target_id,
            request_id: m.request_id,
            ip: m.ip,
            before: m.before,
            after: m.after,
            details: m.details,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    actor_id: Option<Uuid>,
    action: Option<String>,
}

/// The audit log, newest first, filtered by actor and action.
#[utoipa::path(get, path = "/audit", tag = "audit", security(("bearer" = ["audit.read"])),
    params(PaginationQuery, AuditQuery),
    responses((status = 200, body = PageOf<AuditEntryView>), (status = 403, body = ErrorBody)))]
async fn list_audit(
    Authorized(..): Authorized<perm::AuditRead>,
    State(ctx): State<AppContext>,
    Query(query): Query<AuditQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<AuditEntryView>>> {
    let filter = AuditFilter {
        actor_id: query.actor_id,
        action: query.action,
    };
    let page = depot_app::audit::list(&ctx.db, &filter, &page).await?;
    Ok(Json(Page {
        data: page.data.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}
