//! TOTP (RFC 6238): 30-second steps, 6 digits, HMAC-SHA1 — what every authenticator app speaks.
//!
//! [`matching_step`] accepts the code of the current step or of one step either side (clock
//! drift) and returns *which* step matched, so the caller can refuse any step at or before the
//! last one it accepted: a code cannot be replayed, even within its 90-second window.

use subtle_free::ct_eq;
use totp_rs::{Algorithm, TOTP};

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Steps accepted either side of the current one.
pub const SKEW_STEPS: u64 = 1;

fn totp(algorithm: Algorithm, digits: usize, secret: &[u8]) -> TOTP {
    TOTP::new_unchecked(algorithm, digits, 0, STEP_SECS, secret.to_vec())
}

/// The code for `step` (time / 30).
pub fn code_at_step(secret: &[u8], step: u64) -> String {
    totp(Algorithm::SHA1, DIGITS, secret).generate(step * STEP_SECS)
}

/// The step whose code `code` is, among the current step ± [`SKEW_STEPS`] at `unix_secs`.
pub fn matching_step(secret: &[u8], code: &str, unix_secs: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = unix_secs / STEP_SECS;
    let mut found = None;
    // Check every candidate (no early exit) so timing does not tell which step matched.
    for step in now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS {
        if ct_eq(code_at_step(secret, step).as_bytes(), code.as_bytes()) {
            found = Some(step);
        }
    }
    found
}

/// `otpauth://` URI for authenticator apps (the Key Uri Format).
pub fn otpauth_uri(issuer: &str, account: &str, secret_base32: &str) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_base32}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// RFC 4648 base32 without padding, as authenticator apps expect.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes RFC 4648 base32 (no padding, case-insensitive); `None` on any other character.
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for c in text.trim_end_matches('=').chars() {
        let value = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

mod subtle_free {
    /// Constant-time equality of two byte strings of public length.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: (time, SHA1, SHA256, SHA512) with the RFC's seeds, 8 digits.
    const VECTORS: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];

    #[test]
    fn rfc_6238_test_vectors() {
        let sha1 = b"12345678901234567890";
        let sha256 = b"12345678901234567890123456789012";
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234";
        for (time, c1, c256, c512) in VECTORS {
            assert_eq!(
                totp(Algorithm::SHA1, 8, sha1).generate(time),
                c1,
                "SHA1 @ {time}"
            );
            assert_eq!(
                totp(Algorithm::SHA256, 8, sha256).generate(time),
                c256,
                "SHA256 @ {time}"
            );
            assert_eq!(
                totp(Algorithm::SHA512, 8, sha512).generate(time),
                c512,
                "SHA512 @ {time}"
            );
        }
        // Our 6-digit codes are the last six digits of the same HOTP value.
        assert_eq!(code_at_step(sha1, 59 / STEP_SECS), "287082");
    }

    #[test]
    fn accepts_one_step_either_side_and_says_which() {
        let secret = b"12345678901234567890";
        let t = 1_111_111_111;
        let now = t / STEP_SECS;
        assert_eq!(
            matching_step(secret, &code_at_step(secret, now), t),
            Some(now)
        );
        assert_eq!(
            matching_step(secret, &code_at_step(secret, now - 1), t),
            Some(now - 1)
        );
        assert_eq!(
            matching_step(secret, &code_at_step(secret, now + 1), t),
            Some(now + 1)
        );
        assert_eq!(
            matching_step(secret, &code_at_step(secret, now - 2), t),
            None
        );
        assert_eq!(
            matching_step(secret, &code_at_step(secret, now + 2), t),
            None
        );
        assert_eq!(matching_step(secret, "12345", t), None);
        assert_eq!(matching_step(secret, "abcdef", t), None);
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn otpauth_uri_escapes_the_label() {
        let uri = otpauth_uri("Depot", "ann+x@example.com", "MZXW6YTBOI");
        assert_eq!(
            uri,
            "otpauth://totp/Depot:ann%2Bx@example.com?secret=MZXW6YTBOI&issuer=Depot&algorithm=SHA1&digits=6&period=30"
        );
    }
}
