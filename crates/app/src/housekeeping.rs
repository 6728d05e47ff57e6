//! Periodic housekeeping: removes data whose retention has passed.

use std::sync::Arc;

use depot_domain::{AppResult, Clock};
use depot_store::Db;
use depot_store::repo::{credentials, idempotency, sessions};

#[derive(Clone)]
pub struct HousekeepingService {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl HousekeepingService {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    /// Deletes idempotency records whose replay window has ended; returns how many.
    pub async fn purge_expired_idempotency_keys(&self) -> AppResult<u64> {
        let now = self.clock.now();
        self.db
            .transaction(move |tx| {
                Box::pin(async move { idempotency::delete_expired(tx, now).await })
            })
            .await
    }

    /// Deletes denylist entries of access tokens that have expired anyway, and password-reset
    /// tokens that expired more than a day ago; returns how many rows went.
    pub async fn purge_expired_credentials(&self) -> AppResult<u64> {
        let now = self.clock.now();
        self.db
            .transaction(move |tx| {
                Box::pin(async move {
                    let denials = sessions::purge_expired_denials(tx, now).await?;
                    let resets =
                        credentials::purge_password_resets(tx, now - chrono::Duration::days(1))
                            .await?;
                    Ok(denials + resets)
                })
            })
            .await
    }
}
