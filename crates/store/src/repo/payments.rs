//! Payments, the gateway callbacks already acted on, and refunds.
//!
//! A transition reads the payment with `lock` (`SELECT … FOR UPDATE` on PostgreSQL; the single
//! writer on SQLite), so concurrent callbacks about one payment run one after the other, and
//! the second finds the first's `payment_callbacks` row.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::trade::{PaymentFilter, PaymentState, RefundState};
use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Value,
};
use uuid::Uuid;

use super::{insert_row, save_model};
use crate::entity::{payment, payment_callback, refund, sales_order};
use crate::error::{Constraint, db_error};
use crate::keyset::{Direction, page_after};

/// A callback is acted on once.
pub const CALLBACK_UNIQUE: Constraint = Constraint {
    name: "payment_callbacks_dedup_key_key",
    table: "payment_callbacks",
    columns: &["dedup_key"],
};

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<payment::Model>> {
    payment::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)
}

/// The payment, locked for the rest of the transaction.
pub async fn lock(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<payment::Model>> {
    payment::Entity::find_by_id(id)
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db_error)
}

/// The payment with this gateway transaction id.
pub async fn by_tran_id(
    conn: &impl ConnectionTrait,
    tran_id: &str,
) -> AppResult<Option<payment::Model>> {
    payment::Entity::find()
        .filter(payment::Column::TranId.eq(tran_id))
        .one(conn)
        .await
        .map_err(db_error)
}

/// Saves a changed payment (its `version` counted up).
pub async fn save(
    conn: &impl ConnectionTrait,
    mut row: payment::Model,
) -> AppResult<payment::Model> {
    row.version += 1;
    save_model::<payment::ActiveModel>(conn, row).await
}

/// Payments, newest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &PaymentFilter,
    page: &PageRequest,
) -> AppResult<Page<payment::Model>> {
    use payment::Column as C;
    let cursor: Option<(DateTime<Utc>, Uuid)> = page.decode_cursor()?;
    let mut select = payment::Entity::find();
    if let Some(order) = filter.sales_order_id {
        select = select.filter(C::SalesOrderId.eq(order));
    }
    if let Some(state) = filter.state {
        select = select.filter(C::State.eq(state.as_str()));
    }
    if let Some(method) = filter.method {
        select = select.filter(C::Method.eq(method.as_str()));
    }
    if let Some(owner) = filter.owner_id {
        select = select.filter(
            C::SalesOrderId.in_subquery(
                Query::select()
                    .column(sales_order::Column::Id)
                    .from(sales_order::Entity)
                    .and_where(sales_order::Column::OwnerId.eq(owner))
                    .to_owned(),
            ),
        );
    }
    let rows = page_after(
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
    Page::from_overfetch(rows, page, |p: &payment::Model| (p.created_at, p.id))
}

/// Gateway payments still waiting for the gateway's word, unchanged since `before`, oldest
/// first.
pub async fn awaiting_gateway(
    conn: &impl ConnectionTrait,
    before: DateTime<Utc>,
    limit: u64,
) -> AppResult<Vec<payment::Model>> {
    use payment::Column as C;
    payment::Entity::find()
        .filter(C::State.is_in([
            PaymentState::Initiated.as_str(),
            PaymentState::Pending.as_str(),
        ]))
        .filter(C::UpdatedAt.lt(before))
        .filter(C::TranId.is_not_null())
        .order_by_asc(C::UpdatedAt)
        .order_by_asc(C::Id)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}

// --- callbacks ---

/// Whether a callback with this key was acted on already.
pub async fn callback_seen(conn: &impl ConnectionTrait, dedup_key: &str) -> AppResult<bool> {
    Ok(payment_callback::Entity::find()
        .filter(payment_callback::Column::DedupKey.eq(dedup_key))
        .count(conn)
        .await
        .map_err(db_error)?
        > 0)
}

pub async fn insert_callback(
    conn: &impl ConnectionTrait,
    row: payment_callback::Model,
) -> AppResult<()> {
    insert_row(conn, payment_callback::ActiveModel::from(row)).await
}

// --- refunds ---

pub async fn insert_refund(conn: &impl ConnectionTrait, row: refund::Model) -> AppResult<()> {
    insert_row(conn, refund::ActiveModel::from(row)).await
}

pub async fn save_refund(
    conn: &impl ConnectionTrait,
    mut row: refund::Model,
) -> AppResult<refund::Model> {
    row.version += 1;
    save_model::<refund::ActiveModel>(conn, row).await
}

/// The refund, locked for the rest of the transaction.
pub async fn lock_refund(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> AppResult<Option<refund::Model>> {
    refund::Entity::find_by_id(id)
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db_error)
}

/// The refunds of a payment, oldest first.
pub async fn refunds_of(
    conn: &impl ConnectionTrait,
    payment: Uuid,
) -> AppResult<Vec<refund::Model>> {
    refund::Entity::find()
        .filter(refund::Column::PaymentId.eq(payment))
        .order_by_asc(refund::Column::CreatedAt)
        .order_by_asc(refund::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Refunds the gateway is still working on, oldest first.
pub async fn refunds_pending(
    conn: &impl ConnectionTrait,
    limit: u64,
) -> AppResult<Vec<refund::Model>> {
    refund::Entity::find()
        .filter(refund::Column::State.eq(RefundState::Pending.as_str()))
        .order_by_asc(refund::Column::UpdatedAt)
        .order_by_asc(refund::Column::Id)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}
