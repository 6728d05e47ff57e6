//! Idempotent requests (`Idempotency-Key`): the first response to a request is stored per
//! (caller, key) and replayed for every repeat of the same request, with no second effect.
//!
//! A request *begins* by claiming its key with one atomic insert. The winner runs and then
//! *completes* the key with its response (or *releases* it when the response must not be kept,
//! such as a 5xx, so that a retry can run). A copy that arrives while the first is still
//! running waits for it — polling the row — and replays its response; if the first takes longer
//! than the wait bound, the copy answers 409 `idempotency.in_progress`. The same key with a
//! different request answers 422 `idempotency.key_reused`.
//!
//! A claim is a lease: a process that dies mid-request leaves an `in_progress` row that counts
//! as free once the lease ends. Stored responses are kept for the retention period; expired
//! rows count as free at once and are deleted by the purge job.

use std::sync::Arc;
use std::time::Duration;

use depot_domain::clock::span;
use depot_domain::{AppError, AppResult, Clock, ErrorCode};
use depot_store::Db;
use depot_store::repo::idempotency::{self, COMMITTED, COMPLETED};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use depot_store::repo::idempotency::Claim;

use crate::config::Settings;

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Timings of the mechanism.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyOptions {
    /// How long a stored response is replayed (from its completion).
    pub retention: Duration,
    /// How long a claim is held without completion before it counts as abandoned. Must exceed
    /// the longest a request can run.
    pub lease: Duration,
    /// How often a waiting copy looks at the row.
    pub poll_interval: Duration,
    /// How long a copy waits for the first request before answering 409.
    pub wait_limit: Duration,
}

impl IdempotencyOptions {
    /// The options `settings` name (`idempotency_retention_secs`, default 24 h;
    /// `idempotency_wait_ms`, default 10 s), a lease of the request timeout plus a minute, and
    /// polling every 25 ms.
    pub fn for_settings(settings: &Settings) -> Self {
        Self {
            retention: Duration::from_secs(settings.idempotency_retention_secs),
            lease: settings.request_timeout() + Duration::from_secs(60),
            poll_interval: Duration::from_millis(25),
            wait_limit: Duration::from_millis(settings.idempotency_wait_ms),
        }
    }
}

/// The stored first response to a request.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    /// The JSON body; `None` for an empty one.
    pub body: Option<serde_json::Value>,
}

/// What to do with a request carrying a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// This request holds the key: run it, then [`complete`](IdempotencyService::complete) or
    /// [`release`](IdempotencyService::release) the claim.
    Run(Claim),
    /// The same request already ran: answer its response, do nothing else.
    Replay(StoredResponse),
}

#[derive(Clone)]
pub struct IdempotencyService {
    db: Db,
    clock: Arc<dyn Clock>,
    options: IdempotencyOptions,
}

impl IdempotencyService {
    pub fn new(db: Db, clock: Arc<dyn Clock>, settings: &Settings) -> Self {
        Self {
            db,
            clock,
            options: IdempotencyOptions::for_settings(settings),
        }
    }

    /// Claims `key` within `scope` for the request with `fingerprint`, or finds the response to
    /// replay. Waits (up to the wait limit) while another copy of the request is running.
    pub async fn begin(&self, scope: &str, key: &str, fingerprint: &str) -> AppResult<Begin> {
        let deadline = tokio::time::Instant::now() + self.options.wait_limit;
        // A waiting copy only reads the row (no write per poll); it tries to claim again only
        // once the row is gone or expired.
        let mut try_claim = true;
        loop {
            if try_claim && let Some(claim) = self.claim(scope, key, fingerprint).await? {
                return Ok(Begin::Run(claim));
            }
            let now = self.clock.now();
            try_claim = match idempotency::get(self.db.reader(), scope, key).await? {
                // Released, or expired: free.
                None => true,
                Some(row) if row.expires_at <= now => true,
                Some(row) if row.request_fingerprint != fingerprint => return Err(key_reused()),
                // Its effect committed, and the process that ran it did not live to store the
                // response: the request must not run again, and its answer is gone.
                Some(row)
                    if row.status == COMMITTED
                        && row.created_at + span(self.options.lease) <= now =>
                {
                    return Err(response_lost());
                }
                Some(row) if row.status == COMPLETED => {
                    let status = row
                        .response_status
                        .and_then(|s| u16::try_from(s).ok())
                        .ok_or_else(|| {
                            AppError::internal(std::io::Error::other(
                                "completed idempotency key without a response status",
                            ))
                        })?;
                    return Ok(Begin::Replay(StoredResponse {
                        status,
                        body: row.response_body,
                    }));
                }
                // The same request is running elsewhere: wait for it.
                Some(_) => false,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(in_progress());
            }
            if !try_claim {
                tokio::time::sleep(self.options.poll_interval).await;
            }
        }
    }

