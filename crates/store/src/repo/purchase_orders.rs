//! Purchase orders with their lines, and the receipts against them.
//!
//! A transition reads the head with `lock` (`SELECT … FOR UPDATE` on PostgreSQL; the single
//! writer on SQLite), so two racing transitions of one order run one after the other and the
//! second sees the state the first left.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::trade::PurchaseOrderFilter;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Value,
};
use uuid::Uuid;

use super::{attach, insert_row, replace_rows, save_model};
use crate::entity::{purchase_order, purchase_order_line, receipt, receipt_line};
use crate::error::db_error;
use crate::keyset::{Direction, page_after};

/// A purchase order with its lines in line order.
pub type OrderWithLines = (purchase_order::Model, Vec<purchase_order_line::Model>);
/// A receipt with its lines in line order.
pub type ReceiptWithLines = (receipt::Model, Vec<receipt_line::Model>);

pub async fn insert(
    conn: &impl ConnectionTrait,
    head: purchase_order::Model,
    lines: Vec<purchase_order_line::Model>,
) -> AppResult<()> {
    insert_row(conn, purchase_order::ActiveModel::from(head)).await?;
    insert_lines(conn, lines).await
}

async fn insert_lines(
    conn: &impl ConnectionTrait,
    lines: Vec<purchase_order_line::Model>,
) -> AppResult<()> {
    if lines.is_empty() {
        return Ok(());
    }
    purchase_order_line::Entity::insert_many(
        lines
            .into_iter()
            .map(purchase_order_line::ActiveModel::from),
    )
    .exec_without_returning(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Replaces the lines of a (draft) order.
pub async fn replace_lines(
    conn: &impl ConnectionTrait,
    order: Uuid,
    lines: Vec<purchase_order_line::Model>,
) -> AppResult<()> {
    replace_rows(
        conn,
        purchase_order_line::Column::PurchaseOrderId.eq(order),
        lines
            .into_iter()
            .map(purchase_order_line::ActiveModel::from),
    )
    .await
}

pub async fn save(
    conn: &impl ConnectionTrait,
    head: purchase_order::Model,
) -> AppResult<purchase_order::Model> {
    save_model::<purchase_order::ActiveModel>(conn, head).await
}

pub async fn save_line(
    conn: &impl ConnectionTrait,
    line: purchase_order_line::Model,
) -> AppResult<purchase_order_line::Model> {
    save_model::<purchase_order_line::ActiveModel>(conn, line).await
}

async fn lines_of(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<purchase_order_line::Model>> {
    purchase_order_line::Entity::find()
        .filter(purchase_order_line::Column::PurchaseOrderId.is_in(ids.iter().copied()))
        .order_by_asc(purchase_order_line::Column::PurchaseOrderId)
        .order_by_asc(purchase_order_line::Column::LineNo)
        .all(conn)
        .await
        .map_err(db_error)
}

async fn with_lines(
    conn: &impl ConnectionTrait,
    head: Option<purchase_order::Model>,
) -> AppResult<Option<OrderWithLines>> {
    let Some(head) = head else {
        return Ok(None);
    };
    let lines = lines_of(conn, &[head.id]).await?;
    Ok(Some((head, lines)))
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<OrderWithLines>> {
    let head = purchase_order::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)?;
    with_lines(conn, head).await
}

/// The order with its head row locked for the rest of the transaction.
pub async fn lock(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<OrderWithLines>> {
    let head = purchase_order::Entity::find_by_id(id)
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db_error)?;
    with_lines(conn, head).await
}

/// Purchase orders, newest first, each with its lines.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &PurchaseOrderFilter,
    page: &PageRequest,
) -> AppResult<Page<OrderWithLines>> {
    use purchase_order::Column as C;
    let cursor: Option<(DateTime<Utc>, Uuid)> = page.decode_cursor()?;
    let mut select = purchase_order::Entity::find();
    if let Some(state) = filter.state {
        select = select.filter(C::State.eq(state.as_str()));
    }
    if let Some(supplier) = filter.supplier_id {
        select = select.filter(C::SupplierId.eq(supplier));
    }
    if let Some(from) = filter.from {
        select = select.filter(C::CreatedAt.gte(from));
    }
    if let Some(to) = filter.to {
        select = select.filter(C::CreatedAt.lt(to));
    }
    let heads = page_after(
        select,
        C::CreatedAt,
        C::Id,
        Direction::Desc,
        cursor.map(|(at, id)| (Value::from(at), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    let ids: Vec<Uuid> = heads.iter().map(|h| h.id).collect();
    let lines = lines_of(conn, &ids).await?;
    let rows = attach(heads, lines, |h| h.id, |l| l.purchase_order_id);
    Page::from_overfetch(rows, page, |(h, _): &OrderWithLines| (h.created_at, h.id))
}

pub async fn insert_receipt(
    conn: &impl ConnectionTrait,
    head: receipt::Model,
    lines: Vec<receipt_line::Model>,
) -> AppResult<()> {
    insert_row(conn, receipt::ActiveModel::from(head)).await?;
    receipt_line::Entity::insert_many(lines.into_iter().map(receipt_line::ActiveModel::from))
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The receipts of an order, oldest first, each with its lines.
pub async fn receipts_of(
    conn: &impl ConnectionTrait,
    order: Uuid,
) -> AppResult<Vec<ReceiptWithLines>> {
    let heads = receipt::Entity::find()
        .filter(receipt::Column::PurchaseOrderId.eq(order))
        .order_by_asc(receipt::Column::CreatedAt)
        .order_by_asc(receipt::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)?;
    let ids: Vec<Uuid> = heads.iter().map(|h| h.id).collect();
    let lines = receipt_line::Entity::find()
        .filter(receipt_line::Column::ReceiptId.is_in(ids))
        .order_by_asc(receipt_line::Column::ReceiptId)
        .order_by_asc(receipt_line::Column::LineNo)
        .all(conn)
        .await
        .map_err(db_error)?;
    Ok(attach(heads, lines, |h| h.id, |l| l.receipt_id))
}
