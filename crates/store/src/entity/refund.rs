//! `refunds`: money given back from a payment, one row per refund (partial refunds add up in
//! `payments.refunded`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refunds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub payment_id: Uuid,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    pub remarks: String,
    /// `RefundState`.
    pub state: String,
    /// The gateway's id of the refund, once it accepted it.
    pub refund_ref_id: Option<String>,
    /// Why the gateway refused it.
    pub reason: Option<String>,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
