//! The authenticated caller of one request and what it may do.

use depot_domain::ErrorCode;
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use depot_domain::auth::Permission;
use depot_domain::{Actor, AppError, AppResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The authenticated caller of one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub email: String,
    pub roles: Vec<String>,
    pub permissions: BTreeSet<String>,
    /// The access token's id and expiry (for logout).
    pub jti: Uuid,
    pub token_expires_at: DateTime<Utc>,
}

impl Principal {
    /// The caller as the actor of a change.
    pub fn actor(&self) -> Actor {
        Actor::User(self.user_id)
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(permission.code())
    }

    /// `auth.forbidden` (403) unless the caller holds `permission`.
    pub fn require(&self, permission: Permission) -> AppResult<()> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(AppError::new(
                ErrorCode::AuthForbidden,
                format!("this requires the {} permission", permission.code()),
            )
            .with_details(serde_json::json!({ "permission": permission.code() })))
        }
    }

    /// Ownership: a record owned by `owner` is visible to its owner, or to holders of
    /// `manage_all`; to anyone else it does not exist (404, not 403 — no probing for ids).
    pub fn check_owner(
        &self,
        owner: Uuid,
        manage_all: Permission,
        not_found: AppError,
    ) -> AppResult<()> {
        if owner == self.user_id || self.has(manage_all) {
            Ok(())
        } else {
            Err(not_found)
        }
    }
}
