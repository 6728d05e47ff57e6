//! Depot's use cases.
//!
//! [`AppContext`] is built once at startup from [`config::Settings`] and holds the database, the
//! clock and the probes of the outside world. Services (one module per capability) own their
//! transactions; HTTP handlers and workers call services and never touch the database.

pub mod audit;
pub mod auth;
pub mod config;
pub mod context;
pub mod debug;
pub mod health;
pub mod housekeeping;
pub mod idempotency;
pub mod mail;
pub mod messaging;
pub mod roles;
pub mod users;

pub use context::{AppContext, Lifecycle};
