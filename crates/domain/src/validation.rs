//! Field-level validation that reports every failing field at once.

pub use crate::error::FieldError;
use crate::error::{AppError, AppResult};

/// Collects field errors; [`Validator::finish`] turns them into one `validation.failed` error.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error for `field` unless `ok` holds.
    pub fn check(&mut self, ok: bool, field: &str, code: &str, message: &str) -> &mut Self {
        if !ok {
            self.errors.push(FieldError::new(field, code, message));
        }
        self
    }

    pub fn push(&mut self, error: FieldError) -> &mut Self {
        self.errors.push(error);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn finish(self) -> AppResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_when_nothing_failed() {
        let mut v = Validator::new();
        v.check(true, "a", "x", "y");
        assert!(v.finish().is_ok());
    }

    #[test]
    fn collects_all_failures() {
        let mut v = Validator::new();
        v.check(false, "a", "required", "is required")
            .check(true, "b", "required", "is required")
            .check(false, "c", "too_long", "is too long");
        let err = v.finish().err();
        let fields = err
            .as_ref()
            .and_then(|e| e.details())
            .and_then(|d| d.get("fields"))
            .and_then(|f| f.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.get("field")?.as_str())
                    .collect::<Vec<_>>()
            });
        assert_eq!(fields, Some(vec!["a", "c"]));
    }
}
