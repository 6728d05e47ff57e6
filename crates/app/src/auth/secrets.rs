//! Random opaque secrets and their digests: refresh tokens, reset tokens, recovery codes, CSRF.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A URL-safe random token of `bytes` bytes of entropy (refresh: 32 bytes = 256 bits).
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    URL_SAFE_NO_PAD.encode(buf)
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    rand::rng().fill(buf.as_mut_slice());
    buf
}

/// Hex SHA-256: the stored form of a high-entropy secret, and a file's checksum. (Passwords are
/// low-entropy and use argon2id instead; these tokens cannot be guessed, so a fast digest is
/// the right tool.)
pub fn digest(data: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(data.as_ref()))
}

/// HMAC-SHA256 over `parts`, base64url. Each part is length-prefixed (8 bytes, big-endian), so
/// the encoding is unambiguous: `["a", "b"]` and `["a|b"]` (or `["ab"]`) never sign alike.
pub fn sign(key: &[u8], parts: &[&str]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// HMAC accepts keys of any length; this cannot happen.
fn unreachable_hmac() -> Hmac<Sha256> {
    #[allow(clippy::expect_used)]
    Hmac::<Sha256>::new_from_slice(b"k").expect("HMAC takes any key length")
}

/// Constant-time string equality.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Ten recovery codes like `k7m3-x9qp-2fzt`: 12 characters from a 32-letter alphabet without
/// look-alikes (60 bits each).
pub fn recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..10)
        .map(|_| {
            let chars: Vec<char> = (0..12)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            chars
                .chunks(4)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// Recovery codes are compared without dashes, spaces or case.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_digests_stable() {
        let a = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32));
        assert_eq!(digest("x"), digest("x"));
        assert_eq!(digest("x").len(), 64);
    }

    #[test]
    fn signatures_depend_on_every_part_and_the_key() {
        let s = sign(b"key", &["a", "b"]);
        assert_ne!(s, sign(b"key", &["a", "c"]));
        assert_ne!(s, sign(b"other", &["a", "b"]));
        // Part boundaries are part of what is signed.
        assert_ne!(s, sign(b"key", &["a|b"]));
        assert_ne!(s, sign(b"key", &["ab"]));
        assert_ne!(sign(b"key", &["a", ""]), sign(b"key", &["a"]));
        assert_eq!(s.len(), 43, "32 bytes, base64url without padding");
        assert!(same(&s, &sign(b"key", &["a", "b"])));
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_normalise() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(
            codes.iter().collect::<std::collections::HashSet<_>>().len(),
            10
        );
        assert_eq!(normalize_recovery_code(" K7M3-x9qp-2FZT "), "k7m3x9qp2fzt");
    }
}
