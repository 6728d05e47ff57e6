//! Sign-in, token refresh, logout and the session list.

use chrono::{DateTime, Utc};
use depot_domain::auth::{Permission, normalize_email};
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::{AppError, AppResult};
use depot_store::DatabaseTransaction;
use depot_store::entity::{session, user};
use depot_store::repo::{roles, sessions as repo, users};
use serde::Serialize;
use uuid::Uuid;

use super::rate_limit::{Action, Subject};
use super::tokens::{TokenKeys, TokenUse};
use super::{AuditEntry, AuthConfig, AuthService, ClientInfo, Principal, csrf, passwords, secrets};

/// Where the client signs in from.
#[derive(Debug, Clone, Default)]
pub struct Device {
    pub device_id: Option<String>,
    pub device_name: Option<String>,
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
    AppError::unauthorized(
        "auth.invalid_credentials",
        "the email or password is incorrect",
    )
}

fn invalid_refresh() -> AppError {
    AppError::unauthorized(
        "auth.invalid_refresh_token",
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

impl AuthService {
    /// The password step of sign-in.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        device: Device,
        client: &ClientInfo,
    ) -> AppResult<LoginOutcome> {
        let email = normalize_email(email);
        self.limiter
            .check(Action::Login, Subject::Ip, client.ip_key())
            .await?;
        self.limiter
            .check(Action::Login, Subject::Account, &email)
            .await?;
        let now = self.now();
        let found = users::by_email(self.db.reader(), &email).await?;
        // Always pay for one hash, so unknown accounts answer as slowly as known ones.
        let password_ok = passwords::verify(
            password,
            found.as_ref().and_then(|u| u.password_hash.clone()),
        )
        .await?;
        let Some(user) = found else {
            let client = client.clone();
            self.db
                .transaction(|tx| {
                    Box::pin(async move {
                        super::audit_record(
                            tx,
                            now,
                            &client,
                            AuditEntry::new("login.failure")
                                .details(serde_json::json!({ "reason": "unknown_account" })),
                        )
                        .await
                    })
                })
                .await?;
            login_metric("failure");
            return Err(invalid_credentials());
        };
        let locked = user.locked_until.is_some_and(|until| until > now);
        if user.status != "active" || locked {
            let reason = if locked { "locked" } else { "disabled" };
            let (client, id) = (client.clone(), user.id);
            self.db
                .transaction(|tx| {
                    Box::pin(async move {
                        super::audit_record(
                            tx,
                            now,
                            &client,
                            AuditEntry::new("login.refused")
                                .actor(id)
                                .target("user", id)
                                .details(serde_json::json!({ "reason": reason })),
                        )
                        .await
                    })
                })
                .await?;
            login_metric(reason);
            return Err(invalid_credentials());
        }
        if !password_ok {
            self.record_failure(&user, client).await?;
            return Err(invalid_credentials());
        }

        let held = roles::of_user(self.db.reader(), user.id).await?;
        if user.mfa_enabled {
            let (token, _) = self.keys.issue(
                user.id,
                Uuid::nil(),
                TokenUse::MfaChallenge,
                now,
                self.config.challenge_ttl,
            )?;
            login_metric("mfa_challenge");
            return Ok(LoginOutcome::MfaRequired {
                challenge_token: token,
                expires_in: self.config.challenge_ttl.as_secs(),
            });
        }
        if let Some(role) = held.iter().find(|r| r.role.mfa_required) {
            let (token, _) = self.keys.issue(
                user.id,
                Uuid::nil(),
                TokenUse::MfaEnrolment,
                now,
                self.config.challenge_ttl,
            )?;
            login_metric("mfa_enrolment_required");
            return Err(AppError::forbidden(
                "auth.mfa_enrolment_required",
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
        let now = self.now();
        let policy = self.config.lockout;
        let (client, id) = (client.clone(), user.id);
        let locked = self
            .db
            .transaction(|tx| {
                Box::pin(async move {
                    let failures = users::record_failed_login(tx, id, now).await?;
                    let lock = policy.lock_after(u32::try_from(failures).unwrap_or(0));
                    super::audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("login.failure")
                            .actor(id)
                            .target("user", id)
                            .details(serde_json::json!({ "failures": failures })),
                    )
                    .await?;
                    if let Some(duration) = lock {
                        let until = now
                            + chrono::Duration::from_std(duration)
                                .unwrap_or(chrono::Duration::hours(1));
                        users::set_lock(tx, id, Some(until)).await?;
                        super::audit_record(
                            tx,
                            now,
                            &client,
                            AuditEntry::new("login.locked")
                                .actor(id)
                                .target("user", id)
                                .details(serde_json::json!({
                                    "failures": failures,
                                    "locked_until": until,
                                })),
                        )
                        .await?;
                    }
                    Ok(lock.is_some())
                })
            })
            .await?;
        login_metric(if locked { "lockout" } else { "failure" });
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
        let now = self.now();
        let config = self.config.clone();
        let keys = self.keys.clone();
        let client = client.clone();
        let tokens = self
            .db
            .transaction(|tx| {
                Box::pin(async move {
                    users::reset_failures(tx, user_id, now).await?;
                    let session = repo::insert(
                        tx,
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
                            idle_expires_at: now + chrono_duration(config.idle_ttl),
                            absolute_expires_at: now + chrono_duration(config.absolute_ttl),
                            revoked_at: None,
                            revoked_reason: None,
                        },
                    )
                    .await?;
                    let tokens = issue_pair(tx, &keys, &config, &session, now).await?;
                    super::audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("login.success")
                            .actor(user_id)
                            .target("session", session.id)
                            .details(serde_json::json!({ "mfa": mfa })),
                    )
                    .await?;
                    Ok(tokens)
                })
            })
            .await?;
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
        let reader = self.db.reader();
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

        let now = self.now();
        let config = self.config.clone();
        let keys = self.keys.clone();
        let client = client.clone();
        let outcome = self
            .db
            .transaction(|tx| {
                Box::pin(async move {
                    let Some(row) = repo::find_refresh_token(tx, &hash).await? else {
                        return Ok(Refreshed::Invalid);
                    };
                    let Some(session) = repo::get(tx, row.session_id).await? else {
                        return Ok(Refreshed::Invalid);
                    };
                    let reused = match row.status.as_str() {
                        "rotated" => true,
                        "active" => {
                            if session.revoked_at.is_some()
                                || session.idle_expires_at <= now
                                || session.absolute_expires_at <= now
                            {
                                return Ok(Refreshed::Invalid);
                            }
                            // Lost a race with another refresh of the same token: reuse too.
                            !repo::rotate_refresh_token(tx, &hash, now).await?
                        }
                        _ => return Ok(Refreshed::Invalid),
                    };
                    if reused {
                        let revoked =
                            repo::revoke(tx, session.id, "refresh_token_reuse", now).await?;
                        super::audit_record(
                            tx,
                            now,
                            &client,
                            AuditEntry::new("auth.token_reuse")
                                .actor(session.user_id)
                                .target("session", session.id)
                                .details(serde_json::json!({ "session_revoked": revoked })),
                        )
                        .await?;
                        return Ok(Refreshed::Reused);
                    }
                    let active = users::get(tx, session.user_id)
                        .await?
                        .is_some_and(|u| u.status == "active");
                    if !active {
                        return Ok(Refreshed::Invalid);
                    }
                    let idle =
                        (now + chrono_duration(config.idle_ttl)).min(session.absolute_expires_at);
                    repo::touch(tx, session.id, now, idle, client.ip.clone()).await?;
                    let tokens = issue_pair(tx, &keys, &config, &session, now).await?;
                    Ok(Refreshed::Tokens(tokens))
                })
            })
            .await?;
        match outcome {
            Refreshed::Tokens(tokens) => Ok(tokens),
            Refreshed::Invalid => Err(invalid_refresh()),
            Refreshed::Reused => {
                self.invalidate().await;
                metrics::counter!("auth_refresh_reuse_total").increment(1);
                Err(AppError::unauthorized(
                    "auth.refresh_token_reused",
                    "this refresh token was already used; the session has been revoked",
                ))
            }
        }
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
    pub async fn rotate_csrf(&self, refresh_token: &str, proof: CsrfProof) -> AppResult<String> {
        let hash = secrets::digest(refresh_token);
        let reader = self.db.reader();
        let row = repo::find_refresh_token(reader, &hash)
            .await?
            .filter(|r| r.status == "active")
            .ok_or_else(invalid_refresh)?;
        let session = repo::get(reader, row.session_id)
            .await?
            .filter(|s| s.revoked_at.is_none())
            .ok_or_else(invalid_refresh)?;
        self.check_csrf(&session, &proof)?;
        let nonce = secrets::random_token(16);
        let (id, n) = (session.id, nonce.clone());
        self.db
            .transaction(|tx| Box::pin(async move { repo::set_csrf_nonce(tx, id, &n).await }))
            .await?;
        Ok(csrf::token(&self.config.app_secret, session.id, &nonce))
    }

    /// Ends the caller's session and denylists the access token at once.
    pub async fn logout(&self, principal: &Principal, client: &ClientInfo) -> AppResult<()> {
        let now = self.now();
        let (p, client, this) = (principal.clone(), client.clone(), self.clone());
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    repo::revoke(tx, p.session_id, "logout", now).await?;
                    this.deny(tx, p.jti, p.token_expires_at).await?;
                    super::audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("logout")
                            .actor(p.user_id)
                            .target("session", p.session_id),
                    )
                    .await
                })
            })
            .await?;
        self.publish_denial(principal.jti, principal.token_expires_at)
            .await;
        self.invalidate().await;
        Ok(())
    }

    /// Ends every other session of the caller.
    pub async fn logout_all(&self, principal: &Principal, client: &ClientInfo) -> AppResult<u64> {
        let now = self.now();
        let (p, client) = (principal.clone(), client.clone());
        let revoked = self
            .db
            .transaction(|tx| {
                Box::pin(async move {
                    let ids = repo::revoke_all_of_user(
                        tx,
                        p.user_id,
                        Some(p.session_id),
                        "logout_all",
                        now,
                    )
                    .await?;
                    super::audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("logout.all")
                            .actor(p.user_id)
                            .target("user", p.user_id)
                            .details(serde_json::json!({ "sessions": ids })),
                    )
                    .await?;
                    Ok(ids.len() as u64)
                })
            })
            .await?;
        self.invalidate().await;
        Ok(revoked)
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
        let page = repo::list(self.db.reader(), scope, false, page).await?;
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
        let not_found = || AppError::not_found("sessions.not_found", "no such session");
        let session = repo::get(self.db.reader(), id)
            .await?
            .ok_or_else(not_found)?;
        principal.check_owner(session.user_id, Permission::SessionsManageAll, not_found())?;
        let now = self.now();
        let (p, client) = (principal.clone(), client.clone());
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    repo::revoke(tx, id, "revoked", now).await?;
                    super::audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("session.revoked")
                            .actor(p.user_id)
                            .target("session", id)
                            .details(serde_json::json!({ "owner": session.user_id })),
                    )
                    .await
                })
            })
            .await?;
        self.invalidate().await;
        Ok(())
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

/// A new refresh token for `session` (stored only as its digest) and an access token for its
/// user: what sign-in and every refresh hand out.
async fn issue_pair(
    tx: &DatabaseTransaction,
    keys: &TokenKeys,
    config: &AuthConfig,
    session: &session::Model,
    now: DateTime<Utc>,
) -> AppResult<IssuedTokens> {
    let refresh = secrets::random_token(32);
    repo::insert_refresh_token(tx, secrets::digest(&refresh), session.id, now).await?;
    let (access, _) = keys.issue(
        session.user_id,
        session.id,
        TokenUse::Access,
        now,
        config.access_ttl,
    )?;
    Ok(IssuedTokens {
        access_token: access,
        token_type: "Bearer",
        expires_in: config.access_ttl.as_secs(),
        refresh_token: refresh,
        session_id: session.id,
        csrf_token: csrf::token(&config.app_secret, session.id, &session.csrf_nonce),
    })
}

pub(crate) fn chrono_duration(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(365))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
