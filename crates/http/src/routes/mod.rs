//! One router module per capability.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod crm;
pub mod debug;
pub mod imports;
pub mod notifications;
pub mod ops;
pub mod payments;
pub mod purchasing;
pub mod realtime;
pub mod reports;
pub mod roles;
pub mod sales;
pub mod simulator;
pub mod stock;
pub mod users;
pub mod webhooks;
