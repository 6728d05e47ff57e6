//! The audit log: append and list (newest first, keyset-paginated).

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::audit::AuditFilter;
use depot_domain::id::new_id;
use depot_domain::pagination::{Page, PageRequest};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::entity::audit_log::{ActiveModel, Column, Entity, Model};
use crate::error::db_error;
use crate::keyset::{Direction, page_after};

/// What is recorded for one security-relevant action.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEntry {
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub before: Option<Json>,
    pub after: Option<Json>,
    pub details: Option<Json>,
}

/// Appends one entry at `at`; returns its id.
pub async fn append(
    conn: &impl ConnectionTrait,
    at: DateTime<Utc>,
    entry: NewAuditEntry,
) -> AppResult<Uuid> {
    let id = new_id();
    Entity::insert(ActiveModel {
        id: Set(id),
        occurred_at: Set(at),
        actor_id: Set(entry.actor_id),
        actor_name: Set(entry.actor_name),
        action: Set(entry.action),
        target_type: Set(entry.target_type),
        target_id: Set(entry.target_id),
        request_id: Set(entry.request_id),
        ip: Set(entry.ip),
        before: Set(entry.before),
        after: Set(entry.after),
        details: Set(entry.details),
    })
    .exec_without_returning(conn)
    .await
    .map_err(db_error)?;
    Ok(id)
}

/// Lists entries newest first. The cursor is `(occurred_at, id)` of the last entry shown.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &AuditFilter,
    page: &PageRequest,
) -> AppResult<Page<Model>> {
    let cursor: Option<(DateTime<Utc>, Uuid)> = page.decode_cursor()?;
    let mut select = Entity::find();
    if let Some(actor) = filter.actor_id {
        select = select.filter(Column::ActorId.eq(actor));
    }
    if let Some(action) = &filter.action {
        select = select.filter(Column::Action.eq(action.clone()));
    }
    let cursor = cursor.map(|(at, id)| (Value::from(at), Value::from(id)));
    let rows = page_after(
        select,
        Column::OccurredAt,
        Column::Id,
        Direction::Desc,
        cursor,
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    Page::from_overfetch(rows, page, |row| (row.occurred_at, row.id))
}
