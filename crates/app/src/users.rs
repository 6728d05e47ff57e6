//! User accounts: admin CRUD, disable/enable/unlock, and self-service (`me`).

use depot_domain::ErrorCode;
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use depot_domain::auth::grants::changed;
use depot_domain::auth::{
    PasswordContext, PasswordPolicy, normalize_email, user_not_found, validate_email,
    validate_phone,
};
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::state::UserStatus;
use depot_domain::{Actor, AppError, AppResult, FieldError, Validator};
use depot_store::entity::user;
use depot_store::repo::{roles, users};
use depot_store::{DatabaseTransaction, on_constraint};
use serde::Serialize;
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::auth::authz::AuthzCache;
use crate::auth::grants;
use crate::auth::password::ResetLinks;
use crate::auth::passwords;
use crate::auth::principal::Principal;
use crate::auth::sessions::revoke_everything;
use crate::client::ClientInfo;
use crate::uow::Writer;

pub use depot_domain::auth::UserFilter;

/// A user as the API shows it (never the hash, secrets or failure counters' internals).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub phone: Option<String>,
    pub status: UserStatus,
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
        // The column's CHECK allows only these values.
        status: UserStatus::parse(&u.status).unwrap_or(UserStatus::Disabled),
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

fn email_taken() -> AppError {
    AppError::new(
        ErrorCode::UsersEmailTaken,
        "another account uses this email",
    )
    .with_details(serde_json::json!({ "field": "email" }))
}

/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX: usize = 200;

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
        v.line("display_name", name, 1, DISPLAY_NAME_MAX);
    }
    if let Some(phone) = phone
        && let Some(e) = validate_phone("phone", phone)
    {
        v.push(e);
    }
}

#[derive(Clone)]
pub struct UserService {
    writer: Writer,
    authz: AuthzCache,
    links: ResetLinks,
}

impl UserService {
    pub fn new(writer: Writer, authz: AuthzCache, links: ResetLinks) -> Self {
        Self {
            writer,
            authz,
            links,
        }
    }

    async fn load(&self, id: Uuid) -> AppResult<UserView> {
        let conn = self.writer.db().reader();
        let user = users::get(conn, id).await?.ok_or_else(user_not_found)?;
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
        let conn = self.writer.db().reader();
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

    /// Creates a user (an admin, or `depot admin create-user` as the system). Without a
    /// password the user is invited: a set-password link is emailed in the same unit of work.
    pub async fn create(
        &self,
        actor: Actor,
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
            let context = PasswordContext {
                email: &new.email,
                display_name: &new.display_name,
            };
            for e in PasswordPolicy::default().check("password", password, &context) {
                v.push(e);
            }
        }
        v.finish()?;
        let role_ids = self.role_ids(&new.roles).await?;
        let hash = match new.password {
            Some(p) => Some(passwords::hash(p).await?),
            None => None,
        };
        let invite = hash.is_none();
        let uow = self.writer.begin(actor, client).await?;
        grants::lock(&uow).await?;
        grants::ensure_actor_holds(
            &uow,
            &roles::permissions_of_roles(uow.tx(), &role_ids).await?,
        )
        .await?;
        let now = uow.now();
        let model = user::Model::new_active(
            depot_domain::id::new_id(),
            &new.email,
            &new.display_name,
            new.phone,
            hash,
            now,
        );
        if users::by_email(uow.tx(), &model.email_normalized)
            .await?
            .is_some()
        {
            return Err(email_taken());
        }
        let user = users::insert(uow.tx(), model)
            .await
            .map_err(on_constraint(&users::EMAIL_UNIQUE, email_taken))?;
        roles::set_user_roles(uow.tx(), user.id, &role_ids).await?;
        let shown = load_in(uow.tx(), user.id).await?;
        uow.audit(
            AuditEntry::new("user.created")
                .target("user", shown.id)
                .change(serde_json::Value::Null, audit_view(&shown)),
        )
        .await?;
        if invite {
            self.links
                .send(&uow, shown.id, &shown.email, "user.invited")
                .await?;
        }
        uow.commit().await?;
        Ok(shown)
    }

    async fn role_ids(&self, names: &[String]) -> AppResult<BTreeSet<Uuid>> {
        let found = roles::by_names(self.writer.db().reader(), names).await?;
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
        actor: Actor,
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
        self.apply(actor, id, patch, role_ids, client).await
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
        self.apply(me.actor(), me.user_id, patch, None, client)
            .await
    }

