//! SeaORM entities, one module per table.

pub mod audit_log;
pub mod idempotency_key;
pub mod job;
pub mod outbox;
