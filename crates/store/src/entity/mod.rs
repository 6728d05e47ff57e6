//! SeaORM entities, one module per table.

pub mod audit_log;
pub mod idempotency_key;
pub mod job;
pub mod lease;
pub mod outbound_email;
pub mod outbox;
pub mod password_reset;
pub mod processed_message;
pub mod recovery_code;
pub mod refresh_token;
pub mod revoked_token;
pub mod role;
pub mod role_permission;
pub mod scheduled_job;
pub mod session;
pub mod user;
pub mod user_role;