    async fn apply(
        &self,
        actor: Actor,
        id: Uuid,
        patch: UserPatch,
        role_ids: Option<BTreeSet<Uuid>>,
        client: &ClientInfo,
    ) -> AppResult<UserView> {
        let mut uow = self.writer.begin(actor, client).await?;
        grants::lock(&uow).await?;
        let now = uow.now();
        let before = load_in(uow.tx(), id).await?;
        grants::ensure_actor_outranks(&uow, id).await?;
        let mut user = users::get(uow.tx(), id).await?.ok_or_else(user_not_found)?;
        if let Some(email) = patch.email {
            let normalized = normalize_email(&email);
            if normalized != user.email_normalized
                && users::by_email(uow.tx(), &normalized).await?.is_some()
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
        users::save(uow.tx(), user)
            .await
            .map_err(on_constraint(&users::EMAIL_UNIQUE, email_taken))?;
        let mut roles_changed = false;
        if let Some(role_ids) = role_ids {
            let current: BTreeSet<Uuid> = roles::of_user(uow.tx(), id)
                .await?
                .into_iter()
                .map(|r| r.role.id)
                .collect();
            if current != role_ids {
                let held_before = roles::permissions_of_user(uow.tx(), id).await?;
                let held_after = roles::permissions_of_roles(uow.tx(), &role_ids).await?;
                // Checked before writing: afterwards the actor may be the one who gained.
                grants::ensure_actor_holds(&uow, &changed(&held_before, &held_after)).await?;
                let admins = grants::administrators(&uow).await?;
                roles::set_user_roles(uow.tx(), id, &role_ids).await?;
                grants::ensure_an_administrator_remains(&uow, admins).await?;
                revoke_everything(uow.tx(), id, "roles_changed", now).await?;
                roles_changed = true;
            }
        }
        let after = load_in(uow.tx(), id).await?;
        let action = if roles_changed {
            "user.roles_changed"
        } else {
            "user.updated"
        };
        uow.audit(
            AuditEntry::new(action)
                .target("user", id)
                .change(audit_view(&before), audit_view(&after)),
        )
        .await?;
        if roles_changed {
            self.authz.invalidate_after_commit(&mut uow);
        }
        uow.commit().await?;
        Ok(after)
    }

    /// Disables (signs out everywhere) or re-enables an account.
    pub async fn set_enabled(
        &self,
        actor: Actor,
        id: Uuid,
        enabled: bool,
        client: &ClientInfo,
    ) -> AppResult<UserView> {
        if !enabled && actor.user_id() == Some(id) {
            return Err(AppError::new(
                ErrorCode::UsersCannotDisableSelf,
                "you cannot disable your own account",
            ));
        }
        let status = if enabled {
            UserStatus::Active
        } else {
            UserStatus::Disabled
        };
        let mut uow = self.writer.begin(actor, client).await?;
        grants::lock(&uow).await?;
        let now = uow.now();
        let user = users::get(uow.tx(), id).await?.ok_or_else(user_not_found)?;
        grants::ensure_actor_outranks(&uow, id).await?;
        let before = user.status;
        if before == status.as_str() {
            // Nothing changes, so nothing is written or audited.
            return load_in(uow.tx(), id).await;
        }
        let admins = grants::administrators(&uow).await?;
        users::set_status(uow.tx(), id, status.as_str(), now).await?;
        if !enabled {
            grants::ensure_an_administrator_remains(&uow, admins).await?;
            revoke_everything(uow.tx(), id, "user_disabled", now).await?;
        }
        let action = if enabled {
            "user.enabled"
        } else {
            "user.disabled"
        };
        uow.audit(AuditEntry::new(action).target("user", id).change(
            serde_json::json!({ "status": before }),
            serde_json::json!({ "status": status }),
        ))
        .await?;
        let shown = load_in(uow.tx(), id).await?;
        self.authz.invalidate_after_commit(&mut uow);
        uow.commit().await?;
        Ok(shown)
    }

    /// Clears the failure count and lock (an admin, or `depot admin unlock` as the system).
    pub async fn unlock(&self, actor: Actor, id: Uuid, client: &ClientInfo) -> AppResult<UserView> {
        let uow = self.writer.begin(actor, client).await?;
        let user = users::get(uow.tx(), id).await?.ok_or_else(user_not_found)?;
        grants::ensure_actor_outranks(&uow, id).await?;
        if user.failed_logins == 0 && user.locked_until.is_none() {
            // Not locked and nothing counted: nothing to write or audit.
            return load_in(uow.tx(), id).await;
        }
        users::reset_failures(uow.tx(), id, uow.now()).await?;
        uow.audit(AuditEntry::new("user.unlocked").target("user", id))
            .await?;
        let shown = load_in(uow.tx(), id).await?;
        uow.commit().await?;
        Ok(shown)
    }

    /// Signs the user out everywhere at once: every session revoked and every access token
    /// already issued refused (the user's "not before" moves to now).
    pub async fn revoke_all_sessions(
        &self,
        actor: Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<u64> {
        let mut uow = self.writer.begin(actor, client).await?;
        users::get(uow.tx(), id).await?.ok_or_else(user_not_found)?;
        grants::ensure_actor_outranks(&uow, id).await?;
        let ids = revoke_everything(uow.tx(), id, "revoked_by_admin", uow.now()).await?;
        uow.audit(
            AuditEntry::new("user.sessions_revoked")
                .target("user", id)
                .details(serde_json::json!({ "sessions": ids })),
        )
        .await?;
        self.authz.invalidate_after_commit(&mut uow);
        uow.commit().await?;
        Ok(ids.len() as u64)
    }

    pub async fn find_by_email(&self, email: &str) -> AppResult<Option<UserView>> {
        match users::by_email(self.writer.db().reader(), &normalize_email(email)).await? {
            Some(u) => Ok(Some(self.load(u.id).await?)),
            None => Ok(None),
        }
    }

    /// Checks a password against the policy for the account it is meant for (the CLI asks
    /// before creating a user).
    pub fn check_password(password: &str, email: &str, display_name: &str) -> AppResult<()> {
        let context = PasswordContext {
            email,
            display_name,
        };
        PasswordPolicy::default().validate("password", password, &context)
    }
}

async fn load_in(tx: &DatabaseTransaction, id: Uuid) -> AppResult<UserView> {
    let user = users::get(tx, id).await?.ok_or_else(user_not_found)?;
    let names = roles::names_of_users(tx, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    Ok(view(user, names))
}
