//! Transfers between locations and their lines.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Value};
use uuid::Uuid;

use super::{attach, insert_row};
use crate::entity::{transfer, transfer_line};
use crate::error::db_error;
use crate::keyset::{Direction, page_after};

/// A transfer with its lines in line order.
pub type TransferWithLines = (transfer::Model, Vec<transfer_line::Model>);

pub async fn insert(
    conn: &impl ConnectionTrait,
    head: transfer::Model,
    lines: Vec<transfer_line::Model>,
) -> AppResult<()> {
    insert_row(conn, transfer::ActiveModel::from(head)).await?;
    transfer_line::Entity::insert_many(lines.into_iter().map(transfer_line::ActiveModel::from))
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn lines_of(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<transfer_line::Model>> {
    transfer_line::Entity::find()
        .filter(transfer_line::Column::TransferId.is_in(ids.iter().copied()))
        .order_by_asc(transfer_line::Column::LineNo)
        .all(conn)
        .await
        .map_err(db_error)
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<TransferWithLines>> {
    let Some(head) = transfer::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let lines = lines_of(conn, &[id]).await?;
    Ok(Some((head, lines)))
}

/// Transfers, newest first, each with its lines.
pub async fn list(
    conn: &impl ConnectionTrait,
    page: &PageRequest,
) -> AppResult<Page<TransferWithLines>> {
    let cursor: Option<(DateTime<Utc>, Uuid)> = page.decode_cursor()?;
    let heads = page_after(
        transfer::Entity::find(),
        transfer::Column::CreatedAt,
        transfer::Column::Id,
        Direction::Desc,
        cursor.map(|(at, id)| (Value::from(at), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    let ids: Vec<Uuid> = heads.iter().map(|t| t.id).collect();
    let lines = lines_of(conn, &ids).await?;
    let rows = attach(heads, lines, |h| h.id, |l| l.transfer_id);
    Page::from_overfetch(rows, page, |(t, _): &TransferWithLines| {
        (t.created_at, t.id)
    })
}
