//! Products of the catalogue.

use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::stock::ProductFilter;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Value};
use uuid::Uuid;

use super::{delete_where, find_in, insert_model, page_by_key, save_model, upsert_by_id};
use crate::entity::product::{ActiveModel, Column, Entity, Model};
use crate::error::{Constraint, db_error};
use crate::keyset::{Direction, page_after};
use crate::search::containing;

/// SKUs are unique, compared case-insensitively.
pub const SKU_UNIQUE: Constraint = Constraint {
    name: "products_sku_key_key",
    table: "products",
    columns: &["sku_key"],
};

/// A barcode names one product.
pub const BARCODE_UNIQUE: Constraint = Constraint {
    name: "products_barcode_key",
    table: "products",
    columns: &["barcode"],
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

/// The products with these ids (in no particular order).
pub async fn by_ids(conn: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<Model>> {
    Entity::find()
        .filter(Column::Id.is_in(ids.iter().copied()))
        .all(conn)
        .await
        .map_err(db_error)
}

/// The product whose barcode is one of `codes` (the first found).
pub async fn by_barcode(conn: &impl ConnectionTrait, codes: &[String]) -> AppResult<Option<Model>> {
    Entity::find()
        .filter(Column::Barcode.is_in(codes.iter().cloned()))
        .one(conn)
        .await
        .map_err(db_error)
}

/// Products by SKU (case-insensitively), then id.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &ProductFilter,
    page: &PageRequest,
) -> AppResult<Page<Model>> {
    let cursor: Option<(String, Uuid)> = page.decode_cursor()?;
    let mut select = Entity::find();
    if let Some(status) = filter.status {
        select = select.filter(Column::Status.eq(status.as_str()));
    }
    if let Some(category) = filter.category_id {
        select = select.filter(Column::CategoryId.eq(category));
    }
    if let Some(search) = &filter.search {
        select = select.filter(Column::Search.like(containing(&search.to_lowercase())));
    }
    let rows = page_after(
        select,
        Column::SkuKey,
        Column::Id,
        Direction::Asc,
        cursor.map(|(key, id)| (Value::from(key), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    Page::from_overfetch(rows, page, |p: &Model| (p.sku_key.clone(), p.id))
}

/// The products with these SKU keys (lower-cased SKUs).
pub async fn by_sku_keys(conn: &impl ConnectionTrait, keys: &[String]) -> AppResult<Vec<Model>> {
    find_in(conn, Entity::find, Column::SkuKey, keys).await
}

/// The products holding any of these barcodes.
pub async fn by_barcodes(conn: &impl ConnectionTrait, codes: &[String]) -> AppResult<Vec<Model>> {
    find_in(conn, Entity::find, Column::Barcode, codes).await
}

/// Writes these products: new ids are inserted, known ones get the `update` columns.
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

/// Products in SKU-key order after `after`, `limit` at a time.
pub async fn after_sku_key(
    conn: &impl ConnectionTrait,
    after: Option<String>,
    limit: u64,
) -> AppResult<Vec<Model>> {
    page_by_key::<Entity, _>(conn, Column::SkuKey, after, limit).await
}
