//! The transactional outbox: events appended in the transaction of the change, read in order by
//! the relay, marked published only after the broker confirmed them.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::message::Message;
use depot_domain::state::OutboxStatus;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::insert_all;
use crate::entity::outbox::{ActiveModel, Column, Entity, Model};
use crate::error::db_error;

/// Appends `message` to the outbox, in the trace `traceparent` names (stored in place of the
/// message's own). Call it inside the transaction of the change it describes.
pub async fn append(
    conn: &impl ConnectionTrait,
    message: &Message,
    traceparent: Option<String>,
) -> AppResult<()> {
    append_all(conn, &[(message.clone(), traceparent)]).await
}

/// Appends each `(message, traceparent)` as [`append`] does, many rows per statement.
pub async fn append_all(
    conn: &impl ConnectionTrait,
    entries: &[(Message, Option<String>)],
) -> AppResult<()> {
    let rows: Vec<ActiveModel> = entries
        .iter()
        .map(|(message, traceparent)| ActiveModel {
            id: Set(message.id),
            aggregate_type: Set(message.aggregate_type.clone()),
            aggregate_id: Set(message.aggregate_id.clone()),
            event_type: Set(message.event_type.clone()),
            event_version: Set(message.version),
            payload: Set(message.payload.clone()),
            correlation_id: Set(message.correlation_id.clone()),
            traceparent: Set(traceparent.clone()),
            occurred_at: Set(message.occurred_at),
            status: Set(OutboxStatus::Pending.as_str().into()),
            attempts: Set(0),
            last_error: Set(None),
            published_at: Set(None),
        })
        .collect();
    insert_all(conn, rows).await
}

/// The oldest unpublished events, in id (= creation) order.
pub async fn pending(conn: &impl ConnectionTrait, limit: u64) -> AppResult<Vec<Model>> {
    Entity::find()
        .filter(Column::Status.eq(OutboxStatus::Pending.as_str()))
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Marks events published (after the broker confirmed them).
pub async fn mark_published(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
    at: DateTime<Utc>,
) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    Entity::update_many()
        .col_expr(
            Column::Status,
            Expr::value(OutboxStatus::Published.as_str()),
        )
        .col_expr(Column::PublishedAt, Expr::value(at))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .filter(Column::Id.is_in(ids.iter().copied()))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Records a failed publish attempt; the event stays pending and is retried.
pub async fn record_failure(conn: &impl ConnectionTrait, id: Uuid, error: &str) -> AppResult<()> {
    set_error(
        conn,
        id,
        error,
        (Column::Attempts, Expr::col(Column::Attempts).add(1)),
    )
    .await
}

/// Takes an event out of the relay for good (its payload can never be published, e.g. it fails
/// its schema); it stays in the table with the reason.
pub async fn mark_failed(conn: &impl ConnectionTrait, id: Uuid, error: &str) -> AppResult<()> {
    let failed = Expr::value(OutboxStatus::Failed.as_str());
    set_error(conn, id, error, (Column::Status, failed)).await
}

/// Records `error` on event `id` together with one more column change.
async fn set_error(
    conn: &impl ConnectionTrait,
    id: Uuid,
    error: &str,
    (column, value): (Column, impl Into<sea_orm::sea_query::SimpleExpr>),
) -> AppResult<()> {
    Entity::update_many()
        .col_expr(column, value.into())
        .col_expr(Column::LastError, Expr::value(truncate(error)))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Number of unpublished events and the age of the oldest, for the relay-lag metric.
pub async fn backlog(conn: &impl ConnectionTrait) -> AppResult<(u64, Option<DateTime<Utc>>)> {
    let oldest = Entity::find()
        .filter(Column::Status.eq(OutboxStatus::Pending.as_str()))
        .order_by_asc(Column::Id)
        .one(conn)
        .await
        .map_err(db_error)?
        .map(|m| m.occurred_at);
    let count = sea_orm::PaginatorTrait::count(
        Entity::find().filter(Column::Status.eq(OutboxStatus::Pending.as_str())),
        conn,
    )
    .await
    .map_err(db_error)?;
    Ok((count, oldest))
}

/// Error texts are stored bounded.
pub(crate) fn truncate(error: &str) -> String {
    error.chars().take(2000).collect()
}

/// Rebuilds the wire message from a stored row.
pub fn to_message(row: &Model) -> Message {
    Message {
        id: row.id,
        event_type: row.event_type.clone(),
        version: row.event_version,
        occurred_at: row.occurred_at,
        correlation_id: row.correlation_id.clone(),
        traceparent: row.traceparent.clone(),
        aggregate_type: row.aggregate_type.clone(),
        aggregate_id: row.aggregate_id.clone(),
        payload: row.payload.clone(),
    }
}
