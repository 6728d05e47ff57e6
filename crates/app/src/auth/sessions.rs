//! Sign-in, token refresh, logout and the session list.

use depot_domain::ErrorCode;
use depot_domain::clock::span;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use depot_domain::auth::{Permission, normalize_email};
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::state::{RefreshTokenStatus, UserStatus};
use depot_domain::{Actor, AppError, AppResult};
use depot_store::DatabaseTransaction;
use depot_store::entity::{session, user};
use depot_store::repo::{roles, sessions as repo, users};
use serde::Serialize;
use uuid::Uuid;

use super::authz::AuthzCache;
use super::principal::Principal;
use super::rate_limit::{Action, AuthRateLimiter, Subject};
use super::security_events;
use super::settings::AuthConfig;
use super::tokens::{TokenKeys, TokenUse};
use super::{csrf, passwords, secrets};
use crate::audit::AuditEntry;
use crate::client::ClientInfo;
use crate::uow::{UnitOfWork, Writer};

/// Where the client signs in from.
#[derive(Debug, Clone, Default)]
pub struct Device {
    pub device_id: Option<String>,
    pub device_name: Option<String>,
}

/// Longest device id or name, in characters.
pub const DEVICE_FIELD_MAX: usize = 200;

impl Device {
    /// Each field, when given, is one line of at most [`DEVICE_FIELD_MAX`] characters.
    pub fn validate(&self) -> AppResult<()> {
        let mut v = depot_domain::Validator::new();
        for (field, value) in [
            ("device_id", &self.device_id),
            ("device_name", &self.device_name),
        ] {
            if let Some(value) = value {
                v.line(field, value, 0, DEVICE_FIELD_MAX);
            }
        }
        v.finish()
    }
}

/// A fresh pair of tokens for one session.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedTokens {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub session_id: Uuid,
    /// For browser clients: echo it in `X-CSRF-Token` on cookie-authenticated requests.
    pub csrf_token: String,
}

/// The result of the password step.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    Signed(IssuedTokens),
    /// The password was right and the account uses MFA: exchange the challenge and a code at
    /// `POST /auth/mfa/verify`.
    MfaRequired {
        challenge_token: String,
        expires_in: u64,
    },
}

/// The CSRF proof of a cookie-authenticated request.
#[derive(Debug, Clone, Default)]
pub struct CsrfProof {
    pub origin: Option<String>,
    pub header: Option<String>,
    pub cookie: Option<String>,
}

/// A session as its owner sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: Option<String>,
    pub device_name: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub mfa: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The session of the token making this request.
    pub current: bool,
}

fn view(s: session::Model, current: Uuid) -> SessionView {
    SessionView {
        current: s.id == current,
        id: s.id,
        user_id: s.user_id,
        device_id: s.device_id,
        device_name: s.device_name,
        user_agent: s.user_agent,
        ip: s.ip,
        mfa: s.mfa,
        created_at: s.created_at,
        last_used_at: s.last_used_at,
        expires_at: s.idle_expires_at.min(s.absolute_expires_at),
        revoked_at: s.revoked_at,
    }
}

/// The one answer to every failed sign-in: unknown email, wrong password, locked or disabled
/// account all look the same.
pub fn invalid_credentials() -> AppError {
    AppError::new(
        ErrorCode::AuthInvalidCredentials,
        "the email or password is incorrect",
    )
}

fn invalid_refresh() -> AppError {
    AppError::new(
        ErrorCode::AuthInvalidRefreshToken,
        "the refresh token is invalid or expired; sign in again",
    )
}

fn login_metric(result: &'static str) {
    metrics::counter!("auth_logins_total", "result" => result).increment(1);
}

enum Refreshed {
    Tokens(IssuedTokens),
    Invalid,
    Reused,
}

/// Sign-in, refresh, logout and sessions.
#[derive(Clone)]
pub struct SessionService {
    pub(super) writer: Writer,
    pub(super) keys: Arc<TokenKeys>,
    pub(super) limiter: Arc<AuthRateLimiter>,
    pub(super) config: Arc<AuthConfig>,
    pub(super) authz: AuthzCache,
}

