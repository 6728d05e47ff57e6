//! Cycle counts and their lines.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Value};
use uuid::Uuid;

use super::{attach, insert_row};
use crate::entity::{stock_count, stock_count_line};
use crate::error::db_error;
use crate::keyset::{Direction, page_after};

/// A count with its lines in line order.
pub type CountWithLines = (stock_count::Model, Vec<stock_count_line::Model>);

pub async fn insert(
    conn: &impl ConnectionTrait,
    head: stock_count::Model,
    lines: Vec<stock_count_line::Model>,
) -> AppResult<()> {
    insert_row(conn, stock_count::ActiveModel::from(head)).await?;
    stock_count_line::Entity::insert_many(
        lines.into_iter().map(stock_count_line::ActiveModel::from),
    )
    .exec_without_returning(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

async fn lines_of(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<stock_count_line::Model>> {
    stock_count_line::Entity::find()
        .filter(stock_count_line::Column::CountId.is_in(ids.iter().copied()))
        .order_by_asc(stock_count_line::Column::LineNo)
        .all(conn)
        .await
        .map_err(db_error)
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<CountWithLines>> {
    let Some(head) = stock_count::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let lines = lines_of(conn, &[id]).await?;
    Ok(Some((head, lines)))
}

/// Counts, newest first, each with its lines.
pub async fn list(
    conn: &impl ConnectionTrait,
    page: &PageRequest,
) -> AppResult<Page<CountWithLines>> {
    let cursor: Option<(DateTime<Utc>, Uuid)> = page.decode_cursor()?;
    let heads = page_after(
        stock_count::Entity::find(),
        stock_count::Column::CreatedAt,
        stock_count::Column::Id,
        Direction::Desc,
        cursor.map(|(at, id)| (Value::from(at), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    let ids: Vec<Uuid> = heads.iter().map(|t| t.id).collect();
    let lines = lines_of(conn, &ids).await?;
    let rows = attach(heads, lines, |h| h.id, |l| l.count_id);
    Page::from_overfetch(rows, page, |(t, _): &CountWithLines| (t.created_at, t.id))
}
