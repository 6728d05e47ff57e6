//! User accounts: admin CRUD, disable/enable/unlock, and self-service (`me`).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use depot_domain::auth::{normalize_email, validate_email, validate_phone};
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::{AppError, AppResult, Clock, ErrorCategory, FieldError, Validator};
use depot_store::entity::user;
use depot_store::repo::users::UserFilter;
use depot_store::repo::{roles, users};
use depot_store::{DatabaseTransaction, Db};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::password::check_policy;
use crate::auth::sessions::revoke_everything;
use crate::auth::{AuditEntry, AuthService, ClientInfo, Principal, audit_record, passwords};

/// A user as the API shows it (never the hash, secrets or failure counters' internals).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub phone: Option<String>,
    pub status: String,
    pub roles: Vec<String>,
    pub mfa_enabled: bool,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn view(u: user::Model, roles: Vec<String>) -> UserView {
    UserView {
        id: u.id,
        email: u.email,
        display_name: u.display_name,
        phone: u.phone,
        status: u.status,
        roles,
        mfa_enabled: u.mfa_enabled,
        locked_until: u.locked_until,
        created_at: u.created_at,
        updated_at: u.updated_at,
    }
}

fn audit_view(u: &UserView) -> serde_json::Value {
    serde_json::json!({
        "email": u.email,
        "display_name": u.display_name,
        "status": u.status,
        "roles": u.roles,
    })
}

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub phone: Option<String>,
    /// Without one, the user is emailed a link to set it.
    pub password: Option<String>,
    pub roles: Vec<String>,
}

/// A partial update; `phone: Some(None)` clears the phone.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub phone: Option<Option<String>>,
    pub roles: Option<Vec<String>>,
}

pub(crate) fn not_found() -> AppError {
    AppError::not_found("users.not_found", "no such user")
}

fn email_taken() -> AppError {
    AppError::conflict("users.email_taken", "another account uses this email")
        .with_details(serde_json::json!({ "field": "email" }))
}

fn validate_fields(
    v: &mut Validator,
    email: Option<&str>,
    display_name: Option<&str>,
    phone: Option<&str>,
) {
    if let Some(email) = email
        && let Some(e) = validate_email("email", email)
    {
        v.push(e);
    }
    if let Some(name) = display_name {
        let n = name.trim().chars().count();
        v.check(
            (1..=200).contains(&n),
            "display_name",
            "length",
            "must be 1–200 characters",
        );
    }
    if let Some(phone) = phone
        && let Some(e) = validate_phone("phone", phone)
    {
        v.push(e);
    }
}

#[derive(Clone)]
pub struct UserService {
    db: Db,
    clock: Arc<dyn Clock>,
    auth: AuthService,
}

impl UserService {
    pub fn new(db: Db, clock: Arc<dyn Clock>, auth: AuthService) -> Self {
        Self { db, clock, auth }
    }

