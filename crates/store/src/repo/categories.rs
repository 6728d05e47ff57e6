//! Product categories.

use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Value};
use uuid::Uuid;

use super::{delete_where, insert_model, save_model};
use crate::entity::category::{self, ActiveModel, Column, Entity, Model};
use crate::entity::product;
use crate::error::{Constraint, db_error};
use crate::keyset::{Direction, page_after};

/// Category names are unique, compared case-insensitively.
pub const NAME_UNIQUE: Constraint = Constraint {
    name: "categories_name_key_key",
    table: "categories",
    columns: &["name_key"],
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

/// Whether any product is in the category.
pub async fn has_products(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<bool> {
    let n = product::Entity::find()
        .filter(product::Column::CategoryId.eq(id))
        .count(conn)
        .await
        .map_err(db_error)?;
    Ok(n > 0)
}

/// Categories by name (case-insensitively), then id.
pub async fn list(conn: &impl ConnectionTrait, page: &PageRequest) -> AppResult<Page<Model>> {
    let cursor: Option<(String, Uuid)> = page.decode_cursor()?;
    let rows = page_after(
        Entity::find(),
        Column::NameKey,
        Column::Id,
        Direction::Asc,
        cursor.map(|(key, id)| (Value::from(key), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    Page::from_overfetch(rows, page, |c: &category::Model| (c.name_key.clone(), c.id))
}

/// The categories with these ids.
pub async fn by_ids(conn: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<Model>> {
    super::find_in(conn, Entity::find, Column::Id, ids).await
}

/// The categories with these name keys (lower-cased names).
pub async fn by_name_keys(conn: &impl ConnectionTrait, keys: &[String]) -> AppResult<Vec<Model>> {
    super::find_in(conn, Entity::find, Column::NameKey, keys).await
}
