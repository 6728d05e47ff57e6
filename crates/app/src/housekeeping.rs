//! Periodic housekeeping: removes data whose retention has passed.

use depot_domain::{Actor, AppResult};
use depot_store::repo::{credentials, idempotency, sessions};

use crate::background::Background;
use crate::client::ClientInfo;
use crate::uow::Writer;

/// Default cadence of the idempotency-key purge (overridable in `job_schedules`).
const IDEMPOTENCY_PURGE: &str = "every 10m";
/// Default cadence of the expired-credentials purge.
const CREDENTIALS_PURGE: &str = "every 1h";
const ACTOR: Actor = Actor::System("housekeeping");

#[derive(Clone)]
pub struct HousekeepingService {
    writer: Writer,
}

impl HousekeepingService {
    pub fn new(writer: Writer) -> Self {
        Self { writer }
    }

    /// Registers the purge jobs.
    pub fn register(&self, background: &mut Background) {
        let this = self.clone();
        background.periodic("purge_idempotency_keys", IDEMPOTENCY_PURGE, move || {
            let this = this.clone();
            async move { this.purge_expired_idempotency_keys().await }
        });
        let this = self.clone();
        background.periodic("purge_expired_credentials", CREDENTIALS_PURGE, move || {
            let this = this.clone();
            async move { this.purge_expired_credentials().await }
        });
    }

    /// Deletes idempotency records whose replay window has ended; returns how many.
    pub async fn purge_expired_idempotency_keys(&self) -> AppResult<u64> {
        let uow = self.writer.begin(ACTOR, &ClientInfo::local()).await?;
        let purged = idempotency::delete_expired(uow.tx(), uow.now()).await?;
        uow.commit().await?;
        Ok(purged)
    }

    /// Deletes denylist entries of access tokens that have expired anyway, and password-reset
    /// tokens that expired more than a day ago; returns how many rows went.
    pub async fn purge_expired_credentials(&self) -> AppResult<u64> {
        let uow = self.writer.begin(ACTOR, &ClientInfo::local()).await?;
        let now = uow.now();
        let denials = sessions::purge_expired_denials(uow.tx(), now).await?;
        let resets =
            credentials::purge_password_resets(uow.tx(), now - chrono::Duration::days(1)).await?;
        uow.commit().await?;
        Ok(denials + resets)
    }
}
