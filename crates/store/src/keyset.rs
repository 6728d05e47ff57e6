//! Keyset pagination over a `(sort column, id)` pair.
//!
//! Rows are ordered by the sort column and then by id, so the order is total even when sort
//! values repeat; a page starts strictly after the cursor's `(sort, id)`. The query fetches one
//! row more than the limit so that [`depot_domain::pagination::Page::from_overfetch`] can tell
//! whether a next page exists.

use sea_orm::sea_query::{ExprTrait, IntoCondition};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Select, Value,
};

/// Sort direction of a keyset list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// Restricts and orders `select` to the page after `cursor` (`(sort value, id value)`).
pub fn page_after<E, C>(
    select: Select<E>,
    sort: C,
    id: C,
    direction: Direction,
    cursor: Option<(Value, Value)>,
    limit: u32,
) -> Select<E>
where
    E: EntityTrait,
    C: ColumnTrait,
{
    let select = match cursor {
        None => select,
        Some((sort_value, id_value)) => {
            let after = match direction {
                Direction::Asc => Condition::any()
                    .add(sort.gt(sort_value.clone()))
                    .add(sort.eq(sort_value).and(id.gt(id_value))),
                Direction::Desc => Condition::any()
                    .add(sort.lt(sort_value.clone()))
                    .add(sort.eq(sort_value).and(id.lt(id_value))),
            };
            select.filter(after.into_condition())
        }
    };
    let order = match direction {
        Direction::Asc => Order::Asc,
        Direction::Desc => Order::Desc,
    };
    select
        .order_by(sort, order.clone())
        .order_by(id, order)
        .limit(u64::from(limit) + 1)
}

/// One page of `select`, newest first by a timestamp `sort` column then `id`, after the
/// page's signed cursor: the list every capability serves.
pub(crate) async fn newest_first<E, C>(
    conn: &impl sea_orm::ConnectionTrait,
    select: Select<E>,
    (sort, id): (C, C),
    page: &depot_domain::pagination::PageRequest,
    key_of: impl Fn(&E::Model) -> (chrono::DateTime<chrono::Utc>, uuid::Uuid),
) -> depot_domain::AppResult<depot_domain::pagination::Page<E::Model>>
where
    E: EntityTrait,
    C: ColumnTrait,
{
    let cursor: Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)> = page.decode_cursor()?;
    let rows = page_after(
        select,
        sort,
        id,
        Direction::Desc,
        cursor.map(|(at, id)| (Value::from(at), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(crate::error::db_error)?;
    depot_domain::pagination::Page::from_overfetch(rows, page, key_of)
}
