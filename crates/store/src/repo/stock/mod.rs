//! Stock: batches, the level row per (product, location), and the ledger.
//!
//! Every change of a batch happens under its level's row lock (`lock_level`, taken in one
//! fixed order by the caller), so two writers never interleave on the same stock; on SQLite
//! the single writer already serialises them.

pub mod bulk;
pub mod ledger;
mod unnest;
pub mod verify;

use chrono::{DateTime, NaiveDate, Utc};
use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::stock::{BatchFilter, BatchStatus, LevelFilter};
use sea_orm::sea_query::{Expr, ExprTrait, NullOrdering};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Value,
};
use uuid::Uuid;

use super::{insert_if_absent, insert_model, save_model};
use crate::entity::{batch, stock_level};
use crate::error::db_error;
use crate::keyset::{Direction, page_after};

/// Creates the level row of (product, location) at zero when there is none.
pub async fn ensure_level(
    conn: &impl ConnectionTrait,
    product: Uuid,
    location: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let row = stock_level::Model {
        product_id: product,
        location_id: location,
        on_hand: 0,
        reserved: 0,
        updated_at: now,
    };
    insert_if_absent(
        conn,
        stock_level::ActiveModel::from(row),
        [
            stock_level::Column::ProductId,
            stock_level::Column::LocationId,
        ],
    )
    .await?;
    Ok(())
}

/// The level row of (product, location), locked until the transaction ends (`FOR UPDATE` on
/// PostgreSQL; SQLite's single writer holds everything already).
///
/// Its batches must be read by a *later* statement: joined into this one, PostgreSQL would
/// recheck only the locked level row after waiting for the lock (read committed) and return the
/// batches as they were before the previous holder's commit.
pub async fn lock_level(
    conn: &impl ConnectionTrait,
    product: Uuid,
    location: Uuid,
) -> AppResult<Option<stock_level::Model>> {
    stock_level::Entity::find_by_id((product, location))
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db_error)
}

/// The level rows of these (product, location) pairs that exist, locked until the transaction
/// ends in (product, location) order — the order every stock change locks in — with one
/// statement. As with [`lock_level`], their batches must be read by a later statement.
pub async fn lock_levels(
    conn: &impl ConnectionTrait,
    pairs: &[(Uuid, Uuid)],
) -> AppResult<Vec<stock_level::Model>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    stock_level::Entity::find()
        .filter(pair_of(
            stock_level::Column::ProductId,
            stock_level::Column::LocationId,
            pairs,
        ))
        .order_by_asc(stock_level::Column::ProductId)
        .order_by_asc(stock_level::Column::LocationId)
        .lock_exclusive()
        .all(conn)
        .await
        .map_err(db_error)
}

/// The open batches of these (product, location) pairs, with one statement.
pub async fn open_batches_of(
    conn: &impl ConnectionTrait,
    pairs: &[(Uuid, Uuid)],
) -> AppResult<Vec<batch::Model>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    batch::Entity::find()
        .filter(pair_of(
            batch::Column::ProductId,
            batch::Column::LocationId,
            pairs,
        ))
        .filter(batch::Column::Status.eq(BatchStatus::Open.as_str()))
        .all(conn)
        .await
        .map_err(db_error)
}

/// `(product, location) IN ((…), …)`.
fn pair_of(
    product: impl ColumnTrait,
    location: impl ColumnTrait,
    pairs: &[(Uuid, Uuid)],
) -> sea_orm::sea_query::Expr {
    Expr::tuple([product.into_expr(), location.into_expr()]).in_tuples(
        pairs
            .iter()
            .map(|&(p, l)| sea_orm::sea_query::ValueTuple::Two(p.into(), l.into())),
    )
}

