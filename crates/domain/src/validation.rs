//! Field-level validation that reports every failing field at once.

pub use crate::error::FieldError;
use crate::error::{AppError, AppResult};

/// Collects field errors; [`Validator::finish`] turns them into one `validation.failed` error.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

/// Characters that break a line or disguise text without being control characters: line and
/// paragraph separators, zero-width characters and bidirectional overrides/isolates.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    )
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

    /// A single-line text field: `min..=max` characters once trimmed, and no line breaks, tabs
    /// or other control characters (the HTTP edge already refuses NUL and most controls).
    pub fn line(&mut self, field: &str, value: &str, min: usize, max: usize) -> &mut Self {
        let n = value.trim().chars().count();
        if value
            .chars()
            .any(|c| c.is_control() || is_invisible_format(c))
        {
            self.errors.push(FieldError::new(
                field,
                "control_character",
                "must be a single line without control or invisible formatting characters",
            ));
        } else if !(min..=max).contains(&n) {
            self.errors.push(FieldError::new(
                field,
                "length",
                format!("must be {min}–{max} characters"),
            ));
        }
        self
    }

    /// A multi-line text field: at most `max` characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> &mut Self {
        self.check(
            value.chars().nth(max).is_none(),
            field,
            "too_long",
            &format!("must be at most {max} characters"),
        )
    }

    pub fn push(&mut self, error: FieldError) -> &mut Self {
        self.errors.push(error);
        self
    }

    /// The errors collected, for a caller that reports them its own way.
    pub fn into_errors(self) -> Vec<FieldError> {
        self.errors
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
    fn a_line_is_bounded_and_has_no_breaks() {
        let codes = |value: &str| {
            let mut v = Validator::new();
            v.line("f", value, 1, 5);
            v.errors.iter().map(|e| e.code.clone()).collect::<Vec<_>>()
        };
        assert!(codes("Zoë").is_empty());
        assert!(codes("  five ").is_empty(), "trimmed before counting");
        assert_eq!(codes("   "), vec!["length"]);
        assert_eq!(codes("sixsix"), vec!["length"]);
        assert_eq!(codes("a\nb"), vec!["control_character"]);
        assert_eq!(codes("a\tb"), vec!["control_character"]);
        assert_eq!(
            codes("a\u{2028}b"),
            vec!["control_character"],
            "line separator"
        );
        assert_eq!(
            codes("\u{202E}gnp.exe"),
            vec!["control_character"],
            "bidi override"
        );
    }

    #[test]
    fn text_may_span_lines_up_to_its_limit() {
        let mut v = Validator::new();
        v.text("d", "one\ntwo", 7).text("e", "one\ntwo", 6);
        assert_eq!(
            v.errors.iter().map(|e| e.field.clone()).collect::<Vec<_>>(),
            vec!["e"]
        );
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
