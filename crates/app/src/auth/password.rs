//! Password change (needs the current password) and reset by an emailed single-use token.

use depot_domain::auth::{PasswordPolicy, normalize_email};
use depot_domain::{AppError, AppResult, FieldError};
use depot_store::repo::{credentials, sessions as session_repo, users};
use uuid::Uuid;

use super::rate_limit::{Action, Subject};
use super::sessions::{chrono_duration, revoke_everything};
use super::{AuditEntry, AuthService, ClientInfo, Principal, passwords, secrets};
use crate::mail::{self, NewEmail};
use crate::users::not_found as user_not_found;

/// Checks `password` against the policy, as field errors on `field`.
pub fn check_policy(field: &str, password: &str) -> AppResult<()> {
    let errors = PasswordPolicy::default().check(field, password);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::validation(errors))
    }
}

impl AuthService {
    /// Changes the caller's password. Every other session is signed out.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: String,
        new: String,
        client: &ClientInfo,
    ) -> AppResult<()> {
        check_policy("new_password", &new)?;
        let user = users::get(self.db.reader(), principal.user_id)
            .await?
            .ok_or_else(user_not_found)?;
        if !passwords::verify(current, user.password_hash.clone()).await? {
            return Err(AppError::validation(vec![FieldError::new(
                "current_password",
                "password.incorrect",
                "is not your current password",
            )]));
        }
        let hash = passwords::hash(new).await?;
        let now = self.now();
        let (p, client) = (principal.clone(), client.clone());
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    let mut user = users::get(tx, p.user_id)
                        .await?
                        .ok_or_else(user_not_found)?;
                    user.password_hash = Some(hash);
                    user.updated_at = now;
                    users::save(tx, user).await?;
                    credentials::retire_password_resets(tx, p.user_id, now).await?;
                    let others = session_repo::revoke_all_of_user(
                        tx,
                        p.user_id,
                        Some(p.session_id),
                        "password_changed",
                        now,
                    )
                    .await?;
                    super::audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("password.changed")
                            .actor(p.user_id)
                            .target("user", p.user_id)
                            .details(serde_json::json!({ "sessions_revoked": others.len() })),
                    )
                    .await
                })
            })
            .await?;
        self.invalidate().await;
        Ok(())
    }

    /// Emails a reset link when the address belongs to an active account. The answer is the
    /// same either way, so the endpoint does not reveal who has an account.
    pub async fn request_password_reset(&self, email: &str, client: &ClientInfo) -> AppResult<()> {
        let email = normalize_email(email);
        self.limiter
            .check(Action::PasswordReset, Subject::Ip, client.ip_key())
            .await?;
        self.limiter
            .check(Action::PasswordReset, Subject::Account, &email)
            .await?;
        let Some(user) = users::by_email(self.db.reader(), &email)
            .await?
            .filter(|u| u.status == "active")
        else {
            return Ok(());
        };
        self.send_reset_link(user.id, &user.email, "password.reset_requested", client)
            .await
    }

    /// Queues a set-password email for `user_id` (reset, or an invitation for an account
    /// created without a password).
    pub async fn send_reset_link(
        &self,
        user_id: Uuid,
        to: &str,
        action: &'static str,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let token = secrets::random_token(32);
        let now = self.now();
        let expires_at = now + chrono_duration(self.config.reset_ttl);
        let link = format!("{}/reset-password?token={token}", self.config.public_url);
        let minutes = self.config.reset_ttl.as_secs() / 60;
        let email = NewEmail {
            to: to.to_owned(),
            subject: "Set your Depot password".into(),
            body: format!(
                "Someone (hopefully you) asked to set the password of your Depot account.\n\n\
                 Open this link within {minutes} minutes to choose a password:\n\n{link}\n\n\
                 The link works once. If you did not ask for it, ignore this message."
            ),
            correlation_id: client.request_id.clone(),
        };
        let client = client.clone();
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    credentials::insert_password_reset(
                        tx,
                        secrets::digest(&token),
                        user_id,
                        now,
                        expires_at,
                    )
                    .await?;
                    mail::queue(tx, email, now).await?;
                    super::audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new(action).target("user", user_id),
                    )
                    .await
                })
            })
            .await
    }

    /// Sets a new password with a reset token. Signs out every session and unlocks the account.
    pub async fn reset_password(
        &self,
        token: &str,
        new: String,
        client: &ClientInfo,
    ) -> AppResult<()> {
        self.limiter
            .check(Action::PasswordReset, Subject::Ip, client.ip_key())
            .await?;
        check_policy("new_password", &new)?;
        let hash = passwords::hash(new).await?;
        let now = self.now();
        let token_hash = secrets::digest(token);
        let client = client.clone();
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    let user_id = credentials::consume_password_reset(tx, &token_hash, now)
                        .await?
                        .ok_or_else(|| {
                            AppError::bad_request(
                                "auth.invalid_reset_token",
                                "the reset link is invalid, used or expired; ask for a new one",
                            )
                        })?;
                    let mut user = users::get(tx, user_id).await?.ok_or_else(user_not_found)?;
                    user.password_hash = Some(hash);
                    user.failed_logins = 0;
                    user.locked_until = None;
                    user.updated_at = now;
                    users::save(tx, user).await?;
                    credentials::retire_password_resets(tx, user_id, now).await?;
                    revoke_everything(tx, user_id, "password_reset", now).await?;
                    super::audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("password.reset")
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
}
