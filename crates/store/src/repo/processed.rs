//! Consumer idempotency: one row per (consumer, message) processed.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use sea_orm::{ActiveValue::Set, ConnectionTrait};
use uuid::Uuid;

use super::insert_if_absent;
use crate::entity::processed_message::{ActiveModel, Column};

/// Claims `(consumer, message_id)` inside the handler's transaction. Returns false if it was
/// already processed: the caller must then do nothing. Concurrent claims of the same message
/// serialise on the primary key, so exactly one transaction gets `true`.
pub async fn claim(
    conn: &impl ConnectionTrait,
    consumer: &str,
    message_id: Uuid,
    at: DateTime<Utc>,
) -> AppResult<bool> {
    let row = ActiveModel {
        consumer: Set(consumer.to_owned()),
        message_id: Set(message_id),
        processed_at: Set(at),
    };
    insert_if_absent(conn, row, [Column::Consumer, Column::MessageId]).await
}
