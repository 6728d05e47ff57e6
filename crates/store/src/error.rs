//! Database errors become application errors with stable codes — never a bare 500 for a
//! constraint violation, never a leaked SQL message.

use depot_domain::AppError;
use depot_domain::ErrorCode;
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
        // PostgreSQL names the constraint; SQLite names the columns in its message
        // ("UNIQUE constraint failed: users.email_normalized").
        let constraint = db.constraint().map(str::to_owned);
        let columns = db
            .message()
            .split_once("constraint failed: ")
            .map(|(_, cols)| cols.trim().to_owned());
        match db.code().as_deref() {
            Some(SERIALIZATION_FAILURE) => {
                return AppError::new(
                    ErrorCode::DbSerializationFailure,
                    "a concurrent change got in the way, try again",
                )
                .with_source(err);
            }
            Some(DEADLOCK_DETECTED) => {
                return AppError::new(
                    ErrorCode::DbDeadlock,
                    "a concurrent change got in the way, try again",
                )
                .with_source(err);
            }
            Some(code) if code.starts_with(DATA_EXCEPTION_CLASS) => {
                return AppError::new(
                    ErrorCode::DbInvalidValue,
                    "a value cannot be stored (out of range or not valid text)",
                )
                .with_source(err);
            }
            _ => {}
        }
        let (code, message) = match db.kind() {
            ErrorKind::UniqueViolation => (
                ErrorCode::DbUniqueViolation,
                "a record with the same key already exists",
            ),
            ErrorKind::ForeignKeyViolation => (
                ErrorCode::DbReferenceViolation,
                "a referenced record does not exist or is still in use",
            ),
            ErrorKind::CheckViolation => (
                ErrorCode::DbCheckViolation,
                "a value is outside what is allowed",
            ),
            ErrorKind::NotNullViolation => {
                (ErrorCode::DbNotNullViolation, "a required value is missing")
            }
            _ => return AppError::internal(err),
        };
        let mut app = AppError::new(code, message);
        if let Some(name) = constraint {
            app = app.with_details(serde_json::json!({ "constraint": name }));
        } else if let Some(columns) = columns {
            app = app.with_details(serde_json::json!({ "columns": columns }));
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

/// PostgreSQL SQLSTATEs a whole unit of work may be retried after.
const SERIALIZATION_FAILURE: &str = "40001";
const DEADLOCK_DETECTED: &str = "40P01";
const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// PostgreSQL's class 22 "data exception": invalid text encoding, numeric overflow, a value out
/// of range — bad input, not a server fault.
const DATA_EXCEPTION_CLASS: &str = "22";

/// Whether `err` is a transient conflict between concurrent transactions (PostgreSQL
/// serialization failure or deadlock), after which the whole unit of work may run again.
pub fn is_transient_conflict(err: &AppError) -> bool {
    matches!(
        err.error_code(),
        ErrorCode::DbSerializationFailure | ErrorCode::DbDeadlock
    )
}

/// A named unique or check constraint, as both databases report it: PostgreSQL by `name`,
/// SQLite by `table.column` list. Declared beside the repository that writes the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constraint {
    pub name: &'static str,
    pub table: &'static str,
    pub columns: &'static [&'static str],
}

impl Constraint {
    /// Whether `err` is a violation of this very constraint (and not another one).
    pub fn violated_by(&self, err: &AppError) -> bool {
        let Some(details) = err.details() else {
            return false;
        };
        if let Some(name) = details.get("constraint").and_then(|v| v.as_str()) {
            return name == self.name;
        }
        if let Some(columns) = details.get("columns").and_then(|v| v.as_str()) {
            let expected: Vec<String> = self
                .columns
                .iter()
                .map(|c| format!("{}.{c}", self.table))
                .collect();
            return columns
                .split(',')
                .map(str::trim)
                .eq(expected.iter().map(String::as_str));
        }
        false
    }
}

/// Turns a violation of `constraint` into the error `mapped` builds; every other error passes
/// through unchanged. Use as `.map_err(on_constraint(&EMAIL_UNIQUE, email_taken))`.
pub fn on_constraint(
    constraint: &'static Constraint,
    mapped: impl FnOnce() -> AppError,
) -> impl FnOnce(AppError) -> AppError {
    move |err| {
        if constraint.violated_by(&err) {
            mapped().with_source(err)
        } else {
            err
        }
    }
}

/// Whether the database refused a statement for want of a privilege (SQLSTATE 42501).
pub(crate) fn is_insufficient_privilege(err: &DbErr) -> bool {
    matches!(sqlx_error(err), Some(sqlx::Error::Database(db)) if db.code().as_deref() == Some(INSUFFICIENT_PRIVILEGE))
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
    AppError::new(
        ErrorCode::DbUnavailable,
        "the database is unavailable, try again",
    )
    .with_source(err)
}
