//! Repositories: one module per aggregate. Functions take any connection (`&DatabaseTransaction`
//! inside a unit of work, or the reader) and return application errors.

pub mod audit;
pub mod credentials;
pub mod emails;
pub mod idempotency;
pub mod jobs;
pub mod outbox;
pub mod processed;
pub mod roles;
pub mod schedule;
pub mod sessions;
pub mod users;

use depot_domain::AppResult;
use sea_orm::sea_query::{IntoCondition, IntoIden, OnConflict};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::error::db_error;

/// Inserts `row` unless one with the same `unique` columns exists. Returns whether it was
/// inserted.
pub(crate) async fn insert_if_absent<A, C>(
    conn: &impl ConnectionTrait,
    row: A,
    unique: impl IntoIterator<Item = C>,
) -> AppResult<bool>
where
    A: ActiveModelTrait,
    C: IntoIden,
{
    let inserted = A::Entity::insert(row)
        .on_conflict(OnConflict::columns(unique).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(inserted == 1)
}

/// Inserts `row` (no returning clause: the caller already knows its key).
pub(crate) async fn insert_row<A: ActiveModelTrait>(
    conn: &impl ConnectionTrait,
    row: A,
) -> AppResult<()> {
    A::Entity::insert(row)
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Replaces the rows matching `of` with `rows`: deletes them, then inserts the new set.
pub(crate) async fn replace_rows<A>(
    conn: &impl ConnectionTrait,
    of: impl IntoCondition,
    rows: impl IntoIterator<Item = A>,
) -> AppResult<()>
where
    A: ActiveModelTrait,
{
    A::Entity::delete_many()
        .filter(of)
        .exec(conn)
        .await
        .map_err(db_error)?;
    let rows: Vec<A> = rows.into_iter().collect();
    if rows.is_empty() {
        return Ok(());
    }
    A::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Deletes the rows of `E` matching `filter`. Returns how many.
pub(crate) async fn delete_where<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    filter: impl IntoCondition,
) -> AppResult<u64> {
    Ok(E::delete_many()
        .filter(filter)
        .exec(conn)
        .await
        .map_err(db_error)?
        .rows_affected)
}
