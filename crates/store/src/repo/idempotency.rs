//! Idempotency records.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::entity::idempotency_key::{Column, Entity};
use crate::error::db_error;

/// Deletes every record that expired before `now`.
pub async fn delete_expired(conn: &impl ConnectionTrait, now: DateTime<Utc>) -> AppResult<u64> {
    let result = Entity::delete_many()
        .filter(Column::ExpiresAt.lt(now))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected)
}
