//! One router module per capability.

pub mod audit;
pub mod auth;
pub mod debug;
pub mod ops;
pub mod roles;
pub mod users;
