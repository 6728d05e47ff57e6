//! `payments`: payments of sales orders (at most one active per order and method).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub sales_order_id: Uuid,
    pub method: String,
    pub state: String,
    pub amount: i64,
    pub currency: String,
    pub reference: Option<String>,
    pub tran_id: Option<String>,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
