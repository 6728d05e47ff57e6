//! Database errors become application errors with stable codes — never a bare 500 for a
//! constraint violation, never a leaked SQL message.

use depot_domain::{AppError, ErrorCategory};
use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// Maps a database error onto the application error it means for the client.
pub fn db_error(err: DbErr) -> AppError {
    if let Some(sql) = err.sql_err() {
        return match sql {
            SqlErr::UniqueConstraintViolation(_) => AppError::conflict(
                "db.unique_violation",
                "a record with the same key already exists",
            )
            .with_source(err),
            SqlErr::ForeignKeyConstraintViolation(_) => AppError::new(
                ErrorCategory::Validation,
                "db.reference_violation",
                "a referenced record does not exist or is still in use",
            )
            .with_source(err),
            _ => AppError::internal(err),
        };
    }
    if is_unavailable(&err) {
        return AppError::unavailable("db.unavailable", "the database is unavailable, try again")
            .with_source(err);
    }
    AppError::internal(err)
}

fn is_unavailable(err: &DbErr) -> bool {
    let sqlx_err = match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        DbErr::ConnectionAcquire(_) => return true,
        _ => return false,
    };
    matches!(
        **sqlx_err,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
    )
}
