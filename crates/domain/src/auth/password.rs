//! The password policy (length as typed, common-password list) and the shape of emails and
//! phone numbers.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::validation::FieldError;

/// The 10,000 most common passwords (SecLists, `10-million-password-list-top-10000`).
const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");

fn common_passwords() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(|l| l.trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// OWASP ASVS-style rules: length counted in characters exactly as typed (no trimming, no
/// normalisation, spaces allowed), and no password from the common list.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_chars: 128,
        }
    }
}

impl PasswordPolicy {
    /// [`PasswordPolicy::check`] as a result: every problem as a field error on `field`.
    pub fn validate(&self, field: &str, password: &str) -> crate::AppResult<()> {
        let errors = self.check(field, password);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(crate::AppError::validation(errors))
        }
    }

    /// Every rule `password` breaks, as field errors on `field`.
    pub fn check(&self, field: &str, password: &str) -> Vec<FieldError> {
        let chars = password.chars().count();
        let mut errors = Vec::new();
        if chars < self.min_chars {
            errors.push(FieldError::new(
                field,
                "password.too_short",
                format!("must be at least {} characters", self.min_chars),
            ));
        }
        if chars > self.max_chars {
            errors.push(FieldError::new(
                field,
                "password.too_long",
                format!("must be at most {} characters", self.max_chars),
            ));
        }
        if common_passwords().contains(&password.to_lowercase()) {
            errors.push(FieldError::new(
                field,
                "password.common",
                "is one of the most common passwords; choose another",
            ));
        }
        errors
    }
}

/// The form of an email used for uniqueness and lookup: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A pragmatic check: one `@`, a non-empty local part, a dotted domain of sane characters, no
/// spaces, at most 254 characters.
pub fn validate_email(field: &str, email: &str) -> Option<FieldError> {
    let email = email.trim();
    let ok = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.len() <= 64
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
                    && domain
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
            }
            None => false,
        };
    (!ok).then(|| FieldError::new(field, "email.invalid", "is not a valid email address"))
}

/// E.164: `+` then 8–15 digits (spaces and dashes allowed while typing are not stored).
pub fn validate_phone(field: &str, phone: &str) -> Option<FieldError> {
    let digits = phone.strip_prefix('+').unwrap_or("");
    let ok = (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    (!ok).then(|| {
        FieldError::new(
            field,
            "phone.invalid",
            "must be in international format, e.g. +8801712345678",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(p: &str) -> Vec<String> {
        PasswordPolicy::default()
            .check("password", p)
            .into_iter()
            .map(|e| e.code)
            .collect()
    }

    #[test]
    fn length_is_counted_in_characters_as_typed() {
        assert_eq!(codes("seven77"), ["password.too_short"]);
        assert_eq!(codes(&"x".repeat(129)), ["password.too_long"]);
        assert!(codes(&"x".repeat(128)).is_empty());
        // 12 characters, 24 bytes: accepted.
        assert!(codes("ääääääääääää").is_empty());
        // Spaces are part of the password.
        assert_eq!(codes("  short   "), ["password.too_short"]);
        let passphrase = "correct horse battery staple and a long tail of words 1234567";
        assert_eq!(passphrase.chars().count(), 61);
        assert!(codes(passphrase).is_empty());
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        assert_eq!(codes("qwerty123456"), ["password.common"]);
        assert_eq!(codes("QWERTY123456"), ["password.common"]);
        // 10,000 entries, some equal once lower-cased.
        assert!(common_passwords().len() > 9_900);
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "First.Last+tag@example.com.bd"] {
            assert!(validate_email("email", ok).is_none(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "@b.com",
            "a@.com",
            "a@b..com",
        ] {
            assert!(validate_email("email", bad).is_some(), "{bad}");
        }
        assert_eq!(normalize_email("  Ann@Example.COM "), "ann@example.com");
    }

    #[test]
    fn phones() {
        assert!(validate_phone("phone", "+8801712345678").is_none());
        for bad in ["01712345678", "+0171234567", "+88017-1234", "+1234567"] {
            assert!(validate_phone("phone", bad).is_some(), "{bad}");
        }
    }
}
