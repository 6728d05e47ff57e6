//! `reservations`: stock held for a sales order line, per batch.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reservations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub sales_order_id: Uuid,
    pub line_id: Uuid,
    pub seq: i32,
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub batch_id: Uuid,
    pub quantity: i64,
    pub returned: i64,
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
