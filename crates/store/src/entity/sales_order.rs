//! `sales_orders`: sales order heads (money in minor units of `currency`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sales_orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub location_id: Uuid,
    pub owner_id: Uuid,
    pub currency: String,
    pub state: String,
    pub notes: Option<String>,
    pub total: i64,
    pub amount_paid: i64,
    pub reserved_until: Option<DateTimeUtc>,
    pub created_by: Option<Uuid>,
    pub confirmed_at: Option<DateTimeUtc>,
    pub paid_at: Option<DateTimeUtc>,
    pub fulfilled_at: Option<DateTimeUtc>,
    pub cancelled_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
