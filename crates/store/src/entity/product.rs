//! `products`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "products")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub sku: String,
    pub sku_key: String,
    pub name: String,
    pub unit: String,
    pub category_id: Option<Uuid>,
    pub barcode: Option<String>,
    pub reorder_point: Option<i64>,
    pub reorder_quantity: Option<i64>,
    pub tracks_expiry: bool,
    pub depletion_policy: Option<String>,
    pub status: String,
    pub search: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
