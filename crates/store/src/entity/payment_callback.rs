//! `payment_callbacks`: every gateway report about a payment that was acted on (IPN or the
//! recovery job's query), once per `dedup_key` — a repeated one is recognised and ignored.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_callbacks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub payment_id: Uuid,
    /// `ipn` or `query`.
    pub source: String,
    /// `val:<val_id>` for a validated transaction, `<tran_id>:<status>` otherwise.
    pub dedup_key: String,
    /// The gateway's status (`VALID`, `FAILED`, …).
    pub status: String,
    /// What it did (`paid`, `review`, `failed`, `flagged:amount_mismatch`, `ignored`, …).
    pub outcome: String,
    /// What was posted or answered, redacted (JSON).
    pub payload: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
