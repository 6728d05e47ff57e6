//! One router module per capability.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod debug;
pub mod ops;
pub mod roles;
pub mod stock;
pub mod users;
