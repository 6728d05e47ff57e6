//! WebSocket tickets: stored as hashes, redeemed once by a conditional update.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::insert_row;
use crate::entity::ws_ticket::{ActiveModel, Column, Entity, Model};
use crate::error::db_error;

pub async fn insert(conn: &impl ConnectionTrait, row: Model) -> AppResult<()> {
    insert_row(conn, ActiveModel::from(row)).await
}

/// Uses the ticket whose hash is `token_hash` if it is unused and unexpired; returns it then.
/// Two sockets racing with one ticket: one wins.
pub async fn redeem(
    conn: &impl ConnectionTrait,
    token_hash: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<Model>> {
    let used = Entity::update_many()
        .col_expr(Column::UsedAt, Expr::value(now))
        .filter(Column::TokenHash.eq(token_hash))
        .filter(Column::UsedAt.is_null())
        .filter(Column::ExpiresAt.gt(now))
        .exec(conn)
        .await
        .map_err(db_error)?;
    if used.rows_affected != 1 {
        return Ok(None);
    }
    Entity::find()
        .filter(Column::TokenHash.eq(token_hash))
        .one(conn)
        .await
        .map_err(db_error)
}

/// Deletes tickets that expired before `before`; returns how many.
pub async fn purge(conn: &impl ConnectionTrait, before: DateTime<Utc>) -> AppResult<u64> {
    super::delete_where::<Entity>(conn, Column::ExpiresAt.lt(before)).await
}
