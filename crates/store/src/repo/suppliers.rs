//! Suppliers.

use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::trade::SupplierFilter;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, Value,
};
use uuid::Uuid;

use super::{delete_where, insert_model, save_model};
use crate::entity::purchase_order;
use crate::entity::supplier::{ActiveModel, Column, Entity, Model};
use crate::error::db_error;
use crate::keyset::{Direction, page_after};
use crate::search::containing;

pub async fn insert(conn: &impl ConnectionTrait, row: Model) -> AppResult<Model> {
    insert_model::<ActiveModel>(conn, row).await
}

pub async fn save(conn: &impl ConnectionTrait, row: Model) -> AppResult<Model> {
    save_model::<ActiveModel>(conn, row).await
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Model>> {
    Entity::find_by_id(id).one(conn).await.map_err(db_error)
}

/// The supplier with its row locked for the rest of the transaction.
pub async fn lock(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Model>> {
    Entity::find_by_id(id)
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db_error)
}

pub async fn delete(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<u64> {
    delete_where::<Entity>(conn, Column::Id.eq(id)).await
}

/// Whether any purchase order names the supplier.
pub async fn has_orders(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<bool> {
    Ok(purchase_order::Entity::find()
        .filter(purchase_order::Column::SupplierId.eq(id))
        .count(conn)
        .await
        .map_err(db_error)?
        > 0)
}

/// Suppliers by name (case-insensitively), then id.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &SupplierFilter,
    page: &PageRequest,
) -> AppResult<Page<Model>> {
    let cursor: Option<(String, Uuid)> = page.decode_cursor()?;
    let mut select = Entity::find();
    if let Some(active) = filter.active {
        select = select.filter(Column::Active.eq(active));
    }
    if let Some(search) = &filter.search {
        select = select.filter(Column::Search.like(containing(&search.to_lowercase())));
    }
    let rows = page_after(
        select,
        Column::NameKey,
        Column::Id,
        Direction::Asc,
        cursor.map(|(key, id)| (Value::from(key), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    Page::from_overfetch(rows, page, |s: &Model| (s.name_key.clone(), s.id))
}
