//! `stock_movements` (append-only: the database refuses UPDATE and DELETE).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stock_movements")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub batch_id: Uuid,
    pub kind: String,
    pub quantity: i64,
    pub balance_after: i64,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub reference_type: Option<String>,
    pub reference_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
