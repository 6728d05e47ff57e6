//! `imports`: one row per file submitted for import.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "imports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub kind: String,
    pub mode: String,
    pub replace_existing: bool,
    pub status: String,
    pub file_name: Option<String>,
    /// SHA-256 of the file, hex.
    pub checksum: String,
    pub bytes: i64,
    pub rows: i64,
    pub rows_done: i64,
    pub error_count: i64,
    /// The row errors, a JSON array (at most the configured number).
    pub errors: String,
    /// What it did or would do, a JSON object.
    pub summary: String,
    /// Why it failed when no row is at fault, a JSON object `{code, message}`.
    pub failure: Option<String>,
    pub request_id: Option<String>,
    /// Until when the worker running it holds it.
    pub lease_until: Option<DateTimeUtc>,
    pub attempts: i64,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
