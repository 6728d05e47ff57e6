//! The authorisation cache handle: what a service that changes roles, assignments, users or
//! sessions needs to make every instance re-read them, and to spread an access-token denial.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use depot_adapters::cache::Cache;
use uuid::Uuid;

use crate::uow::UnitOfWork;

/// Cache namespace of everything authorisation depends on; bumped on every change to roles,
/// assignments, users or sessions.
pub const AUTHZ_NAMESPACE: &str = "authz";

/// Invalidates cached grants and publishes denied tokens — after commit only.
#[derive(Clone)]
pub struct AuthzCache {
    cache: Arc<Cache>,
}

impl AuthzCache {
    pub fn new(cache: Arc<Cache>) -> Self {
        Self { cache }
    }

    /// Makes every instance re-read permissions and sessions on its next request.
    pub async fn invalidate(&self) {
        self.cache.invalidate_namespace(AUTHZ_NAMESPACE).await;
    }

    /// [`AuthzCache::invalidate`] once `uow` has committed.
    pub fn invalidate_after_commit(&self, uow: &mut UnitOfWork) {
        let this = self.clone();
        uow.after_commit(move || async move { this.invalidate().await });
    }

    /// Once `uow` has committed (the denylist row is the source of truth), flags the access
    /// token `jti` as denied on every instance until it expires anyway.
    pub fn deny_after_commit(&self, uow: &mut UnitOfWork, jti: Uuid, expires_at: DateTime<Utc>) {
        let ttl = (expires_at - uow.now())
            .to_std()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_secs(1));
        let cache = self.cache.clone();
        uow.after_commit(move || async move {
            cache.set_flag(&denylist_flag(&jti.to_string()), ttl).await;
        });
    }
}

/// The cache flag marking a denied access token.
pub(crate) fn denylist_flag(jti: &str) -> String {
    format!("denied-jti:{jti}")
}
