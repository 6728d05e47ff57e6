//! Roles: named sets of permissions, editable by admins. The built-in roles are created on
//! start when missing and cannot be deleted or renamed; `admin` always holds every permission.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use depot_domain::auth::{BuiltInRole, Permission};
use depot_domain::{AppError, AppResult, Clock, FieldError, Validator};
use depot_store::Db;
use depot_store::entity::role;
use depot_store::repo::roles::{self, RoleWithPermissions};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::{AuditEntry, AuthService, ClientInfo, Principal, audit_record};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoleView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub mfa_required: bool,
    pub built_in: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn view(r: RoleWithPermissions) -> RoleView {
    RoleView {
        id: r.role.id,
        name: r.role.name,
        description: r.role.description,
        permissions: r.permissions.into_iter().collect(),
        mfa_required: r.role.mfa_required,
        built_in: r.role.built_in,
        created_at: r.role.created_at,
        updated_at: r.role.updated_at,
    }
}

fn audit_view(r: &RoleView) -> serde_json::Value {
    serde_json::json!({
        "name": r.name,
        "description": r.description,
        "permissions": r.permissions,
        "mfa_required": r.mfa_required,
    })
}

#[derive(Debug, Clone, Default)]
pub struct RolePatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub permissions: Option<Vec<String>>,
    pub mfa_required: Option<bool>,
}

fn not_found() -> AppError {
    AppError::not_found("roles.not_found", "no such role")
}

/// Every permission code must be in the catalogue; returns them as a set.
fn parse_permissions(codes: &[String]) -> AppResult<BTreeSet<String>> {
    let unknown: Vec<&String> = codes
        .iter()
        .filter(|c| Permission::parse(c).is_none())
        .collect();
    if !unknown.is_empty() {
        return Err(AppError::validation(vec![FieldError::new(
            "permissions",
            "permissions.unknown",
            format!("unknown permissions: {unknown:?}"),
        )]));
    }
    Ok(codes.iter().cloned().collect())
}

