//! The password policy (length as typed, breached passwords, the account's own details,
//! guessability) and the shape of emails and phone numbers.

use std::collections::HashSet;
use std::io::Read;
use std::sync::OnceLock;

use crate::validation::FieldError;

/// 43,940 breached passwords of 12+ characters, lower-cased (see `data/README.md`).
const BREACHED_PASSWORDS_GZ: &[u8] = include_bytes!("../../data/breached-passwords.txt.gz");

/// The product's name: a password made of it is among the first an attacker tries.
pub const PRODUCT_NAME: &str = "depot";

/// The lowest zxcvbn score (0–4) accepted: 3 is "safely unguessable: moderate protection from
/// offline slow-hash scenarios".
const MIN_SCORE: u8 = 3;

fn breached_passwords() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut text = String::new();
        // The list is compiled in; a corrupt copy cannot build a release that passes the tests.
        if flate2::read::GzDecoder::new(BREACHED_PASSWORDS_GZ)
            .read_to_string(&mut text)
            .is_err()
        {
            text.clear();
        }
        text.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// What a password must not be made of: the account's own email and name.
#[derive(Debug, Clone, Copy, Default)]
pub struct PasswordContext<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
}

impl PasswordContext<'_> {
    /// The words an attacker who knows the account tries first: the email, its local part, the
    /// words of the name, the product's name.
    fn words(&self) -> Vec<String> {
        let email = self.email.trim().to_lowercase();
        let mut words = vec![email.clone(), PRODUCT_NAME.to_owned()];
        if let Some((local, _)) = email.split_once('@') {
            words.extend(
                local
                    .split(|c: char| !c.is_alphanumeric())
                    .map(str::to_owned),
            );
            words.push(local.to_owned());
        }
        words.extend(
            self.display_name
                .to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .map(str::to_owned),
        );
        words.retain(|w| w.chars().count() >= 3);
        // Longest first, so the whole email goes before its parts.
        words.sort_by_key(|w| std::cmp::Reverse(w.len()));
        words.dedup();
        words
    }

    /// The same details as zxcvbn "user inputs", which it penalises inside longer passwords.
    fn words_ref(&self) -> Vec<&str> {
        let mut words = vec![self.email, self.display_name, PRODUCT_NAME];
        if let Some((local, _)) = self.email.split_once('@') {
            words.push(local);
        }
        words.retain(|w| !w.is_empty());
        words
    }
}

/// OWASP ASVS-style rules: length counted in characters exactly as typed (no trimming, no
/// normalisation, spaces allowed); not a known breached password; not built from the account's
/// email, name or the product's name; not easy to guess (zxcvbn score of at least 3).
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
    pub fn validate(
        &self,
        field: &str,
        password: &str,
        context: &PasswordContext<'_>,
    ) -> crate::AppResult<()> {
        let errors = self.check(field, password, context);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(crate::AppError::validation(errors))
        }
    }

    /// Every rule `password` breaks, as field errors on `field`.
    pub fn check(
        &self,
        field: &str,
        password: &str,
        context: &PasswordContext<'_>,
    ) -> Vec<FieldError> {
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
            // Too long to estimate cheaply, and refused anyway.
            return errors;
        }
        let lowered = password.to_lowercase();
        if breached_passwords().contains(&lowered) {
            errors.push(FieldError::new(
                field,
                "password.common",
                "appears in lists of breached passwords; choose another",
            ));
        } else if built_from(&lowered, &context.words()) {
            errors.push(FieldError::new(
                field,
                "password.context",
                "must not be made of your email, your name or the product's name",
            ));
        } else if chars >= self.min_chars {
            let words: Vec<&str> = context.words_ref();
            let score = u8::from(zxcvbn::zxcvbn(password, &words).score());
            if score < MIN_SCORE {
                errors.push(FieldError::new(
                    field,
                    "password.weak",
                    "is too easy to guess (repeated, sequential or common words); add \
                     unrelated words",
                ));
            }
        }
        errors
    }
}

/// Whether `password` (lower-cased) is context words padded with digits, punctuation and
/// spaces: it holds at least one, and fewer than four letters remain once they are removed.
fn built_from(password: &str, words: &[String]) -> bool {
    let mut rest = password.to_owned();
    for word in words {
        rest = rest.replace(word.as_str(), "");
    }
    rest.len() < password.len() && rest.chars().filter(|c| c.is_alphabetic()).count() < 4
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

    const ANN: PasswordContext<'static> = PasswordContext {
        email: "Ann.Smith@Example.com",
        display_name: "Ann Smith",
    };

    fn codes(p: &str) -> Vec<String> {
        PasswordPolicy::default()
            .check("password", p, &ANN)
            .into_iter()
            .map(|e| e.code)
            .collect()
    }

    #[test]
    fn length_is_counted_in_characters_as_typed() {
        assert_eq!(codes("seven77"), ["password.too_short"]);
        let long: String = "kettle mango violin 87 "
            .repeat(6)
            .chars()
            .take(129)
            .collect();
        assert_eq!(codes(&long), ["password.too_long"]);
        assert!(codes(&long[..128]).is_empty());
        // 12 characters, more bytes: accepted.
        assert!(codes("äöü kettle ß7").is_empty());
        // Spaces are part of the password.
        assert_eq!(codes("  short   "), ["password.too_short"]);
        let passphrase = "correct horse battery staple and a long tail of words 1234567";
        assert_eq!(passphrase.chars().count(), 61);
        assert!(codes(passphrase).is_empty());
    }

    #[test]
    fn breached_passwords_are_refused_whatever_their_case() {
        assert_eq!(codes("qwerty123456"), ["password.common"]);
        assert_eq!(codes("QWERTY123456"), ["password.common"]);
        assert_eq!(codes("password1234"), ["password.common"]);
        assert!(breached_passwords().len() >= 40_000);
        assert!(breached_passwords().iter().all(|p| p.chars().count() >= 12));
    }

    #[test]
    fn the_accounts_own_details_and_the_product_name_are_refused() {
        for p in [
            "ann.smith@example.com",
            "ANN.SMITH@EXAMPLE.COM",
            "Ann Smith 2024!!",
            "annsmith-annsmith",
            "depot depot depot",
            "Depot2026Depot!",
        ] {
            assert_eq!(codes(p), ["password.context"], "{p}");
        }
        // The same words are fine for another account.
        assert!(
            PasswordPolicy::default()
                .check(
                    "password",
                    "Ann Smith rides 4 camels",
                    &PasswordContext::default()
                )
                .is_empty()
        );
    }

    #[test]
    fn low_variety_strings_are_refused() {
        for p in [
            "            ",
            "mnopqrstuvwxyz",
            "kjkjkjkjkjkjkjkj",
            "987698769876",
        ] {
            assert_eq!(codes(p), ["password.weak"], "{p:?}");
        }
        // Some are breached as well; refused either way.
        assert_eq!(codes("aaaaaaaaaaaa"), ["password.common"]);
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