impl SessionService {
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The password step of sign-in.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        device: Device,
        client: &ClientInfo,
    ) -> AppResult<LoginOutcome> {
        device.validate()?;
        let email = normalize_email(email);
        self.limiter
            .check_ip_and_account(Action::Login, client.ip_key(), &email)
            .await?;
        let now = self.writer.now();
        let found = users::by_email(self.writer.db().reader(), &email).await?;
        // Always pay for one hash, so unknown accounts answer as slowly as known ones.
        let password_ok = passwords::verify(
            password,
            found.as_ref().and_then(|u| u.password_hash.clone()),
        )
        .await?;
        let Some(user) = found else {
            // The same database work as a wrong password (an UPDATE that matches nothing, the
            // read-back, the audit row), so the two answer alike in time as well as in body.
            let uow = self.writer.begin(Actor::Anonymous, client).await?;
            users::record_failed_login(uow.tx(), Uuid::nil(), uow.now()).await?;
            uow.audit(
                AuditEntry::new("login.failure")
                    .details(serde_json::json!({ "reason": "unknown_account" })),
            )
            .await?;
            uow.commit().await?;
            login_metric("failure");
            return Err(invalid_credentials());
        };
        let locked = user.locked_until.is_some_and(|until| until > now);
        if user.status != UserStatus::Active.as_str() || locked {
            let reason = if locked { "locked" } else { "disabled" };
            let uow = self.writer.begin(Actor::User(user.id), client).await?;
            // The same database work as the other failures (see the unknown-account path).
            users::record_failed_login(uow.tx(), Uuid::nil(), uow.now()).await?;
            uow.audit(
                AuditEntry::new("login.refused")
                    .target("user", user.id)
                    .details(serde_json::json!({ "reason": reason })),
            )
            .await?;
            uow.commit().await?;
            login_metric(reason);
            return Err(invalid_credentials());
        }
        if !password_ok {
            self.record_failure(&user, client).await?;
            return Err(invalid_credentials());
        }

        let held = roles::of_user(self.writer.db().reader(), user.id).await?;
        if user.mfa_enabled {
            let token = self.step_token(user.id, TokenUse::MfaChallenge)?;
            login_metric("mfa_challenge");
            return Ok(LoginOutcome::MfaRequired {
                challenge_token: token,
                expires_in: self.config.challenge_ttl.as_secs(),
            });
        }
        if let Some(role) = held.iter().find(|r| r.role.mfa_required) {
            let token = self.step_token(user.id, TokenUse::MfaEnrolment)?;
            login_metric("mfa_enrolment_required");
            return Err(AppError::new(
                ErrorCode::AuthMfaEnrolmentRequired,
                format!(
                    "the {} role requires two-factor authentication: enrol an authenticator app \
                     with the enrolment token at POST /api/v1/auth/mfa/totp/enroll, confirm a code \
                     at POST /api/v1/auth/mfa/totp/enable, then sign in again",
                    role.role.name
                ),
            )
            .with_details(serde_json::json!({
                "enrolment_token": token,
                "expires_in": self.config.challenge_ttl.as_secs(),
                "enroll_url": "/api/v1/auth/mfa/totp/enroll",
                "enable_url": "/api/v1/auth/mfa/totp/enable",
            })));
        }
        let tokens = self.open_session(user.id, false, device, client).await?;
        Ok(LoginOutcome::Signed(tokens))
    }

    /// Counts a wrong password and locks the account when the policy says so.
    async fn record_failure(&self, user: &user::Model, client: &ClientInfo) -> AppResult<()> {
        let id = user.id;
        let uow = self.writer.begin(Actor::User(id), client).await?;
        let now = uow.now();
        let failures = users::record_failed_login(uow.tx(), id, now).await?;
        let lock = self
            .config
            .lockout
            .lock_after(u32::try_from(failures).unwrap_or(0));
        uow.audit(
            AuditEntry::new("login.failure")
                .target("user", id)
                .details(serde_json::json!({ "failures": failures })),
        )
        .await?;
        if let Some(duration) = lock {
            let until =
                now + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::hours(1));
            users::set_lock(uow.tx(), id, Some(until)).await?;
            uow.audit(AuditEntry::new("login.locked").target("user", id).details(
                serde_json::json!({
                    "failures": failures,
                    "locked_until": until,
                }),
            ))
            .await?;
        }
        uow.commit().await?;
        login_metric(if lock.is_some() { "lockout" } else { "failure" });
        Ok(())
    }

    /// Opens a session after every factor was checked: resets the failure count, records
    /// the sign-in and issues tokens.
    pub(crate) async fn open_session(
        &self,
        user_id: Uuid,
        mfa: bool,
        device: Device,
        client: &ClientInfo,
    ) -> AppResult<IssuedTokens> {
        let mut uow = self.writer.begin(Actor::User(user_id), client).await?;
        let now = uow.now();
        let config = &self.config;
        users::reset_failures(uow.tx(), user_id, now).await?;
        // Compared as stored (truncated), so a long user agent is recognised next time.
        let device_id = device.device_id.as_deref().map(|d| truncate(d, 200));
        let user_agent = client.user_agent.as_deref().map(|d| truncate(d, 500));
        let (signed_in_before, known_device) = repo::device_history(
            uow.tx(),
            user_id,
            device_id.as_deref(),
            user_agent.as_deref(),
        )
        .await?;
        let session = repo::insert(
            uow.tx(),
            session::Model {
                id: depot_domain::id::new_id(),
                user_id,
                device_id: device.device_id.map(|d| truncate(&d, 200)),
                device_name: device.device_name.map(|d| truncate(&d, 200)),
                user_agent: client.user_agent.as_deref().map(|d| truncate(d, 500)),
                ip: client.ip.clone(),
                mfa,
                csrf_nonce: secrets::random_token(16),
                created_at: now,
                last_used_at: now,
                idle_expires_at: now + span(config.idle_ttl),
                absolute_expires_at: now + span(config.absolute_ttl),
                revoked_at: None,
                revoked_reason: None,
            },
        )
        .await?;
        let tokens = self.issue_pair(&uow, &session).await?;
        uow.audit(
            AuditEntry::new("login.success")
                .target("session", session.id)
                .details(serde_json::json!({ "mfa": mfa })),
        )
        .await?;
        if signed_in_before && !known_device {
            let event =
                security_events::new_device_sign_in(&session).correlated(client.request_id.clone());
            uow.emit(&event);
        }
        uow.commit().await?;
        login_metric("success");
        Ok(tokens)
    }

    /// Exchanges a refresh token for a new pair, rotating it. A token that was already
    /// rotated is reuse — somebody kept a copy — and revokes the whole session. With `csrf`
    /// (the browser cookie flow) the request must also prove it comes from our client.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        csrf_proof: Option<CsrfProof>,
        client: &ClientInfo,
    ) -> AppResult<IssuedTokens> {
        self.limiter
            .check(Action::Refresh, Subject::Ip, client.ip_key())
            .await?;
        let hash = secrets::digest(refresh_token);
        let reader = self.writer.db().reader();
        let Some(row) = repo::find_refresh_token(reader, &hash).await? else {
            return Err(invalid_refresh());
        };
        let Some(session) = repo::get(reader, row.session_id).await? else {
            return Err(invalid_refresh());
        };
        self.limiter
            .check(
                Action::Refresh,
                Subject::Account,
                &session.user_id.to_string(),
            )
            .await?;
        if let Some(proof) = &csrf_proof {
            self.check_csrf(&session, proof)?;
        }

        let mut uow = self
            .writer
            .begin(Actor::User(session.user_id), client)
            .await?;
        let outcome = self.rotate(&mut uow, &hash).await?;
        uow.commit().await?;
        match outcome {
            Refreshed::Tokens(tokens) => Ok(tokens),
            Refreshed::Invalid => Err(invalid_refresh()),
            Refreshed::Reused => {
                metrics::counter!("auth_refresh_reuse_total").increment(1);
                Err(AppError::new(
                    ErrorCode::AuthRefreshTokenReused,
                    "this refresh token was already used; the session has been revoked",
                ))
            }
        }
    }

    /// The write half of a refresh, inside `uow`: re-reads the token and its session, and
    /// either rotates the token and issues a new pair, or — for a token already rotated —
    /// revokes the whole session (reuse).
    async fn rotate(&self, uow: &mut UnitOfWork, hash: &str) -> AppResult<Refreshed> {
        let now = uow.now();
        let Some(row) = repo::find_refresh_token(uow.tx(), hash).await? else {
            return Ok(Refreshed::Invalid);
        };
        let Some(session) = repo::get(uow.tx(), row.session_id).await? else {
            return Ok(Refreshed::Invalid);
        };
        let reused = match RefreshTokenStatus::parse(&row.status) {
            Some(RefreshTokenStatus::Rotated) => true,
            Some(RefreshTokenStatus::Active) => {
                if session.revoked_at.is_some()
                    || session.idle_expires_at <= now
                    || session.absolute_expires_at <= now
                {
                    return Ok(Refreshed::Invalid);
                }
                // Lost a race with another refresh of the same token: reuse too.
                !repo::rotate_refresh_token(uow.tx(), hash, now).await?
            }
            Some(RefreshTokenStatus::Revoked) | None => return Ok(Refreshed::Invalid),
        };
        if reused {
            let revoked = repo::revoke(uow.tx(), session.id, "refresh_token_reuse", now).await?;
            uow.audit(
                AuditEntry::new("auth.token_reuse")
                    .target("session", session.id)
                    .details(serde_json::json!({ "session_revoked": revoked })),
            )
            .await?;
            self.authz.invalidate_after_commit(uow);
            return Ok(Refreshed::Reused);
        }
        let active = users::get(uow.tx(), session.user_id)
            .await?
            .is_some_and(|u| u.status == UserStatus::Active.as_str());
        if !active {
            return Ok(Refreshed::Invalid);
        }
        let idle = (now + span(self.config.idle_ttl)).min(session.absolute_expires_at);
        repo::touch(uow.tx(), session.id, now, idle, uow.client().ip.clone()).await?;
        Ok(Refreshed::Tokens(self.issue_pair(uow, &session).await?))
    }

    fn check_csrf(&self, session: &session::Model, proof: &CsrfProof) -> AppResult<()> {
        let result = csrf::check_origin(proof.origin.as_deref(), &self.config.allowed_origins)
            .and_then(|()| {
                let expected =
                    csrf::token(&self.config.app_secret, session.id, &session.csrf_nonce);
                csrf::check_token(&expected, proof.header.as_deref(), proof.cookie.as_deref())
            });
        if let Err(e) = &result {
            tracing::warn!(code = e.code(), session_id = %session.id, "CSRF check failed");
        }
        result
    }

    /// Rotates the CSRF token of the session holding `refresh_token` (cookie flow; the
    /// current token must be presented).
    pub async fn rotate_csrf(
        &self,
        refresh_token: &str,
        proof: CsrfProof,
        client: &ClientInfo,
    ) -> AppResult<String> {
        let hash = secrets::digest(refresh_token);
        let reader = self.writer.db().reader();
        let row = repo::find_refresh_token(reader, &hash)
            .await?
            .filter(|r| r.status == RefreshTokenStatus::Active.as_str())
            .ok_or_else(invalid_refresh)?;
        let session = repo::get(reader, row.session_id)
            .await?
            .filter(|s| s.revoked_at.is_none())
            .ok_or_else(invalid_refresh)?;
        self.check_csrf(&session, &proof)?;
        let nonce = secrets::random_token(16);
        let uow = self
            .writer
            .begin(Actor::User(session.user_id), client)
            .await?;
        repo::set_csrf_nonce(uow.tx(), session.id, &nonce).await?;
        uow.commit().await?;
        Ok(csrf::token(&self.config.app_secret, session.id, &nonce))
    }

    /// Ends the caller's session and denylists the access token at once.
    pub async fn logout(&self, principal: &Principal, client: &ClientInfo) -> AppResult<()> {
        let mut uow = self.writer.begin(principal.actor(), client).await?;
        let now = uow.now();
        repo::revoke(uow.tx(), principal.session_id, "logout", now).await?;
        repo::deny_access_token(
            uow.tx(),
            &principal.jti.to_string(),
            principal.token_expires_at,
        )
        .await?;
        uow.audit(AuditEntry::new("logout").target("session", principal.session_id))
            .await?;
        self.authz
            .deny_after_commit(&mut uow, principal.jti, principal.token_expires_at);
        self.authz.invalidate_after_commit(&mut uow);
        uow.commit().await
    }

    /// Ends every other session of the caller.
    pub async fn logout_all(&self, principal: &Principal, client: &ClientInfo) -> AppResult<u64> {
        let mut uow = self.writer.begin(principal.actor(), client).await?;
        let ids = repo::revoke_all_of_user(
            uow.tx(),
            principal.user_id,
            Some(principal.session_id),
            "logout_all",
            uow.now(),
        )
        .await?;
        uow.audit(
            AuditEntry::new("logout.all")
                .target("user", principal.user_id)
                .details(serde_json::json!({ "sessions": ids })),
        )
        .await?;
        self.authz.invalidate_after_commit(&mut uow);
        uow.commit().await?;
        Ok(ids.len() as u64)
    }

    /// The caller's sessions (every user's with `sessions.manage_all` and `all_users`).
    pub async fn list_sessions(
        &self,
        principal: &Principal,
        all_users: bool,
        page: &PageRequest,
    ) -> AppResult<Page<SessionView>> {
        let scope = if all_users {
            principal.require(Permission::SessionsManageAll)?;
            None
        } else {
            Some(principal.user_id)
        };
        let page = repo::list(self.writer.db().reader(), scope, false, page).await?;
        Ok(Page {
            data: page
                .data
                .into_iter()
                .map(|s| view(s, principal.session_id))
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Revokes one session: the caller's own, or anyone's with `sessions.manage_all`.
    pub async fn revoke_session(
        &self,
        principal: &Principal,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let not_found = || AppError::new(ErrorCode::SessionsNotFound, "no such session");
        let session = repo::get(self.writer.db().reader(), id)
            .await?
            .ok_or_else(not_found)?;
        principal.check_owner(session.user_id, Permission::SessionsManageAll, not_found())?;
        let mut uow = self.writer.begin(principal.actor(), client).await?;
        // Another user's session: only if the caller holds everything its owner holds.
        super::grants::ensure_actor_outranks(&uow, session.user_id).await?;
        repo::revoke(uow.tx(), id, "revoked", uow.now()).await?;
        uow.audit(
            AuditEntry::new("session.revoked")
                .target("session", id)
                .details(serde_json::json!({ "owner": session.user_id })),
        )
        .await?;
        self.authz.invalidate_after_commit(&mut uow);
        uow.commit().await
    }

    /// A new refresh token for `session` (stored only as its digest) and an access token for
    /// its user: what sign-in and every refresh hand out.
    async fn issue_pair(
        &self,
        uow: &UnitOfWork,
        session: &session::Model,
    ) -> AppResult<IssuedTokens> {
        let now = uow.now();
        let refresh = secrets::random_token(32);
        repo::insert_refresh_token(uow.tx(), secrets::digest(&refresh), session.id, now).await?;
        let (access, _) = self.keys.issue(
            session.user_id,
            session.id,
            TokenUse::Access,
            now,
            self.config.access_ttl,
        )?;
        Ok(IssuedTokens {
            access_token: access,
            token_type: "Bearer",
            expires_in: self.config.access_ttl.as_secs(),
            refresh_token: refresh,
            session_id: session.id,
            csrf_token: csrf::token(&self.config.app_secret, session.id, &session.csrf_nonce),
        })
    }

    /// A short-lived token for an MFA step of sign-in (challenge or enrolment).
    pub(crate) fn step_token(&self, user_id: Uuid, use_: TokenUse) -> AppResult<String> {
        let (token, _) = self.keys.issue(
            user_id,
            Uuid::nil(),
            use_,
            self.writer.now(),
            self.config.challenge_ttl,
        )?;
        Ok(token)
    }
}

/// Kills every session and access token of a user at once (disable, role change, password
/// reset): the sessions are revoked and the user's "not before" moves to now.
pub(crate) async fn revoke_everything(
    tx: &DatabaseTransaction,
    user_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<Vec<Uuid>> {
    if let Some(mut user) = users::get(tx, user_id).await? {
        user.tokens_not_before = Some(now);
        user.updated_at = now;
        users::save(tx, user).await?;
    }
    repo::revoke_all_of_user(tx, user_id, None, reason, now).await
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
