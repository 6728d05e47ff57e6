//! TOTP second factor: enrol (secret + otpauth URI), confirm a code to enable (and receive ten
//! single-use recovery codes), disable with password and code, and the second step of
//! sign-in. A code's 30-second step can be used once: the last accepted step is stored and
//! only later steps pass.

use depot_domain::auth::totp;
use depot_domain::{AppError, AppResult, FieldError};
use depot_store::repo::{credentials, roles, users};
use serde::Serialize;
use uuid::Uuid;

use super::rate_limit::{Action, Subject};
use super::sessions::{Device, IssuedTokens};
use super::tokens::TokenUse;
use super::{AuditEntry, AuthService, ClientInfo, passwords, secrets};
use crate::users::not_found as user_not_found;

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
    AppError::unauthorized("auth.invalid_mfa_code", "the code is not valid")
}

impl AuthService {
    /// Starts enrolment: a new secret, pending until a code from it is confirmed.
    pub async fn mfa_enroll(&self, user_id: Uuid) -> AppResult<Enrolment> {
        let now = self.now();
        let issuer = self.config.mfa_issuer.clone();
        let seed = secrets::random_bytes(20);
        let sealed = self.sealer.seal(&seed)?;
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    let mut user = users::get(tx, user_id).await?.ok_or_else(user_not_found)?;
                    if user.mfa_enabled {
                        return Err(AppError::conflict(
                            "mfa.already_enabled",
                            "two-factor authentication is already on; disable it first",
                        ));
                    }
                    let secret = totp::base32(&seed);
                    user.mfa_pending_secret = Some(sealed);
                    user.updated_at = now;
                    let email = user.email.clone();
                    users::save(tx, user).await?;
                    Ok(Enrolment {
                        otpauth_uri: totp::otpauth_uri(&issuer, &email, &secret),
                        secret,
                    })
                })
            })
            .await
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
        let now = self.now();
        let codes = secrets::recovery_codes();
        let hashes: Vec<String> = codes
            .iter()
            .map(|c| secrets::digest(&secrets::normalize_recovery_code(c)))
            .collect();
        let (code, client, sealer) = (code.to_owned(), client.clone(), self.sealer.clone());
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    let mut user = users::get(tx, user_id).await?.ok_or_else(user_not_found)?;
                    let pending = user.mfa_pending_secret.clone().ok_or_else(|| {
                        AppError::conflict(
                            "mfa.not_enrolling",
                            "start with POST /api/v1/auth/mfa/totp/enroll",
                        )
                    })?;
                    let step = totp::matching_step(
                        &sealer.open(&pending)?,
                        &code,
                        u64::try_from(now.timestamp()).unwrap_or(0),
                    )
                    .ok_or_else(bad_code)?;
                    user.mfa_secret = Some(pending);
                    user.mfa_pending_secret = None;
                    user.mfa_enabled = true;
                    user.mfa_last_step = Some(i64::try_from(step).unwrap_or(i64::MAX));
                    user.updated_at = now;
                    users::save(tx, user).await?;
                    credentials::replace_recovery_codes(tx, user_id, hashes).await?;
                    super::audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("mfa.enabled")
                            .actor(user_id)
                            .target("user", user_id),
                    )
                    .await
                })
            })
            .await?;
        self.invalidate().await;
        Ok(codes)
    }

    /// Turns MFA off: needs the password and a current code (or a recovery code). Refused
    /// while the user holds a role that requires MFA.
    pub async fn mfa_disable(
        &self,
        user_id: Uuid,
        password: String,
        factor: SecondFactor,
        client: &ClientInfo,
    ) -> AppResult<()> {
        self.limiter
            .check(Action::MfaVerify, Subject::Account, &user_id.to_string())
            .await?;
        let user = users::get(self.db.reader(), user_id)
            .await?
            .ok_or_else(user_not_found)?;
        if !user.mfa_enabled {
            return Err(AppError::conflict(
                "mfa.not_enabled",
                "two-factor authentication is off",
            ));
        }
        if roles::of_user(self.db.reader(), user_id)
            .await?
            .iter()
            .any(|r| r.role.mfa_required)
        {
            return Err(AppError::conflict(
                "mfa.required_by_role",
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
        let now = self.now();
        let client = client.clone();
        let this = self.clone();
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    this.check_second_factor(tx, &user, &factor).await?;
                    clear_mfa(tx, user_id, now).await?;
                    super::audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("mfa.disabled")
                            .actor(user_id)
                            .target("user", user_id),
                    )
                    .await
                })
            })
            .await?;
        self.invalidate().await;
        Ok(())
    }

    /// The second step of sign-in: the challenge from the password step plus a code.
    pub async fn mfa_verify(
        &self,
        challenge_token: &str,
        factor: SecondFactor,
        device: Device,
        client: &ClientInfo,
    ) -> AppResult<IssuedTokens> {
        self.limiter
            .check(Action::MfaVerify, Subject::Ip, client.ip_key())
            .await?;
        let claims = self.verify_step_token(challenge_token, TokenUse::MfaChallenge)?;
        self.limiter
            .check(Action::MfaVerify, Subject::Account, &claims.sub.to_string())
            .await?;
        let user = users::get(self.db.reader(), claims.sub)
            .await?
            .filter(|u| u.status == "active" && u.mfa_enabled)
            .ok_or_else(bad_code)?;
        let this = self.clone();
        let (now, audit_client) = (self.now(), client.clone());
        let refused = self
            .db
            .transaction(|tx| {
                Box::pin(async move {
                    let Err(refusal) = this.check_second_factor(tx, &user, &factor).await else {
                        return Ok(None);
                    };
                    super::audit_record(
                        tx,
                        now,
                        &audit_client,
                        AuditEntry::new("login.failure")
                            .actor(user.id)
                            .target("user", user.id)
                            .details(serde_json::json!({ "reason": refusal.code() })),
                    )
                    .await?;
                    Ok(Some(refusal))
                })
            })
            .await?;
        if let Some(refusal) = refused {
            metrics::counter!("auth_logins_total", "result" => "mfa_failure").increment(1);
            return Err(refusal);
        }
        self.open_session(claims.sub, true, device, client).await
    }

    /// Accepts a TOTP code (once per step) or an unused recovery code, inside `tx`.
    async fn check_second_factor(
        &self,
        tx: &depot_store::DatabaseTransaction,
        user: &depot_store::entity::user::Model,
        factor: &SecondFactor,
    ) -> AppResult<()> {
        let now = self.now();
        if let Some(code) = &factor.code {
            let secret = user.mfa_secret.as_deref().ok_or_else(bad_code)?;
            let step = totp::matching_step(
                &self.sealer.open(secret)?,
                code,
                u64::try_from(now.timestamp()).unwrap_or(0),
            )
            .ok_or_else(bad_code)?;
            if users::claim_totp_step(tx, user.id, i64::try_from(step).unwrap_or(i64::MAX)).await? {
                return Ok(());
            }
            return Err(AppError::unauthorized(
                "auth.mfa_code_reused",
                "this code was already used; wait for the next one",
            ));
        }
        if let Some(code) = &factor.recovery_code {
            let hash = secrets::digest(&secrets::normalize_recovery_code(code));
            if credentials::consume_recovery_code(tx, user.id, &hash, now).await? {
                return Ok(());
            }
        }
        Err(bad_code())
    }

    /// Admin reset (`depot admin reset-mfa`): MFA off, secret and recovery codes gone.
    pub async fn mfa_reset(
        &self,
        user_id: Uuid,
        actor: Option<Uuid>,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let now = self.now();
        let client = client.clone();
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    clear_mfa(tx, user_id, now).await?;
                    super::sessions::revoke_everything(tx, user_id, "mfa_reset", now).await?;
                    let mut entry = AuditEntry::new("mfa.reset").target("user", user_id);
                    entry.actor_id = actor;
                    super::audit_record(tx, now, &client, entry).await
                })
            })
            .await?;
        self.invalidate().await;
        Ok(())
    }
}

/// MFA off for the user: seed, pending seed, last step and recovery codes gone.
async fn clear_mfa(
    tx: &depot_store::DatabaseTransaction,
    user_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<()> {
    let mut user = users::get(tx, user_id).await?.ok_or_else(user_not_found)?;
    user.mfa_enabled = false;
    user.mfa_secret = None;
    user.mfa_pending_secret = None;
    user.mfa_last_step = None;
    user.updated_at = now;
    users::save(tx, user).await?;
    credentials::replace_recovery_codes(tx, user_id, Vec::new()).await
}
