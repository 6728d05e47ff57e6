//! Password hashing: argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane), run on the
//! blocking pool so a login never stalls the async workers.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use depot_domain::{AppError, AppResult};

/// Memory cost in KiB (OWASP: 19 MiB).
pub const MEMORY_KIB: u32 = 19_456;
/// Passes.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .unwrap_or_else(|_| Params::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub async fn hash(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal(std::io::Error::other(e.to_string())))
    })
    .await
    .map_err(AppError::internal)?
}

/// Checks `password` against `stored`; with no stored hash (unknown user, no password set) it
/// verifies against a dummy hash anyway, so every failure costs the same time.
pub async fn verify(password: String, stored: Option<String>) -> AppResult<bool> {
    let dummy = dummy_hash();
    tokio::task::spawn_blocking(move || {
        let (phc, real) = match stored {
            Some(s) => (s, true),
            None => (dummy.as_ref().clone(), false),
        };
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        // Verify with the parameters stored in the hash (they may be older than today's).
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        // Counted after the work, so the count proves a hash ran (for a real account or not).
        metrics::counter!("auth_password_verifications_total").increment(1);
        ok && real
    })
    .await
    .map_err(AppError::internal)
}

fn dummy_hash() -> Arc<String> {
    static DUMMY: OnceLock<Arc<String>> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let salt = SaltString::generate(&mut OsRng);
            Arc::new(
                argon2()
                    .hash_password(b"not a password anyone has", &salt)
                    .map(|h| h.to_string())
                    .unwrap_or_default(),
            )
        })
        .clone()
}

/// Warms the dummy hash so the first failed login is not slower than the rest.
pub async fn warm_up() {
    let _ = tokio::task::spawn_blocking(dummy_hash).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_the_owasp_parameters_and_verifies() {
        let phc = hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            verify("correct horse battery".into(), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify("wrong horse battery".into(), Some(phc))
                .await
                .unwrap()
        );
        assert!(
            !verify("not a password anyone has".into(), None)
                .await
                .unwrap()
        );
    }
}
