//! Alerts: at most one unresolved per (kind, subject) — a partial unique index.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::stock::{AlertFilter, AlertKind, AlertStatus};
use sea_orm::sea_query::OnConflict;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Value,
};
use uuid::Uuid;

use super::save_model;
use crate::entity::alert::{ActiveModel, Column, Entity, Model};
use crate::error::db_error;
use crate::keyset::{Direction, page_after};

fn unresolved() -> sea_orm::sea_query::SimpleExpr {
    Column::Status.ne(AlertStatus::Resolved.as_str())
}

pub async fn save(conn: &impl ConnectionTrait, row: Model) -> AppResult<Model> {
    save_model::<ActiveModel>(conn, row).await
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Model>> {
    Entity::find_by_id(id).one(conn).await.map_err(db_error)
}

/// An alert, locked until the transaction ends: whoever changes its status reads it this way,
/// so a person's acknowledgement and an automatic resolution never overwrite each other.
pub async fn get_locked(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Model>> {
    Entity::find_by_id(id)
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db_error)
}

/// Inserts `row` unless an unresolved alert of its (kind, subject) exists (the partial unique
/// index decides, so a concurrent raiser cannot make a duplicate or fail). Returns whether it
/// was inserted.
pub async fn insert_unless_open(conn: &impl ConnectionTrait, row: Model) -> AppResult<bool> {
    let inserted = Entity::insert(ActiveModel::from(row))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(inserted == 1)
}

/// The unresolved alert of (kind, subject), if any, locked.
pub async fn unresolved_of(
    conn: &impl ConnectionTrait,
    kind: AlertKind,
    subject: &str,
) -> AppResult<Option<Model>> {
    Entity::find()
        .filter(Column::Kind.eq(kind.as_str()))
        .filter(Column::Subject.eq(subject))
        .filter(unresolved())
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db_error)
}

/// Counts one more occurrence of an unresolved alert.
pub async fn retrigger(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> AppResult<()> {
    Entity::update_many()
        .col_expr(Column::Occurrences, Expr::col(Column::Occurrences).add(1))
        .col_expr(Column::LastSeenAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Every alert (any status) about these batches, of these kinds, locked.
pub async fn of_batches(
    conn: &impl ConnectionTrait,
    kinds: &[AlertKind],
    batches: &[Uuid],
) -> AppResult<Vec<Model>> {
    Entity::find()
        .filter(Column::Kind.is_in(kinds.iter().map(|k| k.as_str())))
        .filter(Column::BatchId.is_in(batches.iter().copied()))
        .order_by_asc(Column::Id)
        .lock_exclusive()
        .all(conn)
        .await
        .map_err(db_error)
}

/// The unresolved alerts about one batch, locked.
pub async fn unresolved_of_batch(
    conn: &impl ConnectionTrait,
    batch: Uuid,
) -> AppResult<Vec<Model>> {
    Entity::find()
        .filter(Column::BatchId.eq(batch))
        .filter(unresolved())
        .lock_exclusive()
        .all(conn)
        .await
        .map_err(db_error)
}

/// Alerts, newest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: AlertFilter,
    page: &PageRequest,
) -> AppResult<Page<Model>> {
    let cursor: Option<(DateTime<Utc>, Uuid)> = page.decode_cursor()?;
    let mut condition = Condition::all();
    if let Some(kind) = filter.kind {
        condition = condition.add(Column::Kind.eq(kind.as_str()));
    }
    if let Some(status) = filter.status {
        condition = condition.add(Column::Status.eq(status.as_str()));
    }
    if let Some(product) = filter.product_id {
        condition = condition.add(Column::ProductId.eq(product));
    }
    if let Some(location) = filter.location_id {
        condition = condition.add(Column::LocationId.eq(location));
    }
    let rows = page_after(
        Entity::find().filter(condition),
        Column::RaisedAt,
        Column::Id,
        Direction::Desc,
        cursor.map(|(at, id)| (Value::from(at), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    Page::from_overfetch(rows, page, |a| (a.raised_at, a.id))
}

/// The unresolved alerts of these kinds about these subjects, locked (in id order per chunk).
pub async fn unresolved_of_subjects(
    conn: &impl ConnectionTrait,
    kinds: &[AlertKind],
    subjects: &[String],
) -> AppResult<Vec<Model>> {
    let mut found = Vec::new();
    for chunk in subjects.chunks(super::IN_LIST) {
        found.extend(
            Entity::find()
                .filter(Column::Kind.is_in(kinds.iter().map(|k| k.as_str())))
                .filter(Column::Subject.is_in(chunk.iter().cloned()))
                .filter(unresolved())
                .order_by_asc(Column::Id)
                .lock_exclusive()
                .all(conn)
                .await
                .map_err(db_error)?,
        );
    }
    Ok(found)
}
