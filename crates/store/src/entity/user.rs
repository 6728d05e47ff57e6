//! `users`.

use depot_domain::auth::normalize_email;
use depot_domain::state::UserStatus;
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

impl Model {
    /// A new active account for `email` (stored trimmed, keyed normalised): no failures, no
    /// lock, no MFA, created and updated `now`.
    pub fn new_active(
        id: Uuid,
        email: &str,
        display_name: &str,
        phone: Option<String>,
        password_hash: Option<String>,
        now: DateTimeUtc,
    ) -> Self {
        Self {
            id,
            email: email.trim().to_owned(),
            email_normalized: normalize_email(email),
            display_name: display_name.trim().to_owned(),
            phone,
            password_hash,
            status: UserStatus::Active.as_str().into(),
            failed_logins: 0,
            locked_until: None,
            tokens_not_before: None,
            mfa_enabled: false,
            mfa_secret: None,
            mfa_pending_secret: None,
            mfa_last_step: None,
            created_at: now,
            updated_at: now,
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
