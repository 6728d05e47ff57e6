//! Repositories: one module per aggregate. Functions take any connection (`&DatabaseTransaction`
//! inside a unit of work, or the reader) and return application errors.

pub mod audit;
pub mod credentials;
pub mod emails;
pub mod idempotency;
pub mod jobs;
pub mod outbox;
pub mod processed;
pub mod roles;
pub mod schedule;
pub mod sessions;
pub mod users;
