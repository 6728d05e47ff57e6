//! `users`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub email: String,
    /// Trimmed, lower-cased: the unique key.
    pub email_normalized: String,
    pub display_name: String,
    pub phone: Option<String>,
    /// PHC string (argon2id). `None` until the user sets a password through a reset link.
    pub password_hash: Option<String>,
    pub status: String,
    pub failed_logins: i32,
    pub locked_until: Option<DateTimeUtc>,
    /// Access tokens issued before this instant are dead.
    pub tokens_not_before: Option<DateTimeUtc>,
    pub mfa_enabled: bool,
    /// The TOTP seed, sealed with a key derived from the app secret (`v1.…`).
    pub mfa_secret: Option<String>,
    /// A seed being enrolled, sealed likewise, until a code from it is confirmed.
    pub mfa_pending_secret: Option<String>,
    /// The last TOTP step accepted; a code of this step or earlier is a replay.
    pub mfa_last_step: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
