//! Pure business rules of Depot.
//!
//! Nothing in this crate performs I/O, spawns tasks or knows about a database: it holds the
//! vocabulary every other crate shares — the error type with its stable codes, validation,
//! identifiers, the clock abstraction and keyset pagination.

pub mod actor;
pub mod audit;
pub mod auth;
pub mod cadence;
pub mod clock;
pub mod error;
pub mod error_code;
pub mod id;
pub mod import;
pub mod message;
pub mod notify;
pub mod pagination;
pub mod report;
pub mod state;
pub mod stock;
pub mod trade;
pub mod validation;

pub use actor::Actor;
pub use clock::Clock;
pub use error::{AppError, AppResult, ErrorCategory, ErrorCode};
pub use validation::{FieldError, Validator};
