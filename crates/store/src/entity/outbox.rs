//! `outbox`: domain events written in the transaction of the change, published by the relay.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub event_version: i32,
    pub payload: Json,
    pub correlation_id: Option<String>,
    /// W3C trace context of the work that emitted the event.
    pub traceparent: Option<String>,
    pub occurred_at: DateTimeUtc,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub published_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
