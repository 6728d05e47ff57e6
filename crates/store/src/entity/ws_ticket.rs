//! `ws_tickets`: single-use, short-lived tickets that open a WebSocket.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ws_tickets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// SHA-256 of the ticket; the ticket itself is never stored.
    pub token_hash: String,
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// The Origin the ticket was asked for from; the socket must come from the same one.
    pub origin: Option<String>,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