    async fn load(&self, id: Uuid) -> AppResult<UserView> {
        let conn = self.db.reader();
        let user = users::get(conn, id).await?.ok_or_else(not_found)?;
        let names = roles::names_of_users(conn, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        Ok(view(user, names))
    }

    pub async fn get(&self, id: Uuid) -> AppResult<UserView> {
        self.load(id).await
    }

    pub async fn list(&self, filter: &UserFilter, page: &PageRequest) -> AppResult<Page<UserView>> {
        let conn = self.db.reader();
        let page = users::list(conn, filter, page).await?;
        let ids: Vec<Uuid> = page.data.iter().map(|u| u.id).collect();
        let mut names = roles::names_of_users(conn, &ids).await?;
        Ok(Page {
            data: page
                .data
                .into_iter()
                .map(|u| {
                    let r = names.remove(&u.id).unwrap_or_default();
                    view(u, r)
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Creates a user (admin, or `depot admin create-user` with `actor: None`).
    pub async fn create(
        &self,
        actor: Option<Uuid>,
        new: NewUser,
        client: &ClientInfo,
    ) -> AppResult<UserView> {
        let mut v = Validator::new();
        validate_fields(
            &mut v,
            Some(&new.email),
            Some(&new.display_name),
            new.phone.as_deref(),
        );
        if let Some(password) = &new.password {
            for e in depot_domain::auth::PasswordPolicy::default().check("password", password) {
                v.push(e);
            }
        }
        v.finish()?;
        let role_ids = self.role_ids(&new.roles).await?;
        let hash = match new.password {
            Some(p) => Some(passwords::hash(p).await?),
            None => None,
        };
        let now = self.clock.now();
        let invite = hash.is_none();
        let model = user::Model {
            id: depot_domain::id::new_id(),
            email: new.email.trim().to_owned(),
            email_normalized: normalize_email(&new.email),
            display_name: new.display_name.trim().to_owned(),
            phone: new.phone,
            password_hash: hash,
            status: "active".into(),
            failed_logins: 0,
            locked_until: None,
            tokens_not_before: None,
            mfa_enabled: false,
            mfa_secret: None,
            mfa_pending_secret: None,
            mfa_last_step: None,
            created_at: now,
            updated_at: now,
        };
        let audit_client = client.clone();
        let created = self
            .db
            .transaction(|tx| {
                Box::pin(async move {
                    if users::by_email(tx, &model.email_normalized)
                        .await?
                        .is_some()
                    {
                        return Err(email_taken());
                    }
                    let user = users::insert(tx, model).await.map_err(unique_to_taken)?;
                    roles::set_user_roles(tx, user.id, &role_ids).await?;
                    let names = roles::names_of_users(tx, &[user.id])
                        .await?
                        .remove(&user.id)
                        .unwrap_or_default();
                    let shown = view(user, names);
                    let mut entry = AuditEntry::new("user.created")
                        .target("user", shown.id)
                        .change(serde_json::Value::Null, audit_view(&shown));
                    entry.actor_id = actor;
                    audit_record(tx, now, &audit_client, entry).await?;
                    Ok(shown)
                })
            })
            .await?;
        if invite {
            self.auth
                .send_reset_link(created.id, &created.email, "user.invited", client)
                .await?;
        }
        Ok(created)
    }

    async fn role_ids(&self, names: &[String]) -> AppResult<BTreeSet<Uuid>> {
        let found = roles::by_names(self.db.reader(), names).await?;
        let unknown: Vec<&String> = names
            .iter()
            .filter(|n| !found.iter().any(|r| &r.name == *n))
            .collect();
        if !unknown.is_empty() {
            return Err(AppError::validation(vec![FieldError::new(
                "roles",
                "roles.unknown",
                format!("unknown roles: {unknown:?}"),
            )]));
        }
        Ok(found.into_iter().map(|r| r.id).collect())
    }

    /// Admin update. Changing the roles signs the user out everywhere.
    pub async fn update(
        &self,
        actor: &Principal,
        id: Uuid,
        patch: UserPatch,
        client: &ClientInfo,
    ) -> AppResult<UserView> {
        let mut v = Validator::new();
        validate_fields(
            &mut v,
            patch.email.as_deref(),
            patch.display_name.as_deref(),
            patch.phone.as_ref().and_then(|p| p.as_deref()),
        );
        v.finish()?;
        let role_ids = match &patch.roles {
            Some(names) => Some(self.role_ids(names).await?),
            None => None,
        };
        self.apply(
            Some(actor.user_id),
            id,
            patch,
            role_ids,
            "user.updated",
            client,
        )
        .await
    }

    /// Self-service update of one's own name and phone.
    pub async fn update_me(
        &self,
        me: &Principal,
        display_name: Option<String>,
        phone: Option<Option<String>>,
        client: &ClientInfo,
    ) -> AppResult<UserView> {
        let mut v = Validator::new();
        validate_fields(
            &mut v,
            None,
            display_name.as_deref(),
            phone.as_ref().and_then(|p| p.as_deref()),
        );
        v.finish()?;
        let patch = UserPatch {
            display_name,
            phone,
            ..UserPatch::default()
        };
        self.apply(
            Some(me.user_id),
            me.user_id,
            patch,
            None,
            "user.updated",
            client,
        )
        .await
    }

    async fn apply(
        &self,
        actor: Option<Uuid>,
        id: Uuid,
        patch: UserPatch,
        role_ids: Option<BTreeSet<Uuid>>,
        action: &'static str,
        client: &ClientInfo,
    ) -> AppResult<UserView> {
        let now = self.clock.now();
        let client = client.clone();
        let (shown, roles_changed) = self
            .db
            .transaction(|tx| {
                Box::pin(async move {
                    let before = load_in(tx, id).await?;
                    let mut user = users::get(tx, id).await?.ok_or_else(not_found)?;
                    if let Some(email) = patch.email {
                        let normalized = normalize_email(&email);
                        if normalized != user.email_normalized
                            && users::by_email(tx, &normalized).await?.is_some()
                        {
                            return Err(email_taken());
                        }
                        user.email = email.trim().to_owned();
                        user.email_normalized = normalized;
                    }
                    if let Some(name) = patch.display_name {
                        user.display_name = name.trim().to_owned();
                    }
                    if let Some(phone) = patch.phone {
                        user.phone = phone;
                    }
                    user.updated_at = now;
                    users::save(tx, user).await.map_err(unique_to_taken)?;
                    let mut roles_changed = false;
                    if let Some(role_ids) = role_ids {
                        let current: BTreeSet<Uuid> = roles::of_user(tx, id)
                            .await?
                            .into_iter()
                            .map(|r| r.role.id)
                            .collect();
                        if current != role_ids {
                            roles::set_user_roles(tx, id, &role_ids).await?;
                            revoke_everything(tx, id, "roles_changed", now).await?;
                            roles_changed = true;
                        }
                    }
                    let after = load_in(tx, id).await?;
                    let mut entry = AuditEntry::new(if roles_changed {
                        "user.roles_changed"
                    } else {
                        action
                    })
                    .target("user", id)
                    .change(audit_view(&before), audit_view(&after));
                    entry.actor_id = actor;
                    audit_record(tx, now, &client, entry).await?;
                    Ok((after, roles_changed))
                })
            })
            .await?;
        if roles_changed {
            self.auth.invalidate().await;
        }
        Ok(shown)
    }

    /// Disables (signs out everywhere) or re-enables an account.
    pub async fn set_enabled(
        &self,
        actor: &Principal,
        id: Uuid,
        enabled: bool,
        client: &ClientInfo,
    ) -> AppResult<UserView> {
        if !enabled && actor.user_id == id {
            return Err(AppError::conflict(
                "users.cannot_disable_self",
                "you cannot disable your own account",
            ));
        }
        let now = self.clock.now();
        let (client, actor_id) = (client.clone(), actor.user_id);
        let shown = self
            .db
            .transaction(|tx| {
                Box::pin(async move {
                    let mut user = users::get(tx, id).await?.ok_or_else(not_found)?;
                    let before = user.status.clone();
                    user.status = if enabled { "active" } else { "disabled" }.into();
                    user.updated_at = now;
                    users::save(tx, user).await?;
                    if !enabled {
                        revoke_everything(tx, id, "user_disabled", now).await?;
                    }
                    audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new(if enabled { "user.enabled" } else { "user.disabled" })
                            .actor(actor_id)
                            .target("user", id)
                            .change(
                                serde_json::json!({ "status": before }),
                                serde_json::json!({ "status": if enabled { "active" } else { "disabled" } }),
                            ),
                    )
                    .await?;
                    load_in(tx, id).await
                })
            })
            .await?;
        self.auth.invalidate().await;
        Ok(shown)
    }

    /// Clears the failure count and lock (admin, or `depot admin unlock` with no actor).
    pub async fn unlock(
        &self,
        actor: Option<Uuid>,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<UserView> {
        let now = self.clock.now();
        let client = client.clone();
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    users::get(tx, id).await?.ok_or_else(not_found)?;
                    users::reset_failures(tx, id, now).await?;
                    let mut entry = AuditEntry::new("user.unlocked").target("user", id);
                    entry.actor_id = actor;
                    audit_record(tx, now, &client, entry).await?;
                    load_in(tx, id).await
                })
            })
            .await
    }

    /// Signs the user out everywhere at once: every session revoked and every access token
    /// already issued refused (the user's "not before" moves to now).
    pub async fn revoke_all_sessions(
        &self,
        actor: &Principal,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<u64> {
        let now = self.clock.now();
        let (client, actor_id) = (client.clone(), actor.user_id);
        let revoked = self
            .db
            .transaction(|tx| {
                Box::pin(async move {
                    users::get(tx, id).await?.ok_or_else(not_found)?;
                    let ids = revoke_everything(tx, id, "revoked_by_admin", now).await?;
                    audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("user.sessions_revoked")
                            .actor(actor_id)
                            .target("user", id)
                            .details(serde_json::json!({ "sessions": ids })),
                    )
                    .await?;
                    Ok(ids.len() as u64)
                })
            })
            .await?;
        self.auth.invalidate().await;
        Ok(revoked)
    }

    pub async fn find_by_email(&self, email: &str) -> AppResult<Option<UserView>> {
        match users::by_email(self.db.reader(), &normalize_email(email)).await? {
            Some(u) => Ok(Some(self.load(u.id).await?)),
            None => Ok(None),
        }
    }

    /// Checks a password against the policy (the CLI asks before creating a user).
    pub fn check_password(password: &str) -> AppResult<()> {
        check_policy("password", password)
    }
}

async fn load_in(tx: &DatabaseTransaction, id: Uuid) -> AppResult<UserView> {
    let user = users::get(tx, id).await?.ok_or_else(not_found)?;
    let names = roles::names_of_users(tx, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    Ok(view(user, names))
}

/// A unique violation on a user row can only be the email.
fn unique_to_taken(e: AppError) -> AppError {
    if e.category() == ErrorCategory::Conflict {
        email_taken()
    } else {
        e
    }
}
