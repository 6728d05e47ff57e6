//! Turns a bearer token into a [`Principal`]: signature, claims, the `jti` denylist, the
//! user's "not before" time, the session's state and the user's permissions (cached per
//! session, re-read on the next request after any change anywhere — see
//! [`depot_adapters::cache::Cache::get_or_load_fresh`]).

use depot_domain::ErrorCode;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use depot_adapters::cache::{Cache, Flags};
use depot_domain::state::UserStatus;
use depot_domain::{AppError, AppResult, Clock};
use depot_store::Db;
use depot_store::repo::{roles, sessions as session_repo, users};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::authz::{AUTHZ_NAMESPACE, denylist_flag};
use super::principal::Principal;
use super::tokens::{Claims, TokenKeys, TokenUse};

/// Longest a cached principal is trusted without a version check succeeding (a bound for the
/// case where Redis missed an invalidation while it was down).
const PRINCIPAL_TTL: Duration = Duration::from_secs(10);

/// What the principal of one session looks like in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionGrant {
    email: String,
    active: bool,
    tokens_not_before: Option<i64>,
    session_live: bool,
    session_expires_at: i64,
    roles: Vec<String>,
    permissions: BTreeSet<String>,
}

#[derive(Clone)]
pub struct Authenticator {
    db: Db,
    clock: Arc<dyn Clock>,
    cache: Arc<Cache>,
    keys: Arc<TokenKeys>,
}

impl Authenticator {
    pub fn new(db: Db, clock: Arc<dyn Clock>, cache: Arc<Cache>, keys: Arc<TokenKeys>) -> Self {
        Self {
            db,
            clock,
            cache,
            keys,
        }
    }

    /// Resolves a bearer access token into the caller, or `auth.invalid_token` (401).
    ///
    /// The authorisation version and the token's denylist flag come from local state kept in
    /// step through Redis pub/sub (no I/O) while in sync, from Redis in one round trip when
    /// not, and from the database when Redis does not answer. Without Redis both are
    /// in-process (the embedded setup is one API process).
    pub async fn authenticate(&self, token: &str) -> AppResult<Principal> {
        let now = self.clock.now();
        let claims = self.keys.verify(token, TokenUse::Access, now)?;
        let jti = claims.jti.to_string();
        let (grant, flags) = self.grant(claims.sub, claims.sid, &jti).await?;
        let denied = match flags {
            Flags::Known(flags) => flags.first().copied().unwrap_or(true),
            Flags::Unknown => session_repo::is_access_token_denied(self.db.reader(), &jti).await?,
        };
        if denied
            || !grant.active
            || !grant.session_live
            || grant.session_expires_at <= now.timestamp()
            || grant.tokens_not_before.is_some_and(|nb| claims.iat < nb)
        {
            return Err(revoked());
        }
        Ok(Principal {
            user_id: claims.sub,
            session_id: claims.sid,
            email: grant.email,
            roles: grant.roles,
            permissions: grant.permissions,
            jti: claims.jti,
            token_expires_at: claims.expires_at(),
        })
    }

    /// Whether a session is still good for a socket opened under it: the user active, the
    /// session neither revoked nor past its absolute expiry (answered like a request's check).
    pub async fn session_alive(&self, user_id: Uuid, session_id: Uuid) -> AppResult<bool> {
        let now = self.clock.now().timestamp();
        match self.grant(user_id, session_id, "-").await {
            Ok((grant, _)) => {
                Ok(grant.active && grant.session_live && grant.session_expires_at > now)
            }
            Err(err) if err.error_code() == ErrorCode::AuthInvalidToken => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Of these sessions, the ones still live (not revoked or expired, the user active), read
    /// from the database in a couple of queries however many there are.
    pub async fn live_sessions(
        &self,
        sessions: &[Uuid],
    ) -> AppResult<std::collections::HashSet<Uuid>> {
        session_repo::live_among(self.db.reader(), sessions, self.clock.now()).await
    }

    /// Bumped by every change to users, roles, assignments or sessions anywhere: when it has
    /// not moved, no session became dead except by expiry.
    pub async fn version(&self) -> u64 {
        self.cache.namespace_version(AUTHZ_NAMESPACE).await
    }

    /// Verifies a challenge or enrolment token (the MFA steps of sign-in).
    pub fn verify_step_token(&self, token: &str, expected: TokenUse) -> AppResult<Claims> {
        self.keys.verify(token, expected, self.clock.now())
    }

    /// The session's grant and the token's denylist flag.
    async fn grant(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        jti: &str,
    ) -> AppResult<(SessionGrant, Flags)> {
        let db = self.db.clone();
        self.cache
            .get_or_load_fresh(
                AUTHZ_NAMESPACE,
                &format!("{user_id}:{session_id}"),
                PRINCIPAL_TTL,
                &[denylist_flag(jti)],
                || async move {
                    let conn = db.reader();
                    let user = users::get(conn, user_id).await?.ok_or_else(revoked)?;
                    let session = session_repo::get(conn, session_id)
                        .await?
                        .filter(|s| s.user_id == user_id)
                        .ok_or_else(revoked)?;
                    let held = roles::of_user(conn, user_id).await?;
                    Ok(SessionGrant {
                        email: user.email,
                        active: user.status == UserStatus::Active.as_str(),
                        tokens_not_before: user.tokens_not_before.map(|t| t.timestamp()),
                        session_live: session.revoked_at.is_none(),
                        session_expires_at: session.absolute_expires_at.timestamp(),
                        roles: held.iter().map(|r| r.role.name.clone()).collect(),
                        permissions: held.into_iter().flat_map(|r| r.permissions).collect(),
                    })
                },
            )
            .await
    }
}

fn revoked() -> AppError {
    AppError::new(
        ErrorCode::AuthInvalidToken,
        "the access token is missing, invalid or expired",
    )
}
