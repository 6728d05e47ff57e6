//! SeaORM entities, one module per table.

pub mod audit_log;
pub mod idempotency_key;
pub mod job;
pub mod lease;
pub mod outbound_email;
pub mod outbox;
pub mod processed_message;
pub mod scheduled_job;
