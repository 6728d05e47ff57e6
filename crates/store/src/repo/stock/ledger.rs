//! The ledger: one immutable movement per batch a change touched (the database refuses
//! UPDATE and DELETE), and on-hand quantities recomputed from it.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::stock::{LevelFilter, MovementFilter, ReferenceType};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Value,
};
use uuid::Uuid;

use crate::entity::stock_movement::{self, Column, Entity, Model};
use crate::error::db_error;
use crate::keyset::{Direction, page_after};

/// Appends movements (any number: chunked to the bind limits).
pub async fn append(conn: &impl ConnectionTrait, rows: Vec<Model>) -> AppResult<()> {
    crate::repo::insert_all(
        conn,
        rows.into_iter().map(stock_movement::ActiveModel::from),
    )
    .await
}

/// Movements, newest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &MovementFilter,
    page: &PageRequest,
) -> AppResult<Page<Model>> {
    let cursor: Option<(DateTime<Utc>, Uuid)> = page.decode_cursor()?;
    let mut select = Entity::find();
    if let Some(product) = filter.product_id {
        select = select.filter(Column::ProductId.eq(product));
    }
    if let Some(location) = filter.location_id {
        select = select.filter(Column::LocationId.eq(location));
    }
    if let Some(batch) = filter.batch_id {
        select = select.filter(Column::BatchId.eq(batch));
    }
    if let Some(kind) = filter.kind {
        select = select.filter(Column::Kind.eq(kind.as_str()));
    }
    if let Some(reference_type) = filter.reference_type {
        select = select.filter(Column::ReferenceType.eq(reference_type.as_str()));
    }
    if let Some(reference) = filter.reference_id {
        select = select.filter(Column::ReferenceId.eq(reference));
    }
    if let Some(from) = filter.from {
        select = select.filter(Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.to {
        select = select.filter(Column::CreatedAt.lt(to));
    }
    let rows = page_after(
        select,
        Column::CreatedAt,
        Column::Id,
        Direction::Desc,
        cursor.map(|(at, id)| (Value::from(at), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    Page::from_overfetch(rows, page, |m| (m.created_at, m.id))
}

/// The movements a transfer, count or other document caused, in the order written.
pub async fn of_reference(
    conn: &impl ConnectionTrait,
    reference_type: ReferenceType,
    reference_id: Uuid,
) -> AppResult<Vec<Model>> {
    Entity::find()
        .filter(Column::ReferenceId.eq(reference_id))
        .filter(Column::ReferenceType.eq(reference_type.as_str()))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
        .map_err(db_error)
}

/// On hand per (product, location) as the ledger had it at `as_of` (inclusive), by product
/// then location, paged like the level list.
pub async fn on_hand_as_of(
    conn: &impl ConnectionTrait,
    filter: LevelFilter,
    as_of: DateTime<Utc>,
    page: &PageRequest,
) -> AppResult<Page<(Uuid, Uuid, i64)>> {
    let cursor: Option<(Uuid, Uuid)> = page.decode_cursor()?;
    let mut select = Entity::find()
        .select_only()
        .column(Column::ProductId)
        .column(Column::LocationId)
        .column_as(Expr::cust("CAST(SUM(quantity) AS BIGINT)"), "on_hand")
        .filter(Column::CreatedAt.lte(as_of));
    if let Some(product) = filter.product_id {
        select = select.filter(Column::ProductId.eq(product));
    }
    if let Some(location) = filter.location_id {
        select = select.filter(Column::LocationId.eq(location));
    }
    if let Some((product, location)) = cursor {
        select = select.filter(
            Condition::any().add(Column::ProductId.gt(product)).add(
                Column::ProductId
                    .eq(product)
                    .and(Column::LocationId.gt(location)),
            ),
        );
    }
    let rows: Vec<(Uuid, Uuid, i64)> = select
        .group_by(Column::ProductId)
        .group_by(Column::LocationId)
        .order_by_asc(Column::ProductId)
        .order_by_asc(Column::LocationId)
        .limit(u64::from(page.limit) + 1)
        .into_tuple()
        .all(conn)
        .await
        .map_err(db_error)?;
    Page::from_overfetch(rows, page, |r| (r.0, r.1))
}
