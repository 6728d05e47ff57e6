//! Secrets the server must read back (TOTP seeds) are stored sealed: ChaCha20-Poly1305 under a
//! key derived from the app secret, a fresh random nonce per value. A database dump alone does
//! not reveal them. Rotating `app_secret` makes sealed values unreadable: affected users re-enrol
//! (`depot admin reset-mfa`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use depot_domain::{AppError, AppResult};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: &str = "v1.";

#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

fn unreadable() -> AppError {
    AppError::internal(std::io::Error::other(
        "a sealed secret cannot be opened (was app_secret changed?)",
    ))
}

impl Sealer {
    /// Derives the sealing key from the app secret (HMAC-SHA256 with a purpose label).
    pub fn new(app_secret: &[u8]) -> AppResult<Self> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(app_secret).map_err(AppError::internal)?;
        mac.update(b"depot/sealed-secrets/v1");
        let key = mac.finalize().into_bytes();
        Ok(Self {
            cipher: ChaCha20Poly1305::new(&key),
        })
    }

    pub fn seal(&self, plaintext: &[u8]) -> AppResult<String> {
        let nonce_bytes: [u8; 12] = rand::random();
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce_bytes), plaintext)
            .map_err(|_| AppError::internal(std::io::Error::other("sealing failed")))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    pub fn open(&self, sealed: &str) -> AppResult<Vec<u8>> {
        let body = sealed.strip_prefix(VERSION).ok_or_else(unreadable)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| unreadable())?;
        if bytes.len() < 12 + 16 {
            return Err(unreadable());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| unreadable())?;
        self.cipher
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| unreadable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_refuses_tampering_or_another_key() {
        let sealer = Sealer::new(b"app secret one").unwrap();
        let a = sealer.seal(b"totp seed").unwrap();
        let b = sealer.seal(b"totp seed").unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(!a.contains("totp"));
        assert_eq!(sealer.open(&a).unwrap(), b"totp seed");
        let other = Sealer::new(b"app secret two").unwrap();
        assert!(other.open(&a).is_err());
        let mut tampered = a.clone();
        tampered.pop();
        tampered.push(if a.ends_with('A') { 'B' } else { 'A' });
        assert!(sealer.open(&tampered).is_err());
        assert!(
            sealer.open("GEZDGNBVGY3TQOJQ").is_err(),
            "plain base32 is not sealed"
        );
    }
}