    async fn claim(&self, scope: &str, key: &str, fingerprint: &str) -> AppResult<Option<Claim>> {
        let now = self.clock.now();
        let lease_until = now + span(self.options.lease);
        let keep_until = lease_until + span(self.options.retention);
        let tx = self.db.begin().await?;
        let claim =
            idempotency::claim(&*tx, scope, key, fingerprint, now, lease_until, keep_until).await?;
        tx.commit().await?;
        Ok(claim)
    }

    /// Stores the response of the request holding `claim`, for replay until the retention
    /// period ends. Returns false if the claim was no longer held.
    pub async fn complete(&self, claim: &Claim, response: StoredResponse) -> AppResult<bool> {
        let expires_at = self.clock.now() + span(self.options.retention);
        let tx = self.db.begin().await?;
        let held = idempotency::complete(
            &*tx,
            claim,
            i32::from(response.status),
            response.body,
            expires_at,
        )
        .await?;
        tx.commit().await?;
        Ok(held)
    }

    /// Gives up the claim (the request had no effect worth replaying): a retry runs anew.
    /// Returns false if the claim is no longer held or its request committed an effect (then
    /// the response must be [completed](IdempotencyService::complete) instead).
    pub async fn release(&self, claim: &Claim) -> AppResult<bool> {
        let tx = self.db.begin().await?;
        let released = idempotency::release(&*tx, claim).await?;
        tx.commit().await?;
        Ok(released)
    }
}

/// The scope of a key: the caller and the operation, so that two users' keys (or one user's
/// keys on two operations) never meet.
pub fn scope(user_id: Uuid, method: &str, route: &str) -> String {
    format!("user:{user_id} {method} {route}")
}

/// What makes two requests "the same": SHA-256 (hex) over the method, the path (with its query)
/// and the body bytes, each length-prefixed.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), body] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hex::encode(hash.finalize())
}

/// A key is 1–255 printable ASCII characters (space to `~`).
pub fn validate_key(key: &[u8]) -> AppResult<&str> {
    let printable = key.iter().all(|b| (0x20..=0x7e).contains(b));
    match std::str::from_utf8(key) {
        Ok(key) if printable && (1..=MAX_KEY_LEN).contains(&key.len()) => Ok(key),
        _ => Err(invalid_key()),
    }
}

/// 400 `idempotency.invalid_key`.
pub fn invalid_key() -> AppError {
    AppError::new(
        ErrorCode::IdempotencyInvalidKey,
        "Idempotency-Key must be one value of 1-255 printable ASCII characters",
    )
}

/// 422 `idempotency.key_reused`.
pub fn key_reused() -> AppError {
    AppError::new(
        ErrorCode::IdempotencyKeyReused,
        "this Idempotency-Key was already used for a different request",
    )
}

/// 409 `idempotency.in_progress`.
pub fn in_progress() -> AppError {
    AppError::new(
        ErrorCode::IdempotencyInProgress,
        "a request with this Idempotency-Key is still in progress, retry later",
    )
}

/// 409 `idempotency.response_lost`.
pub fn response_lost() -> AppError {
    AppError::new(
        ErrorCode::IdempotencyResponseLost,
        "the request with this Idempotency-Key took effect, but its response was lost when the \
         server stopped; it will not run again: read the result instead",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        assert!(validate_key(b"a").is_ok());
        assert!(validate_key(b"order 42: retry #1 ~").is_ok());
        assert!(validate_key("k".repeat(255).as_bytes()).is_ok());
        for bad in [
            &b""[..],
            "k".repeat(256).as_bytes(),
            b"tab\there",
            b"new\nline",
            "caf\u{e9}".as_bytes(),
            b"\x7f",
        ] {
            let err = validate_key(bad).unwrap_err();
            assert_eq!(err.code(), "idempotency.invalid_key");
        }
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_body_unambiguously() {
        let base = fingerprint("POST", "/api/v1/users", b"{}");
        assert_eq!(base, fingerprint("POST", "/api/v1/users", b"{}"));
        assert_eq!(base.len(), 64);
        assert_ne!(base, fingerprint("PUT", "/api/v1/users", b"{}"));
        assert_ne!(base, fingerprint("POST", "/api/v1/roles", b"{}"));
        assert_ne!(base, fingerprint("POST", "/api/v1/users", b"{ }"));
        assert_ne!(
            fingerprint("POST", "/a", b"b"),
            fingerprint("POST", "/ab", b"")
        );
    }
}
