//! Sales orders with their lines, the reservations that hold their stock (per batch), their
//! returns and payments.
//!
//! A transition reads the head with `lock` (`SELECT … FOR UPDATE` on PostgreSQL; the single
//! writer on SQLite), so two racing transitions of one order run one after the other.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::trade::sales::ReservationStatus;
use depot_domain::trade::{SalesOrderFilter, SoState};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Value,
};
use uuid::Uuid;

use super::{attach, insert_row, replace_rows, save_model};
use crate::entity::{
    payment, reservation, sales_order, sales_order_line, sales_return, sales_return_line,
};
use crate::error::{Constraint, db_error};
use crate::keyset::{Direction, page_after};

/// A sales order with its lines in line order.
pub type OrderWithLines = (sales_order::Model, Vec<sales_order_line::Model>);
/// A return with its lines in line order.
pub type ReturnWithLines = (sales_return::Model, Vec<sales_return_line::Model>);

/// At most one active payment per (order, method).
pub const ACTIVE_PAYMENT_UNIQUE: Constraint = Constraint {
    name: "payments_active_key",
    table: "payments",
    columns: &["sales_order_id", "method"],
};

pub async fn insert(
    conn: &impl ConnectionTrait,
    head: sales_order::Model,
    lines: Vec<sales_order_line::Model>,
) -> AppResult<()> {
    insert_row(conn, sales_order::ActiveModel::from(head)).await?;
    sales_order_line::Entity::insert_many(
        lines.into_iter().map(sales_order_line::ActiveModel::from),
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
    lines: Vec<sales_order_line::Model>,
) -> AppResult<()> {
    replace_rows(
        conn,
        sales_order_line::Column::SalesOrderId.eq(order),
        lines.into_iter().map(sales_order_line::ActiveModel::from),
    )
    .await
}

pub async fn save(
    conn: &impl ConnectionTrait,
    head: sales_order::Model,
) -> AppResult<sales_order::Model> {
    save_model::<sales_order::ActiveModel>(conn, head).await
}

pub async fn save_line(
    conn: &impl ConnectionTrait,
    line: sales_order_line::Model,
) -> AppResult<sales_order_line::Model> {
    save_model::<sales_order_line::ActiveModel>(conn, line).await
}

async fn lines_of(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<sales_order_line::Model>> {
    sales_order_line::Entity::find()
        .filter(sales_order_line::Column::SalesOrderId.is_in(ids.iter().copied()))
        .order_by_asc(sales_order_line::Column::SalesOrderId)
        .order_by_asc(sales_order_line::Column::LineNo)
        .all(conn)
        .await
        .map_err(db_error)
}

async fn with_lines(
    conn: &impl ConnectionTrait,
    head: Option<sales_order::Model>,
) -> AppResult<Option<OrderWithLines>> {
    let Some(head) = head else {
        return Ok(None);
    };
    let lines = lines_of(conn, &[head.id]).await?;
    Ok(Some((head, lines)))
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<OrderWithLines>> {
    let head = sales_order::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)?;
    with_lines(conn, head).await
}

/// The order with its head row locked for the rest of the transaction.
pub async fn lock(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<OrderWithLines>> {
    let head = sales_order::Entity::find_by_id(id)
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db_error)?;
    with_lines(conn, head).await
}

/// Sales orders, newest first, each with its lines.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &SalesOrderFilter,
    page: &PageRequest,
) -> AppResult<Page<OrderWithLines>> {
    use sales_order::Column as C;
    let cursor: Option<(DateTime<Utc>, Uuid)> = page.decode_cursor()?;
    let mut select = sales_order::Entity::find();
    if let Some(state) = filter.state {
        select = select.filter(C::State.eq(state.as_str()));
    }
    if let Some(customer) = filter.customer_id {
        select = select.filter(C::CustomerId.eq(customer));
    }
    if let Some(owner) = filter.owner_id {
        select = select.filter(C::OwnerId.eq(owner));
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
    let rows = attach(heads, lines, |h| h.id, |l| l.sales_order_id);
    Page::from_overfetch(rows, page, |(h, _): &OrderWithLines| (h.created_at, h.id))
}

/// Gives every order of `customer` to `owner` (orders follow their customer); returns how many.
pub async fn reassign_owner(
    conn: &impl ConnectionTrait,
    customer: Uuid,
    owner: Uuid,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    use sales_order::Column as C;
    Ok(sales_order::Entity::update_many()
        .col_expr(C::OwnerId, sea_orm::sea_query::Expr::value(owner))
        .col_expr(C::UpdatedAt, sea_orm::sea_query::Expr::value(now))
        .filter(C::CustomerId.eq(customer))
        .exec(conn)
        .await
        .map_err(db_error)?
        .rows_affected)
}

/// Confirmed, unpaid orders whose reservations ran out before `now`, oldest first.
pub async fn reservations_expired(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> AppResult<Vec<Uuid>> {
    use sales_order::Column as C;
    sales_order::Entity::find()
        .select_only()
        .column(C::Id)
        .filter(C::State.eq(SoState::Confirmed.as_str()))
        .filter(C::AmountPaid.eq(0))
        .filter(C::ReservedUntil.lte(now))
        .order_by_asc(C::ReservedUntil)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await
        .map_err(db_error)
}

// --- reservations ---

pub async fn insert_reservations(
    conn: &impl ConnectionTrait,
    rows: Vec<reservation::Model>,
) -> AppResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    reservation::Entity::insert_many(rows.into_iter().map(reservation::ActiveModel::from))
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn save_reservation(
    conn: &impl ConnectionTrait,
    row: reservation::Model,
) -> AppResult<reservation::Model> {
    save_model::<reservation::ActiveModel>(conn, row).await
}

/// The order's reservations (in `status`, when given), in the order they were made.
pub async fn reservations_of(
    conn: &impl ConnectionTrait,
    order: Uuid,
    status: Option<ReservationStatus>,
) -> AppResult<Vec<reservation::Model>> {
    let mut select =
        reservation::Entity::find().filter(reservation::Column::SalesOrderId.eq(order));
    if let Some(status) = status {
        select = select.filter(reservation::Column::Status.eq(status.as_str()));
    }
    select
        .order_by_asc(reservation::Column::Seq)
        .all(conn)
        .await
        .map_err(db_error)
}

// --- returns ---

pub async fn insert_return(
    conn: &impl ConnectionTrait,
    head: sales_return::Model,
    lines: Vec<sales_return_line::Model>,
) -> AppResult<()> {
    insert_row(conn, sales_return::ActiveModel::from(head)).await?;
    sales_return_line::Entity::insert_many(
        lines.into_iter().map(sales_return_line::ActiveModel::from),
    )
    .exec_without_returning(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The order's returns, oldest first, each with its lines.
pub async fn returns_of(
    conn: &impl ConnectionTrait,
    order: Uuid,
) -> AppResult<Vec<ReturnWithLines>> {
    let heads = sales_return::Entity::find()
        .filter(sales_return::Column::SalesOrderId.eq(order))
        .order_by_asc(sales_return::Column::CreatedAt)
        .order_by_asc(sales_return::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)?;
    let ids: Vec<Uuid> = heads.iter().map(|h| h.id).collect();
    let lines = sales_return_line::Entity::find()
        .filter(sales_return_line::Column::ReturnId.is_in(ids))
        .order_by_asc(sales_return_line::Column::ReturnId)
        .order_by_asc(sales_return_line::Column::LineNo)
        .all(conn)
        .await
        .map_err(db_error)?;
    Ok(attach(heads, lines, |h| h.id, |l| l.return_id))
}

// --- payments ---

pub async fn insert_payment(conn: &impl ConnectionTrait, row: payment::Model) -> AppResult<()> {
    insert_row(conn, payment::ActiveModel::from(row)).await
}

/// The order's payments, oldest first.
pub async fn payments_of(
    conn: &impl ConnectionTrait,
    order: Uuid,
) -> AppResult<Vec<payment::Model>> {
    payment::Entity::find()
        .filter(payment::Column::SalesOrderId.eq(order))
        .order_by_asc(payment::Column::CreatedAt)
        .order_by_asc(payment::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)
}
