//! Imports: the job row of each file submitted, and the file while it waits for a worker.
//! A worker claims a job by one conditional update (queued, or running with its lease
//! over), so two workers never run the same one.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::import::{ImportKind, ImportStatus};
use depot_domain::pagination::{Page, PageRequest};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Value,
};
use uuid::Uuid;

use super::{insert_model, insert_row, save_model};
use crate::entity::import_file;
use crate::entity::import_job::{ActiveModel, Column, Entity, Model};
use crate::error::db_error;
use crate::keyset::{Direction, page_after};

/// The tables an applied import of `kind` fills (for [`crate::Db::analyze`] afterwards).
pub fn filled_tables(kind: ImportKind) -> &'static [&'static str] {
    match kind {
        ImportKind::Products => &["products"],
        ImportKind::Locations => &["locations"],
        ImportKind::OpeningStock | ImportKind::StockCounts => {
            &["batches", "stock_levels", "stock_movements"]
        }
    }
}

pub async fn insert(conn: &impl ConnectionTrait, row: Model) -> AppResult<Model> {
    insert_model::<ActiveModel>(conn, row).await
}

pub async fn save(conn: &impl ConnectionTrait, row: Model) -> AppResult<Model> {
    save_model::<ActiveModel>(conn, row).await
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Model>> {
    Entity::find_by_id(id).one(conn).await.map_err(db_error)
}

/// The import, locked until the transaction ends.
pub async fn lock(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Model>> {
    Entity::find_by_id(id)
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db_error)
}

/// Imports newest first; only `owner`'s when given.
pub async fn list(
    conn: &impl ConnectionTrait,
    owner: Option<Uuid>,
    page: &PageRequest,
) -> AppResult<Page<Model>> {
    let cursor: Option<(DateTime<Utc>, Uuid)> = page.decode_cursor()?;
    let mut select = Entity::find();
    if let Some(owner) = owner {
        select = select.filter(Column::OwnerId.eq(owner));
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
    Page::from_overfetch(rows, page, |row| (row.created_at, row.id))
}

/// Keeps the file of a queued import.
pub async fn store_file(conn: &impl ConnectionTrait, id: Uuid, content: Vec<u8>) -> AppResult<()> {
    insert_row(
        conn,
        import_file::ActiveModel::from(import_file::Model {
            import_id: id,
            content,
        }),
    )
    .await
}

/// The file of a queued import, if it is still kept.
pub async fn file(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Vec<u8>>> {
    Ok(import_file::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)?
        .map(|f| f.content))
}

/// Forgets the file of an import that has run.
pub async fn delete_file(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<()> {
    import_file::Entity::delete_by_id(id)
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

fn claimable(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(Column::Status.eq(ImportStatus::Queued.as_str()))
        .add(
            Condition::all()
                .add(Column::Status.eq(ImportStatus::Running.as_str()))
                .add(Column::LeaseUntil.lt(now)),
        )
}

/// The oldest import waiting for a worker (or whose worker's lease ran out); only `only` when
/// given. A read: the claim itself is [`claim`].
pub async fn next_claimable(
    conn: &impl ConnectionTrait,
    only: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<Option<Uuid>> {
    let mut select = Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(claimable(now));
    if let Some(id) = only {
        select = select.filter(Column::Id.eq(id));
    }
    select
        .order_by_asc(Column::CreatedAt)
        .limit(1)
        .into_tuple::<Uuid>()
        .one(conn)
        .await
        .map_err(db_error)
}

/// Claims `id` until `lease_until` if it is still claimable; whether this caller got it.
pub async fn claim(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> AppResult<bool> {
    let claimed = Entity::update_many()
        .col_expr(Column::Status, Expr::value(ImportStatus::Running.as_str()))
        .col_expr(Column::LeaseUntil, Expr::value(lease_until))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::StartedAt, Expr::value(now))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(claimable(now))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(claimed.rows_affected == 1)
}

/// Records how far a running import got and extends its lease.
pub async fn progress(
    conn: &impl ConnectionTrait,
    id: Uuid,
    rows_done: i64,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> AppResult<()> {
    Entity::update_many()
        .col_expr(Column::RowsDone, Expr::value(rows_done))
        .col_expr(Column::LeaseUntil, Expr::value(lease_until))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(ImportStatus::Running.as_str()))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}
