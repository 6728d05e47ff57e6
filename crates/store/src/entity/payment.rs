//! `payments`: payments of sales orders (at most one active per order and method), manual or
//! through the gateway.

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
    /// The gateway's validation id of the transaction that paid (or tried to).
    pub val_id: Option<String>,
    /// The bank's transaction id (what a refund names).
    pub bank_tran_id: Option<String>,
    pub risk_level: Option<i32>,
    /// Where the buyer pays (a gateway session's page).
    pub gateway_url: Option<String>,
    /// Why the gateway's word was not believed (`PaymentFlag`).
    pub flag: Option<String>,
    /// Why it failed, when it did.
    pub failure: Option<String>,
    /// The last gateway answer about it, redacted (JSON).
    pub payload: Option<String>,
    /// Gateway session requests made.
    pub attempts: i32,
    /// Minor units refunded so far.
    pub refunded: i64,
    pub paid_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
