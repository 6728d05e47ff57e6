//! One router module per capability.

pub mod debug;
pub mod ops;
