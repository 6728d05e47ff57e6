//! TOTP second factor: enrol (secret + otpauth URI), confirm a code to enable (and receive ten
//! single-use recovery codes), disable with password and code, and the second step of
//! sign-in. A code's 30-second step can be used once: the last accepted step is stored and
//! only later steps pass.

use depot_domain::ErrorCode;
use std::sync::Arc;

use depot_domain::auth::{totp, user_not_found};
use depot_domain::state::UserStatus;
use depot_domain::{Actor, AppError, AppResult, FieldError};
use depot_store::entity::user;
use depot_store::repo::{credentials, roles, sessions as sessions_repo, users};
use serde::Serialize;
use uuid::Uuid;

use super::authenticator::Authenticator;
use super::authz::AuthzCache;
use super::principal::Principal;
use super::rate_limit::{Action, AuthRateLimiter, Subject};
use super::sealed::Sealer;
use super::security_events;
use super::sessions::{Device, IssuedTokens, SessionService, revoke_everything};
use super::tokens::TokenUse;
use super::{passwords, secrets};
use crate::audit::AuditEntry;
use crate::client::ClientInfo;
use crate::uow::{UnitOfWork, Writer};

/// What an authenticator app needs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Enrolment {
    /// Base32 secret, for manual entry.
    pub secret: String,
    pub otpauth_uri: String,
}

/// A second factor presented by the user: a TOTP code or a recovery code.
#[derive(Debug, Clone, Default)]
pub struct SecondFactor {
    pub code: Option<String>,
    pub recovery_code: Option<String>,
}

fn bad_code() -> AppError {
    AppError::new(ErrorCode::AuthInvalidMfaCode, "the code is not valid")
}

fn challenge_spent() -> AppError {
    AppError::new(
        ErrorCode::AuthInvalidToken,
        "the sign-in challenge was already used; sign in again",
    )
}

/// Why a second factor was refused (for the audit log only).
#[derive(Debug, Clone, Copy)]
enum Refusal {
    InvalidCode,
    CodeReused,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Self::InvalidCode => "mfa_invalid_code",
            Self::CodeReused => "mfa_code_reused",
        }
    }
}

/// TOTP enrolment, the second step of sign-in, and the admin reset.
#[derive(Clone)]
pub struct MfaService {
    pub(super) writer: Writer,
    pub(super) sealer: Sealer,
    pub(super) limiter: Arc<AuthRateLimiter>,
    pub(super) authz: AuthzCache,
    pub(super) issuer: String,
    pub(super) sessions: SessionService,
    pub(super) authenticator: Authenticator,
}

impl MfaService {
    /// Starts enrolment: a new secret, pending until a code from it is confirmed.
    pub async fn mfa_enroll(&self, user_id: Uuid, client: &ClientInfo) -> AppResult<Enrolment> {
        let seed = secrets::random_bytes(20);
        let sealed = self.sealer.seal(&seed)?;
        let uow = self.writer.begin(Actor::User(user_id), client).await?;
        let mut user = users::get(uow.tx(), user_id)
            .await?
            .ok_or_else(user_not_found)?;
        if user.mfa_enabled {
            return Err(AppError::new(
                ErrorCode::MfaAlreadyEnabled,
                "two-factor authentication is already on; disable it first",
            ));
        }
        let secret = totp::base32(&seed);
        user.mfa_pending_secret = Some(sealed);
        user.updated_at = uow.now();
        let email = user.email.clone();
        users::save(uow.tx(), user).await?;
        uow.commit().await?;
        Ok(Enrolment {
            otpauth_uri: totp::otpauth_uri(&self.issuer, &email, &secret),
            secret,
        })
    }

