//! `/api/v1/audit`: the append-only audit log, for holders of `audit.read`.

use axum::Json;
use axum::extract::State;
use depot_app::AppContext;
use depot_app::audit::{AuditEntryView, AuditFilter};
use depot_domain::auth::perm;
use depot_domain::pagination::Page;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Authorized;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiQuery, PageOf, Pagination, PaginationQuery};

pub fn router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    actor_id: Option<Uuid>,
    /// An action, e.g. `user.created`.
    /// An empty value does not filter.
    action: Option<String>,
}

/// The audit log, newest first, filtered by actor and action.
#[utoipa::path(get, path = "/audit", tag = "audit", security(("bearer" = ["audit.read"])),
    params(PaginationQuery, AuditQuery),
    responses((status = 200, body = PageOf<AuditEntryView>), (status = 403, body = ErrorBody)))]
async fn list_audit(
    Authorized(..): Authorized<perm::AuditRead>,
    State(ctx): State<AppContext>,
    ApiQuery(query): ApiQuery<AuditQuery>,
    Pagination(page): Pagination,
) -> ApiResult<Json<Page<AuditEntryView>>> {
    let filter = AuditFilter {
        actor_id: query.actor_id,
        action: query.action.filter(|a| !a.is_empty()),
    };
    Ok(Json(ctx.audit().list(&filter, &page).await?))
}
