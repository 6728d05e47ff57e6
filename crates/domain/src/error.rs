//! The one error type of the application layers.
//!
//! Every error carries a *category* (which decides the HTTP status), a *stable machine code*
//! (`stock.insufficient`, `request.malformed_json`, …) that clients may rely on, a message that is
//! safe to show, optional structured details, and — never shown to clients — the underlying cause.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

pub use crate::error_code::{ErrorCategory, ErrorCode};

/// One failing field: where, a stable code, and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An application error with a stable code from the [`ErrorCode`] catalogue.
pub struct AppError {
    code: ErrorCode,
    message: Cow<'static, str>,
    details: Option<Value>,
    source: Option<Cause>,
}

/// Result alias used across the application layers.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// An error with `code` (whose category decides the HTTP status) and a message that is
    /// safe to show.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            source: None,
        }
    }

    /// A validation failure listing every failing field.
    pub fn validation(fields: Vec<FieldError>) -> Self {
        let message = match fields.len() {
            1 => "1 field is invalid".to_owned(),
            n => format!("{n} fields are invalid"),
        };
        Self::new(ErrorCode::ValidationFailed, message)
            .with_details(serde_json::json!({ "fields": fields }))
    }

    /// An unexpected failure. The cause is kept for logs; clients see only a generic message.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        Self::new(ErrorCode::Internal, "internal server error").with_source(cause)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_source(mut self, cause: impl Into<Cause>) -> Self {
        self.source = Some(cause.into());
        self
    }

    pub fn category(&self) -> ErrorCategory {
        self.code.category()
    }

    /// The code as clients see it, e.g. `users.email_taken`.
    pub fn code(&self) -> &'static str {
        self.code.as_str()
    }

    pub fn error_code(&self) -> ErrorCode {
        self.code
    }

    /// The message that is safe to show to a client.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn details(&self) -> Option<&Value> {
        self.details.as_ref()
    }

    /// The full cause chain, for logs only.
    pub fn cause_chain(&self) -> String {
        let mut out = String::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|e| e as _);
        while let Some(err) = next {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&err.to_string());
            next = err.source();
        }
        out
    }
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}]: {}",
            self.category().as_str(),
            self.code.as_str(),
            self.message
        )?;
        let chain = self.cause_chain();
        if !chain.is_empty() {
            write!(f, "\ncaused by: {chain}")?;
        }
        Ok(())
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connection refused to 10.0.0.5:5432")
        }
    }
    impl std::error::Error for Inner {}

    #[test]
    fn internal_errors_hide_their_cause_from_the_message() {
        let err = AppError::internal(Inner);
        assert_eq!(err.message(), "internal server error");
        assert_eq!(err.code(), "internal");
        assert!(!err.to_string().contains("10.0.0.5"));
        assert_eq!(err.cause_chain(), "connection refused to 10.0.0.5:5432");
        assert!(format!("{err:?}").contains("caused by: connection refused"));
    }

    #[test]
    fn validation_lists_every_field() {
        let err = AppError::validation(vec![
            FieldError::new("email", "invalid", "not an email address"),
            FieldError::new("name", "required", "is required"),
        ]);
        assert_eq!(err.category(), ErrorCategory::Validation);
        assert_eq!(err.message(), "2 fields are invalid");
        let fields = &err.details().and_then(|d| d.get("fields")).cloned();
        assert_eq!(
            fields.as_ref().and_then(|f| f.as_array()).map(Vec::len),
            Some(2)
        );
    }
}