    /// Confirms enrolment with a code from the app; returns the recovery codes (shown once).
    pub async fn mfa_enable(
        &self,
        user_id: Uuid,
        code: &str,
        client: &ClientInfo,
    ) -> AppResult<Vec<String>> {
        self.limiter
            .check(Action::MfaVerify, Subject::Account, &user_id.to_string())
            .await?;
        let codes = secrets::recovery_codes();
        let hashes: Vec<String> = codes
            .iter()
            .map(|c| secrets::digest(secrets::normalize_recovery_code(c)))
            .collect();
        let mut uow = self.writer.begin(Actor::User(user_id), client).await?;
        let now = uow.now();
        let mut user = users::get(uow.tx(), user_id)
            .await?
            .ok_or_else(user_not_found)?;
        let pending = user.mfa_pending_secret.clone().ok_or_else(|| {
            AppError::new(
                ErrorCode::MfaNotEnrolling,
                "start with POST /api/v1/auth/mfa/totp/enroll",
            )
        })?;
        let step = totp::matching_step(
            &self.sealer.open(&pending)?,
            code,
            u64::try_from(now.timestamp()).unwrap_or(0),
        )
        .ok_or_else(bad_code)?;
        user.mfa_secret = Some(pending);
        user.mfa_pending_secret = None;
        user.mfa_enabled = true;
        user.mfa_last_step = Some(i64::try_from(step).unwrap_or(i64::MAX));
        user.updated_at = now;
        users::save(uow.tx(), user).await?;
        credentials::replace_recovery_codes(uow.tx(), user_id, hashes).await?;
        uow.audit(AuditEntry::new("mfa.enabled").target("user", user_id))
            .await?;
        let event = security_events::mfa_changed(user_id, true, "user", uow.now())
            .correlated(uow.client().request_id.clone());
        uow.emit(&event);
        self.authz.invalidate_after_commit(&mut uow);
        uow.commit().await?;
        Ok(codes)
    }

    /// Turns MFA off: needs the password and a current code (or a recovery code). Refused
    /// while the user holds a role that requires MFA.
    pub async fn mfa_disable(
        &self,
        principal: &Principal,
        password: String,
        factor: SecondFactor,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let user_id = principal.user_id;
        self.limiter
            .check(Action::MfaVerify, Subject::Account, &user_id.to_string())
            .await?;
        let reader = self.writer.db().reader();
        let user = users::get(reader, user_id)
            .await?
            .ok_or_else(user_not_found)?;
        if !user.mfa_enabled {
            return Err(AppError::new(
                ErrorCode::MfaNotEnabled,
                "two-factor authentication is off",
            ));
        }
        if roles::of_user(reader, user_id)
            .await?
            .iter()
            .any(|r| r.role.mfa_required)
        {
            return Err(AppError::new(
                ErrorCode::MfaRequiredByRole,
                "one of your roles requires two-factor authentication",
            ));
        }
        if !passwords::verify(password, user.password_hash.clone()).await? {
            return Err(AppError::validation(vec![FieldError::new(
                "password",
                "password.incorrect",
                "is not your current password",
            )]));
        }
        let mut uow = self.writer.begin(principal.actor(), client).await?;
        if self
            .check_second_factor(&uow, &user, &factor)
            .await?
            .is_err()
        {
            return Err(bad_code());
        }
        clear_mfa(&uow, user_id).await?;
        uow.audit(AuditEntry::new("mfa.disabled").target("user", user_id))
            .await?;
        let event = security_events::mfa_changed(user_id, false, "user", uow.now())
            .correlated(uow.client().request_id.clone());
        uow.emit(&event);
        self.authz.invalidate_after_commit(&mut uow);
        uow.commit().await
    }

