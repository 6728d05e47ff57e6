//! CSRF protection for cookie-authenticated requests (the browser refresh flow).
//!
//! The token is an HMAC of the session id and the session's current CSRF nonce under the app
//! secret: it is bound to one session (another session's token fails), and rotating the nonce
//! (`POST /auth/csrf`) retires every earlier token. The browser gets it in the response body
//! and in a readable cookie and must echo it in `X-CSRF-Token` (signed double submit); the
//! request's `Origin` must also be one of the configured origins.

use depot_domain::{AppError, AppResult, ErrorCode};
use uuid::Uuid;

use super::secrets;

pub fn token(app_secret: &[u8], session_id: Uuid, nonce: &str) -> String {
    secrets::sign(app_secret, &["csrf", &session_id.to_string(), nonce])
}

/// Why a cookie-authenticated request was refused.
fn refused(code: ErrorCode, message: &'static str) -> AppError {
    metrics::counter!("csrf_failures_total", "reason" => code.as_str()).increment(1);
    AppError::new(code, message)
}

/// Checks the `Origin` header against the configured origins.
pub fn check_origin(origin: Option<&str>, allowed: &[String]) -> AppResult<()> {
    match origin {
        None => Err(refused(
            ErrorCode::CsrfOriginMissing,
            "a cookie-authenticated request must carry an Origin header",
        )),
        Some(o) if allowed.iter().any(|a| a == o) => Ok(()),
        Some(_) => Err(refused(
            ErrorCode::CsrfOriginNotAllowed,
            "the request's origin is not allowed",
        )),
    }
}

/// Checks the header token (and the cookie copy, when the client sent one) against the
/// session's expected token, in constant time.
pub fn check_token(expected: &str, header: Option<&str>, cookie: Option<&str>) -> AppResult<()> {
    let Some(header) = header else {
        return Err(refused(
            ErrorCode::CsrfTokenMissing,
            "the X-CSRF-Token header is required with cookie authentication",
        ));
    };
    if cookie.is_some_and(|c| !secrets::same(c, header)) || !secrets::same(expected, header) {
        return Err(refused(
            ErrorCode::CsrfTokenInvalid,
            "the CSRF token is not valid",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_the_session_and_the_nonce() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let t = token(b"secret", a, "n1");
        assert!(check_token(&t, Some(&t), Some(&t)).is_ok());
        assert!(check_token(&t, Some(&token(b"secret", b, "n1")), None).is_err());
        assert!(check_token(&t, Some(&token(b"secret", a, "n2")), None).is_err());
        assert!(check_token(&t, Some(&token(b"other", a, "n1")), None).is_err());
        assert!(check_token(&t, None, Some(&t)).is_err());
        assert!(check_token(&t, Some(&t), Some("different")).is_err());
    }

    #[test]
    fn origins_must_be_listed() {
        let allowed = vec!["https://app.example.com".to_owned()];
        assert!(check_origin(Some("https://app.example.com"), &allowed).is_ok());
        assert!(check_origin(Some("https://evil.example.com"), &allowed).is_err());
        assert!(check_origin(None, &allowed).is_err());
    }
}