fn validate_name(v: &mut Validator, name: &str) {
    v.check(
        (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'),
        "name",
        "role.invalid_name",
        "must be 1–64 characters of a-z, 0-9, '_' or '-'",
    );
}

#[derive(Clone)]
pub struct RoleService {
    db: Db,
    clock: Arc<dyn Clock>,
    auth: AuthService,
}

impl RoleService {
    pub fn new(db: Db, clock: Arc<dyn Clock>, auth: AuthService) -> Self {
        Self { db, clock, auth }
    }

    /// Creates the built-in roles that do not exist yet (see [`ensure_built_ins`]).
    pub async fn ensure_built_ins(&self) -> AppResult<()> {
        ensure_built_ins(&self.db, self.clock.now()).await
    }

    pub async fn list(&self) -> AppResult<Vec<RoleView>> {
        Ok(roles::list(self.db.reader())
            .await?
            .into_iter()
            .map(view)
            .collect())
    }

    pub async fn get(&self, id: Uuid) -> AppResult<RoleView> {
        roles::get(self.db.reader(), id)
            .await?
            .map(view)
            .ok_or_else(not_found)
    }

    pub async fn create(
        &self,
        actor: &Principal,
        name: String,
        description: String,
        permissions: Vec<String>,
        mfa_required: bool,
        client: &ClientInfo,
    ) -> AppResult<RoleView> {
        let mut v = Validator::new();
        validate_name(&mut v, &name);
        v.finish()?;
        let permissions = parse_permissions(&permissions)?;
        let now = self.clock.now();
        let (client, actor_id) = (client.clone(), actor.user_id);
        let created = self
            .db
            .transaction(|tx| {
                Box::pin(async move {
                    if !roles::by_names(tx, std::slice::from_ref(&name))
                        .await?
                        .is_empty()
                    {
                        return Err(name_taken());
                    }
                    let role = roles::insert(
                        tx,
                        role::Model {
                            id: depot_domain::id::new_id(),
                            name,
                            description,
                            mfa_required,
                            built_in: false,
                            created_at: now,
                            updated_at: now,
                        },
                    )
                    .await?;
                    roles::set_permissions(tx, role.id, &permissions).await?;
                    let shown = view(roles::get(tx, role.id).await?.ok_or_else(not_found)?);
                    audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("role.created")
                            .actor(actor_id)
                            .target("role", shown.id)
                            .change(serde_json::Value::Null, audit_view(&shown)),
                    )
                    .await?;
                    Ok(shown)
                })
            })
            .await?;
        Ok(created)
    }

    /// Edits a role. Takes effect for its holders on their next request, on every instance.
    pub async fn update(
        &self,
        actor: &Principal,
        id: Uuid,
        patch: RolePatch,
        client: &ClientInfo,
    ) -> AppResult<RoleView> {
        let mut v = Validator::new();
        if let Some(name) = &patch.name {
            validate_name(&mut v, name);
        }
        v.finish()?;
        let permissions = patch
            .permissions
            .as_deref()
            .map(parse_permissions)
            .transpose()?;
        let now = self.clock.now();
        let (client, actor_id) = (client.clone(), actor.user_id);
        let updated = self
            .db
            .transaction(|tx| {
                Box::pin(async move {
                    let current = roles::get(tx, id).await?.ok_or_else(not_found)?;
                    let before = view(current.clone());
                    let mut role = current.role;
                    if let Some(name) = patch.name
                        && name != role.name
                    {
                        if role.built_in {
                            return Err(AppError::conflict(
                                "roles.built_in",
                                "built-in roles cannot be renamed",
                            ));
                        }
                        if !roles::by_names(tx, std::slice::from_ref(&name))
                            .await?
                            .is_empty()
                        {
                            return Err(name_taken());
                        }
                        role.name = name;
                    }
                    if let Some(description) = patch.description {
                        role.description = description;
                    }
                    if let Some(mfa) = patch.mfa_required {
                        role.mfa_required = mfa;
                    }
                    if let Some(permissions) = &permissions {
                        if role.name == BuiltInRole::Admin.name()
                            && permissions.len() != Permission::ALL.len()
                        {
                            return Err(AppError::conflict(
                                "roles.admin_is_complete",
                                "the admin role always holds every permission",
                            ));
                        }
                        roles::set_permissions(tx, id, permissions).await?;
                    }
                    role.updated_at = now;
                    roles::save(tx, role).await?;
                    let after = view(roles::get(tx, id).await?.ok_or_else(not_found)?);
                    audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("role.updated")
                            .actor(actor_id)
                            .target("role", id)
                            .change(audit_view(&before), audit_view(&after)),
                    )
                    .await?;
                    Ok(after)
                })
            })
            .await?;
        self.auth.invalidate().await;
        Ok(updated)
    }

    /// Deletes a custom role; its holders lose it (and are signed out).
    pub async fn delete(&self, actor: &Principal, id: Uuid, client: &ClientInfo) -> AppResult<()> {
        let now = self.clock.now();
        let (client, actor_id) = (client.clone(), actor.user_id);
        self.db
            .transaction(|tx| {
                Box::pin(async move {
                    let role = roles::get(tx, id).await?.ok_or_else(not_found)?;
                    if role.role.built_in {
                        return Err(AppError::conflict(
                            "roles.built_in",
                            "built-in roles cannot be deleted",
                        ));
                    }
                    for holder in roles::holders(tx, id).await? {
                        crate::auth::sessions::revoke_everything(tx, holder, "roles_changed", now)
                            .await?;
                    }
                    roles::delete(tx, id).await?;
                    audit_record(
                        tx,
                        now,
                        &client,
                        AuditEntry::new("role.deleted")
                            .actor(actor_id)
                            .target("role", id)
                            .change(audit_view(&view(role)), serde_json::Value::Null),
                    )
                    .await
                })
            })
            .await?;
        self.auth.invalidate().await;
        Ok(())
    }
}

fn name_taken() -> AppError {
    AppError::conflict("roles.name_taken", "a role with this name exists")
        .with_details(serde_json::json!({ "field": "name" }))
}

/// Creates the built-in roles that do not exist yet and never touches existing ones (their
/// permissions may have been edited). Runs after migrations, at start and in `migrate up`.
pub async fn ensure_built_ins(db: &Db, now: DateTime<Utc>) -> AppResult<()> {
    db.transaction(|tx| {
        Box::pin(async move {
            let names: Vec<String> = BuiltInRole::ALL
                .iter()
                .map(|r| r.name().to_owned())
                .collect();
            let existing = roles::by_names(tx, &names).await?;
            for built_in in BuiltInRole::ALL {
                if existing.iter().any(|r| r.name == built_in.name()) {
                    continue;
                }
                let role = roles::insert(
                    tx,
                    role::Model {
                        id: depot_domain::id::new_id(),
                        name: built_in.name().into(),
                        description: built_in.description().into(),
                        mfa_required: built_in.mfa_required(),
                        built_in: true,
                        created_at: now,
                        updated_at: now,
                    },
                )
                .await?;
                let permissions = built_in
                    .default_permissions()
                    .into_iter()
                    .map(|p| p.code().to_owned())
                    .collect();
                roles::set_permissions(tx, role.id, &permissions).await?;
            }
            Ok(())
        })
    })
    .await
}