    /// The second step of sign-in: the challenge from the password step plus a code.
    pub async fn mfa_verify(
        &self,
        challenge_token: &str,
        factor: SecondFactor,
        device: Device,
        client: &ClientInfo,
    ) -> AppResult<IssuedTokens> {
        device.validate()?;
        self.limiter
            .check(Action::MfaVerify, Subject::Ip, client.ip_key())
            .await?;
        let claims = self
            .authenticator
            .verify_step_token(challenge_token, TokenUse::MfaChallenge)?;
        self.limiter
            .check(Action::MfaVerify, Subject::Account, &claims.sub.to_string())
            .await?;
        let jti = claims.jti.to_string();
        if sessions_repo::is_access_token_denied(self.writer.db().reader(), &jti).await? {
            return Err(challenge_spent());
        }
        let user = users::get(self.writer.db().reader(), claims.sub)
            .await?
            .filter(|u| u.status == UserStatus::Active.as_str() && u.mfa_enabled)
            .ok_or_else(bad_code)?;
        let uow = self.writer.begin(Actor::User(user.id), client).await?;
        if let Err(refusal) = self.check_second_factor(&uow, &user, &factor).await? {
            uow.audit(
                AuditEntry::new("login.failure")
                    .target("user", user.id)
                    .details(serde_json::json!({ "reason": refusal.reason() })),
            )
            .await?;
            uow.commit().await?;
            metrics::counter!("auth_logins_total", "result" => "mfa_failure").increment(1);
            return Err(bad_code());
        }
        // A challenge signs in once: a second use (a replayed request, even racing this one)
        // is an invalid token.
        if !sessions_repo::spend_token_once(uow.tx(), &jti, claims.expires_at()).await? {
            return Err(challenge_spent());
        }
        uow.commit().await?;
        self.sessions
            .open_session(claims.sub, true, device, client)
            .await
    }

    /// Accepts a TOTP code (once per step) or an unused recovery code, inside `uow`. A refusal
    /// says why only to the audit log: the caller answers [`bad_code`] whatever the reason, so
    /// a guesser never learns that a code was right but already used.
    async fn check_second_factor(
        &self,
        uow: &UnitOfWork,
        user: &user::Model,
        factor: &SecondFactor,
    ) -> AppResult<Result<(), Refusal>> {
        let now = uow.now();
        if let Some(code) = &factor.code {
            let Some(secret) = user.mfa_secret.as_deref() else {
                return Ok(Err(Refusal::InvalidCode));
            };
            let Some(step) = totp::matching_step(
                &self.sealer.open(secret)?,
                code,
                u64::try_from(now.timestamp()).unwrap_or(0),
            ) else {
                // The same conditional UPDATE a right code runs (matching no row), so a wrong
                // code and a replayed one take the same database work.
                users::claim_totp_step(uow.tx(), Uuid::nil(), 0).await?;
                return Ok(Err(Refusal::InvalidCode));
            };
            if users::claim_totp_step(uow.tx(), user.id, i64::try_from(step).unwrap_or(i64::MAX))
                .await?
            {
                return Ok(Ok(()));
            }
            tracing::info!(user_id = %user.id, "a TOTP code was replayed");
            return Ok(Err(Refusal::CodeReused));
        }
        if let Some(code) = &factor.recovery_code {
            let hash = secrets::digest(secrets::normalize_recovery_code(code));
            if credentials::consume_recovery_code(uow.tx(), user.id, &hash, now).await? {
                return Ok(Ok(()));
            }
        }
        Ok(Err(Refusal::InvalidCode))
    }

    /// Admin reset (`depot admin reset-mfa`): MFA off, secret and recovery codes gone, every
    /// session of the user ended.
    pub async fn mfa_reset(
        &self,
        actor: Actor,
        user_id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let mut uow = self.writer.begin(actor, client).await?;
        clear_mfa(&uow, user_id).await?;
        revoke_everything(uow.tx(), user_id, "mfa_reset", uow.now()).await?;
        uow.audit(AuditEntry::new("mfa.reset").target("user", user_id))
            .await?;
        let event = security_events::mfa_changed(user_id, false, "reset", uow.now())
            .correlated(uow.client().request_id.clone());
        uow.emit(&event);
        self.authz.invalidate_after_commit(&mut uow);
        uow.commit().await
    }
}

/// MFA off for the user: seed, pending seed, last step and recovery codes gone.
async fn clear_mfa(uow: &UnitOfWork, user_id: Uuid) -> AppResult<()> {
    let mut user = users::get(uow.tx(), user_id)
        .await?
        .ok_or_else(user_not_found)?;
    user.mfa_enabled = false;
    user.mfa_secret = None;
    user.mfa_pending_secret = None;
    user.mfa_last_step = None;
    user.updated_at = uow.now();
    users::save(uow.tx(), user).await?;
    credentials::replace_recovery_codes(uow.tx(), user_id, Vec::new()).await
}
