//! `receipt_lines`: what one receipt took in, per batch.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "receipt_lines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub receipt_id: Uuid,
    pub line_no: i32,
    pub purchase_order_line_id: Uuid,
    pub product_id: Uuid,
    pub batch_id: Uuid,
    pub quantity: i64,
    pub lot: Option<String>,
    pub expiry: Option<Date>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
