//! `batches` (quantities in thousandths of the product's unit).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "batches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub lot: Option<String>,
    pub expiry: Option<Date>,
    pub received_at: DateTimeUtc,
    pub unit_cost: Option<i64>,
    pub currency: Option<String>,
    pub quantity: i64,
    /// How much of `quantity` is held for sales orders.
    pub reserved: i64,
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub closed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
