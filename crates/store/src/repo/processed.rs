//! Consumer idempotency: one row per (consumer, message) processed.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use uuid::Uuid;

use crate::entity::processed_message::{ActiveModel, Column, Entity};
use crate::error::db_error;

/// Claims `(consumer, message_id)` inside the handler's transaction. Returns false if it was
/// already processed: the caller must then do nothing. Concurrent claims of the same message
/// serialise on the primary key, so exactly one transaction gets `true`.
pub async fn claim(
    conn: &impl ConnectionTrait,
    consumer: &str,
    message_id: Uuid,
    at: DateTime<Utc>,
) -> AppResult<bool> {
    let inserted = Entity::insert(ActiveModel {
        consumer: Set(consumer.to_owned()),
        message_id: Set(message_id),
        processed_at: Set(at),
    })
    .on_conflict(
        OnConflict::columns([Column::Consumer, Column::MessageId])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await
    .map_err(db_error)?;
    Ok(inserted == 1)
}
