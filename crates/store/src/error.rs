//! Database errors become application errors with stable codes — never a bare 500 for a
//! constraint violation, never a leaked SQL message.

use depot_domain::{AppError, ErrorCategory};
use sea_orm::{DbErr, RuntimeErr};
use sqlx::error::ErrorKind;

/// Maps a database error onto the application error it means for the client.
pub fn db_error(err: DbErr) -> AppError {
    let Some(sqlx_err) = sqlx_error(&err) else {
        return match err {
            DbErr::ConnectionAcquire(_) => unavailable(err),
            other => AppError::internal(other),
        };
    };
    if let sqlx::Error::Database(db) = sqlx_err {
        let constraint = db.constraint().map(str::to_owned);
        let (category, code, message) = match db.kind() {
            ErrorKind::UniqueViolation => (
                ErrorCategory::Conflict,
                "db.unique_violation",
                "a record with the same key already exists",
            ),
            ErrorKind::ForeignKeyViolation => (
                ErrorCategory::Validation,
                "db.reference_violation",
                "a referenced record does not exist or is still in use",
            ),
            ErrorKind::CheckViolation => (
                ErrorCategory::Validation,
                "db.check_violation",
                "a value is outside what is allowed",
            ),
            ErrorKind::NotNullViolation => (
                ErrorCategory::Validation,
                "db.not_null_violation",
                "a required value is missing",
            ),
            _ => return AppError::internal(err),
        };
        let mut app = AppError::new(category, code, message);
        if let Some(name) = constraint {
            app = app.with_details(serde_json::json!({ "constraint": name }));
        }
        return app.with_source(err);
    }
    if matches!(
        sqlx_err,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
    ) {
        return unavailable(err);
    }
    AppError::internal(err)
}

fn sqlx_error(err: &DbErr) -> Option<&sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e),
        _ => None,
    }
}

fn unavailable(err: DbErr) -> AppError {
    AppError::unavailable("db.unavailable", "the database is unavailable, try again")
        .with_source(err)
}
