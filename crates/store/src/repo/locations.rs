//! Locations (warehouses) stock is kept at.

use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Value};
use uuid::Uuid;

use super::{delete_where, find_in, insert_model, page_by_key, save_model, upsert_by_id};
use crate::entity::location::{ActiveModel, Column, Entity, Model};
use crate::error::{Constraint, db_error};
use crate::keyset::{Direction, page_after};

/// Location codes are unique, compared case-insensitively.
pub const CODE_UNIQUE: Constraint = Constraint {
    name: "locations_code_key_key",
    table: "locations",
    columns: &["code_key"],
};

pub async fn insert(conn: &impl ConnectionTrait, row: Model) -> AppResult<Model> {
    insert_model::<ActiveModel>(conn, row).await
}

pub async fn save(conn: &impl ConnectionTrait, row: Model) -> AppResult<Model> {
    save_model::<ActiveModel>(conn, row).await
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Model>> {
    Entity::find_by_id(id).one(conn).await.map_err(db_error)
}

pub async fn delete(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<u64> {
    delete_where::<Entity>(conn, Column::Id.eq(id)).await
}

/// Locations by code (case-insensitively), then id; only active ones when `active` says so.
pub async fn list(
    conn: &impl ConnectionTrait,
    active: Option<bool>,
    page: &PageRequest,
) -> AppResult<Page<Model>> {
    let cursor: Option<(String, Uuid)> = page.decode_cursor()?;
    let mut select = Entity::find();
    if let Some(active) = active {
        select = select.filter(Column::Active.eq(active));
    }
    let rows = page_after(
        select,
        Column::CodeKey,
        Column::Id,
        Direction::Asc,
        cursor.map(|(key, id)| (Value::from(key), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    Page::from_overfetch(rows, page, |l: &Model| (l.code_key.clone(), l.id))
}

/// The locations with these code keys (lower-cased codes).
pub async fn by_code_keys(conn: &impl ConnectionTrait, keys: &[String]) -> AppResult<Vec<Model>> {
    find_in(conn, Entity::find, Column::CodeKey, keys).await
}

/// Writes these locations: new ids are inserted, known ones get the `update` columns.
pub async fn upsert_many(
    conn: &impl ConnectionTrait,
    rows: Vec<Model>,
    update: &[Column],
) -> AppResult<()> {
    upsert_by_id(
        conn,
        rows.into_iter().map(ActiveModel::from),
        Column::Id,
        update,
    )
    .await
}

/// Locations in code-key order after `after`, `limit` at a time.
pub async fn after_code_key(
    conn: &impl ConnectionTrait,
    after: Option<String>,
    limit: u64,
) -> AppResult<Vec<Model>> {
    page_by_key::<Entity, _>(conn, Column::CodeKey, after, limit).await
}
