//! Authentication and authorisation: who is calling, and what they may do.
//!
//! - [`AuthService::authenticate`] turns a bearer token into a [`Principal`]: signature, claims,
//!   the `jti` denylist, the user's "not before" time, the session's state, and the user's
//!   permissions (cached per session, re-read on the next request after any change anywhere —
//!   see [`depot_adapters::cache::Cache::get_or_load_fresh`]).
//! - Sign-in, refresh, logout and sessions live in [`sessions`]; TOTP in [`mfa`]; password
//!   change and reset in [`password`].
//! - Every security-relevant step is written to the audit log in the same transaction as the
//!   change it records.

pub mod csrf;
pub mod mfa;
pub mod password;
pub mod passwords;
pub mod rate_limit;
pub mod sealed;
pub mod secrets;
pub mod sessions;
pub mod tokens;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use depot_adapters::cache::{Cache, Flags};
use depot_domain::auth::{LockoutPolicy, Permission};
use depot_domain::{AppError, AppResult, Clock};
use depot_store::repo::{roles, sessions as session_repo, users};
use depot_store::{DatabaseTransaction, Db};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Settings;
use rate_limit::AuthRateLimiter;
use tokens::{Claims, TokenKeys, TokenUse};

/// Cache namespace of everything authorisation depends on; bumped on every change to roles,
/// assignments, users or sessions.
pub const AUTHZ_NAMESPACE: &str = "authz";
/// Longest a cached principal is trusted without a version check succeeding (a bound for the
/// case where Redis missed an invalidation while it was down).
const PRINCIPAL_TTL: Duration = Duration::from_secs(10);

/// Where a request came from, for sessions, rate limits and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl ClientInfo {
    /// The key rate limits count this client under.
    pub fn ip_key(&self) -> &str {
        self.ip.as_deref().unwrap_or("unknown")
    }
}

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
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(permission.code())
    }

    /// `auth.forbidden` (403) unless the caller holds `permission`.
    pub fn require(&self, permission: Permission) -> AppResult<()> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "auth.forbidden",
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
pub struct AuthService {
    pub(crate) db: Db,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cache: Arc<Cache>,
    pub(crate) keys: Arc<TokenKeys>,
    pub(crate) limiter: Arc<AuthRateLimiter>,
    pub(crate) config: Arc<AuthConfig>,
    pub(crate) sealer: sealed::Sealer,
}

/// Settings of the auth capability, resolved once. (No `Debug`: it holds the app secret.)
#[derive(Clone)]
pub struct AuthConfig {
    pub access_ttl: Duration,
    pub challenge_ttl: Duration,
    pub idle_ttl: Duration,
    pub absolute_ttl: Duration,
    pub reset_ttl: Duration,
    pub lockout: LockoutPolicy,
    pub app_secret: Vec<u8>,
    pub public_url: String,
    pub mfa_issuer: String,
    pub allowed_origins: Vec<String>,
}

impl AuthService {
    pub fn new(
        settings: &Settings,
        db: Db,
        clock: Arc<dyn Clock>,
        cache: Arc<Cache>,
    ) -> AppResult<Self> {
        let window = Duration::from_secs(settings.auth_rate_limit_window_secs.max(1));
        let limiter = AuthRateLimiter::new(
            cache.clone(),
            window,
            settings.auth_rate_limit_per_ip,
            settings.auth_rate_limit_per_account,
        );
        let app_secret = settings
            .app_secret
            .as_ref()
            .ok_or_else(|| {
                AppError::bad_request("config.app_secret", "app_secret is not configured")
            })?
            .expose()
            .as_bytes()
            .to_vec();
        Ok(Self {
            sealer: sealed::Sealer::new(&app_secret)?,
            db,
            clock,
            cache,
            keys: Arc::new(TokenKeys::from_settings(settings)?),
            limiter: Arc::new(limiter),
            config: Arc::new(AuthConfig {
                access_ttl: Duration::from_secs(settings.access_token_ttl_secs),
                challenge_ttl: Duration::from_secs(300),
                idle_ttl: Duration::from_secs(settings.refresh_idle_ttl_secs),
                absolute_ttl: Duration::from_secs(settings.refresh_absolute_ttl_secs),
                reset_ttl: Duration::from_secs(settings.password_reset_ttl_secs),
                lockout: LockoutPolicy {
                    threshold: settings.login_lockout_threshold,
                    base: Duration::from_secs(settings.login_lockout_base_secs),
                    max: Duration::from_secs(settings.login_lockout_max_secs),
                },
                app_secret,
                public_url: settings.public_url.trim_end_matches('/').to_owned(),
                mfa_issuer: settings.mfa_issuer.clone(),
                allowed_origins: settings.cors_origins.clone(),
            }),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Resolves a bearer access token into the caller, or `auth.invalid_token` (401).
    ///
    /// The authorisation version and the token's denylist flag come from local state kept in
    /// step through Redis pub/sub (no I/O) while in sync, from Redis in one round trip when
    /// not, and from the database when Redis does not answer. Without Redis both are
    /// in-process (the embedded setup is one API process).
    pub async fn authenticate(&self, token: &str) -> AppResult<Principal> {
        let now = self.now();
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

    /// Verifies a challenge or enrolment token (the MFA steps of sign-in).
    pub fn verify_step_token(&self, token: &str, expected: TokenUse) -> AppResult<Claims> {
        self.keys.verify(token, expected, self.now())
    }

    /// Denylists an access token: in the database (inside `tx`, the source of truth) here, and
    /// in Redis by [`AuthService::publish_denial`] after commit.
    pub(crate) async fn deny(
        &self,
        tx: &DatabaseTransaction,
        jti: Uuid,
        expires_at: DateTime<Utc>,
    ) -> AppResult<()> {
        session_repo::deny_access_token(tx, &jti.to_string(), expires_at).await
    }

    pub(crate) async fn publish_denial(&self, jti: Uuid, expires_at: DateTime<Utc>) {
        let ttl = (expires_at - self.now())
            .to_std()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_secs(1));
        self.cache
            .set_flag(&denylist_flag(&jti.to_string()), ttl)
            .await;
    }

    /// Makes every instance re-read permissions and sessions on its next request.
    pub async fn invalidate(&self) {
        self.cache.invalidate_namespace(AUTHZ_NAMESPACE).await;
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
                        active: user.status == "active",
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

pub use crate::audit::AuditEntry;
pub(crate) use crate::audit::record as audit_record;

/// The cache flag marking a denied access token.
fn denylist_flag(jti: &str) -> String {
    format!("denied-jti:{jti}")
}

fn revoked() -> AppError {
    AppError::unauthorized(
        "auth.invalid_token",
        "the access token is missing, invalid or expired",
    )
}
