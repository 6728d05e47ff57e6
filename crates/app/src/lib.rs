//! Depot's use cases.
//!
//! [`AppContext`] is built once at startup from [`config::Settings`] and the adapters the edge
//! chose; it hands out services, one module per capability. Services write through a
//! [`uow::UnitOfWork`]; HTTP handlers and workers call services and never touch the database.

pub mod audit;
pub mod auth;
pub mod background;
pub mod backup;
pub mod catalog;
pub mod client;
pub mod config;
pub mod context;
pub mod crm;
pub mod dashboard;
pub mod debug;
pub mod health;
pub mod housekeeping;
pub mod idempotency;
pub mod imports;
pub mod lifecycle;
pub mod mail;
pub mod messaging;
pub mod notifications;
pub mod orders;
pub mod payments;
pub mod purchasing;
pub mod realtime;
pub mod reports;
pub mod roles;
pub mod sales;
pub mod schema;
pub mod stock;
pub mod trace;
pub mod uow;
pub mod users;
pub mod webhooks;

pub use client::ClientInfo;
pub use context::{Adapters, AppContext};
pub use lifecycle::Lifecycle;