/// Writes a level's quantities.
pub async fn set_level(conn: &impl ConnectionTrait, level: &stock_level::Model) -> AppResult<()> {
    stock_level::Entity::update_many()
        .col_expr(stock_level::Column::OnHand, Expr::value(level.on_hand))
        .col_expr(stock_level::Column::Reserved, Expr::value(level.reserved))
        .col_expr(
            stock_level::Column::UpdatedAt,
            Expr::value(level.updated_at),
        )
        .filter(stock_level::Column::ProductId.eq(level.product_id))
        .filter(stock_level::Column::LocationId.eq(level.location_id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The open batches of (product, location).
pub async fn open_batches(
    conn: &impl ConnectionTrait,
    product: Uuid,
    location: Uuid,
) -> AppResult<Vec<batch::Model>> {
    batch::Entity::find()
        .filter(batch::Column::ProductId.eq(product))
        .filter(batch::Column::LocationId.eq(location))
        .filter(batch::Column::Status.eq(BatchStatus::Open.as_str()))
        .all(conn)
        .await
        .map_err(db_error)
}

pub async fn get_batch(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<batch::Model>> {
    batch::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)
}

pub async fn batches_by_ids(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<batch::Model>> {
    batch::Entity::find()
        .filter(batch::Column::Id.is_in(ids.iter().copied()))
        .all(conn)
        .await
        .map_err(db_error)
}

/// These batches as they are now, locked until the transaction ends (in id order).
pub async fn lock_batches(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<batch::Model>> {
    batch::Entity::find()
        .filter(batch::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(batch::Column::Id)
        .lock_exclusive()
        .all(conn)
        .await
        .map_err(db_error)
}

pub async fn insert_batch(
    conn: &impl ConnectionTrait,
    row: batch::Model,
) -> AppResult<batch::Model> {
    insert_model::<batch::ActiveModel>(conn, row).await
}

pub async fn save_batch(conn: &impl ConnectionTrait, row: batch::Model) -> AppResult<batch::Model> {
    save_model::<batch::ActiveModel>(conn, row).await
}

/// Whether any batch (open or closed) of the product, or at the location, exists.
pub async fn has_batches(
    conn: &impl ConnectionTrait,
    product: Option<Uuid>,
    location: Option<Uuid>,
) -> AppResult<bool> {
    let mut select = batch::Entity::find();
    if let Some(product) = product {
        select = select.filter(batch::Column::ProductId.eq(product));
    }
    if let Some(location) = location {
        select = select.filter(batch::Column::LocationId.eq(location));
    }
    Ok(select.limit(1).count(conn).await.map_err(db_error)? > 0)
}

/// Levels by product, then location.
pub async fn list_levels(
    conn: &impl ConnectionTrait,
    filter: LevelFilter,
    page: &PageRequest,
) -> AppResult<Page<stock_level::Model>> {
    let cursor: Option<(Uuid, Uuid)> = page.decode_cursor()?;
    let mut select = stock_level::Entity::find();
    if let Some(product) = filter.product_id {
        select = select.filter(stock_level::Column::ProductId.eq(product));
    }
    if let Some(location) = filter.location_id {
        select = select.filter(stock_level::Column::LocationId.eq(location));
    }
    let rows = page_after(
        select,
        stock_level::Column::ProductId,
        stock_level::Column::LocationId,
        Direction::Asc,
        cursor.map(|(p, l)| (Value::from(p), Value::from(l))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    Page::from_overfetch(rows, page, |l| (l.product_id, l.location_id))
}

/// Batches by expiry (earliest first, none last), then id.
pub async fn list_batches(
    conn: &impl ConnectionTrait,
    filter: BatchFilter,
    page: &PageRequest,
) -> AppResult<Page<batch::Model>> {
    use batch::Column;
    let cursor: Option<(Option<NaiveDate>, Uuid)> = page.decode_cursor()?;
    let mut select = batch::Entity::find();
    if let Some(product) = filter.product_id {
        select = select.filter(Column::ProductId.eq(product));
    }
    if let Some(location) = filter.location_id {
        select = select.filter(Column::LocationId.eq(location));
    }
    if let Some(before) = filter.expiring_before {
        select = select.filter(Column::Expiry.lt(before));
    }
    if !filter.include_closed {
        select = select.filter(Column::Status.eq(BatchStatus::Open.as_str()));
    }
    if let Some((expiry, id)) = cursor {
        let after = match expiry {
            Some(expiry) => Condition::any()
                .add(Column::Expiry.gt(expiry))
                .add(Column::Expiry.eq(expiry).and(Column::Id.gt(id)))
                .add(Column::Expiry.is_null()),
            None => Condition::all()
                .add(Column::Expiry.is_null())
                .add(Column::Id.gt(id)),
        };
        select = select.filter(after);
    }
    let rows = select
        .order_by_with_nulls(Column::Expiry, Order::Asc, NullOrdering::Last)
        .order_by_asc(Column::Id)
        .limit(u64::from(page.limit) + 1)
        .all(conn)
        .await
        .map_err(db_error)?;
    Page::from_overfetch(rows, page, |b| (b.expiry, b.id))
}

/// Open batches with stock whose expiry is on or before `horizon`, in id order after `after`
/// (for the expiry scan, in chunks).
pub async fn expiring_batches(
    conn: &impl ConnectionTrait,
    horizon: NaiveDate,
    after: Option<Uuid>,
    limit: u64,
) -> AppResult<Vec<batch::Model>> {
    let mut select = batch::Entity::find()
        .filter(batch::Column::Status.eq(BatchStatus::Open.as_str()))
        .filter(batch::Column::Quantity.gt(0))
        .filter(batch::Column::Expiry.lte(horizon));
    if let Some(after) = after {
        select = select.filter(batch::Column::Id.gt(after));
    }
    select
        .order_by_asc(batch::Column::Id)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}
