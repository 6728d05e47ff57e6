//! Versioned schema migrations, one set for SQLite and PostgreSQL, embedded in the binary.
//!
//! Run them with `depot migrate up|down|status`; dev profiles auto-migrate on start, prod never
//! does. Every enum-like column is also checked by the database (`CHECK (… IN (…))`).

use sea_orm_migration::prelude::*;

mod m20261128_000001_platform;
mod m20261128_000002_messaging;
mod m20261128_000003_outbound_email;
mod m20261128_000004_identity;
mod m20261129_000005_audit_actor_name;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_platform::Migration),
            Box::new(m20261128_000002_messaging::Migration),
            Box::new(m20261128_000003_outbound_email::Migration),
            Box::new(m20261128_000004_identity::Migration),
            Box::new(m20261129_000005_audit_actor_name::Migration),
        ]
    }
}

// The values each enum-like column allows come from the domain's state enums, so the
// database's CHECK and the code can never disagree.
use depot_domain::state::{
    EmailStatus, IdempotencyStatus, JobStatus, OutboxStatus, RefreshTokenStatus, UserStatus,
};

/// Values allowed in `jobs.status`.
pub const JOB_STATUSES: &[&str] = JobStatus::VALUES;
/// Values allowed in `outbox.status`.
pub const OUTBOX_STATUSES: &[&str] = OutboxStatus::VALUES;
/// Values allowed in `idempotency_keys.status`.
pub const IDEMPOTENCY_STATUSES: &[&str] = IdempotencyStatus::VALUES;
/// Values allowed in `outbound_emails.status`.
pub const EMAIL_STATUSES: &[&str] = EmailStatus::VALUES;
/// Values allowed in `users.status`.
pub const USER_STATUSES: &[&str] = UserStatus::VALUES;
/// Values allowed in `refresh_tokens.status`.
pub const REFRESH_TOKEN_STATUSES: &[&str] = RefreshTokenStatus::VALUES;
