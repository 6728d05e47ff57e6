//! Password change (needs the current password) and reset by an emailed single-use token.

use depot_domain::ErrorCode;
use depot_domain::clock::span;
use std::sync::Arc;

use depot_domain::auth::{
    PasswordContext, PasswordPolicy, normalize_email, user_not_found, validate_email,
};
use depot_domain::state::UserStatus;
use depot_domain::{Actor, AppError, AppResult, FieldError};
use depot_store::repo::{credentials, sessions as session_repo, users};
use uuid::Uuid;

use super::authz::AuthzCache;
use super::principal::Principal;
use super::rate_limit::{Action, AuthRateLimiter, Subject};
use super::security_events;
use super::sessions::revoke_everything;
use super::settings::AuthConfig;
use super::{passwords, secrets};
use crate::audit::AuditEntry;
use crate::client::ClientInfo;
use crate::mail::{self, NewEmail};
use crate::uow::{UnitOfWork, Writer};

/// Sends set-password links: a single-use token stored as its digest, and the email, queued in
/// the caller's unit of work so both exist only if the change that asked for them commits.
#[derive(Clone)]
pub struct ResetLinks {
    config: Arc<AuthConfig>,
}

impl ResetLinks {
    pub fn new(config: Arc<AuthConfig>) -> Self {
        Self { config }
    }

    /// Queues a set-password email for `user_id` (reset, or an invitation for an account
    /// created without a password) and audits it as `action`.
    pub async fn send(
        &self,
        uow: &UnitOfWork,
        user_id: Uuid,
        to: &str,
        action: &'static str,
    ) -> AppResult<()> {
        let token = secrets::random_token(32);
        let now = uow.now();
        let expires_at = now + span(self.config.reset_ttl);
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
            correlation_id: uow.client().request_id.clone(),
            attachments: None,
        };
        credentials::insert_password_reset(
            uow.tx(),
            secrets::digest(&token),
            user_id,
            now,
            expires_at,
        )
        .await?;
        mail::queue(uow.tx(), email, now).await?;
        uow.audit(AuditEntry::new(action).target("user", user_id))
            .await
    }
}

/// Password change and reset.
#[derive(Clone)]
pub struct PasswordService {
    pub(super) writer: Writer,
    pub(super) limiter: Arc<AuthRateLimiter>,
    pub(super) authz: AuthzCache,
    pub(super) links: ResetLinks,
}

impl PasswordService {
    /// Changes the caller's password. Every other session is signed out.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: String,
        new: String,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let user = users::get(self.writer.db().reader(), principal.user_id)
            .await?
            .ok_or_else(user_not_found)?;
        check_policy(&new, &user)?;
        if !passwords::verify(current, user.password_hash.clone()).await? {
            return Err(AppError::validation(vec![FieldError::new(
                "current_password",
                "password.incorrect",
                "is not your current password",
            )]));
        }
        let hash = passwords::hash(new).await?;
        let mut uow = self.writer.begin(principal.actor(), client).await?;
        let now = uow.now();
        let mut user = users::get(uow.tx(), principal.user_id)
            .await?
            .ok_or_else(user_not_found)?;
        user.password_hash = Some(hash);
        user.updated_at = now;
        users::save(uow.tx(), user).await?;
        credentials::retire_password_resets(uow.tx(), principal.user_id, now).await?;
        let others = session_repo::revoke_all_of_user(
            uow.tx(),
            principal.user_id,
            Some(principal.session_id),
            "password_changed",
            now,
        )
        .await?;
        uow.audit(
            AuditEntry::new("password.changed")
                .target("user", principal.user_id)
                .details(serde_json::json!({ "sessions_revoked": others.len() })),
        )
        .await?;
        let event = security_events::password_changed(principal.user_id, "changed", now)
            .correlated(uow.client().request_id.clone());
        uow.emit(&event);
        self.authz.invalidate_after_commit(&mut uow);
        uow.commit().await
    }

    /// Emails a reset link when the address belongs to an active account. The answer is the
    /// same either way, so the endpoint does not reveal who has an account.
    pub async fn request_password_reset(&self, email: &str, client: &ClientInfo) -> AppResult<()> {
        // Only the shape is checked (it says nothing about who has an account).
        if let Some(invalid) = validate_email("email", email) {
            return Err(AppError::validation(vec![invalid]));
        }
        let email = normalize_email(email);
        self.limiter
            .check_ip_and_account(Action::PasswordReset, client.ip_key(), &email)
            .await?;
        let Some(user) = users::by_email(self.writer.db().reader(), &email)
            .await?
            .filter(|u| u.status == UserStatus::Active.as_str())
        else {
            return Ok(());
        };
        let uow = self.writer.begin(Actor::Anonymous, client).await?;
        self.links
            .send(&uow, user.id, &user.email, "password.reset_requested")
            .await?;
        uow.commit().await
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
        let token_hash = secrets::digest(token);
        let invalid = || {
            AppError::new(
                ErrorCode::AuthInvalidResetToken,
                "the reset link is invalid, used or expired; ask for a new one",
            )
        };
        // The policy needs the account's details; the token is consumed (authoritatively, once)
        // only after the slow hash, outside any transaction.
        let holder = credentials::password_reset_holder(
            self.writer.db().reader(),
            &token_hash,
            self.writer.now(),
        )
        .await?
        .ok_or_else(invalid)?;
        let user = users::get(self.writer.db().reader(), holder)
            .await?
            .ok_or_else(invalid)?;
        check_policy(&new, &user)?;
        let hash = passwords::hash(new).await?;
        let mut uow = self.writer.begin(Actor::Anonymous, client).await?;
        let now = uow.now();
        let user_id = credentials::consume_password_reset(uow.tx(), &token_hash, now)
            .await?
            .filter(|id| *id == holder)
            .ok_or_else(invalid)?;
        let mut user = users::get(uow.tx(), user_id)
            .await?
            .ok_or_else(user_not_found)?;
        user.password_hash = Some(hash);
        user.failed_logins = 0;
        user.locked_until = None;
        user.updated_at = now;
        users::save(uow.tx(), user).await?;
        credentials::retire_password_resets(uow.tx(), user_id, now).await?;
        revoke_everything(uow.tx(), user_id, "password_reset", now).await?;
        uow.audit(
            AuditEntry::new("password.reset")
                .by(Actor::User(user_id))
                .target("user", user_id),
        )
        .await?;
        let event = security_events::password_changed(user_id, "reset", now)
            .correlated(uow.client().request_id.clone());
        uow.emit(&event);
        self.authz.invalidate_after_commit(&mut uow);
        uow.commit().await
    }
}

/// The password policy for `user`'s new password (their email and name are context).
fn check_policy(new: &str, user: &depot_store::entity::user::Model) -> AppResult<()> {
    let context = PasswordContext {
        email: &user.email,
        display_name: &user.display_name,
    };
    PasswordPolicy::default().validate("new_password", new, &context)
}
