//! Persistence for Depot.
//!
//! [`Db`] owns the connection pools and is the only way into the database: services read through
//! [`Db::reader`] and write through [`Db::begin`] (a [`Tx`], the database side of a unit of
//! work). Migrations live in
//! [`migration`], one set for both SQLite and PostgreSQL; entities in [`entity`].

mod db;
pub mod entity;
mod error;
pub mod keyset;
pub mod migration;
pub mod repo;
pub mod search;

pub use db::{Backend, Db, DbOptions, MigrationState, PoolStats, Tx};
pub use error::db_error;
pub use error::{Constraint, is_transient_conflict, on_constraint};
pub use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
