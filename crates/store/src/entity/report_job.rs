//! `report_jobs`: one row per report requested.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "report_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Option<Uuid>,
    pub kind: String,
    /// The resolved parameters, a JSON object.
    pub params: String,
    pub format: String,
    /// SHA-256 of (kind, params, format, pii): identical requests share it.
    pub fingerprint: String,
    /// Whether personal columns are shown (decided when the job was created).
    pub shows_pii: bool,
    pub status: String,
    /// 0–100.
    pub progress: i16,
    pub rows: i64,
    pub bytes: i64,
    /// Where the export lies (succeeded jobs until they expire).
    pub object_key: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub request_id: Option<String>,
    /// Until when the worker running it holds it.
    pub lease_until: Option<DateTimeUtc>,
    pub attempts: i64,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// When the export is deleted (succeeded jobs).
    pub expires_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
