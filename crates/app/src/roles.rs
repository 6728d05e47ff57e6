//! Roles: named sets of permissions, editable by admins. The built-in roles are created on
//! start when missing and cannot be deleted or renamed; `admin` always holds every permission.

use depot_domain::ErrorCode;
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use depot_domain::auth::{BuiltInRole, Permission};
use depot_domain::{Actor, AppError, AppResult, FieldError, Validator};
use depot_store::entity::role;
use depot_store::on_constraint;
use depot_store::repo::roles::{self, RoleWithPermissions};
use serde::Serialize;
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::auth::authz::AuthzCache;
use crate::auth::grants;
use crate::client::ClientInfo;
use crate::uow::{UnitOfWork, Writer};

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
    AppError::new(ErrorCode::RolesNotFound, "no such role")
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

/// Longest role description, in characters (it may span lines).
pub const DESCRIPTION_MAX: usize = 1_000;

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
    writer: Writer,
    authz: AuthzCache,
}

impl RoleService {
    pub fn new(writer: Writer, authz: AuthzCache) -> Self {
        Self { writer, authz }
    }

    pub async fn list(&self) -> AppResult<Vec<RoleView>> {
        Ok(roles::list(self.writer.db().reader())
            .await?
            .into_iter()
            .map(view)
            .collect())
    }

    pub async fn get(&self, id: Uuid) -> AppResult<RoleView> {
        roles::get(self.writer.db().reader(), id)
            .await?
            .map(view)
            .ok_or_else(not_found)
    }

    pub async fn create(
        &self,
        actor: Actor,
        name: String,
        description: String,
        permissions: Vec<String>,
        mfa_required: bool,
        client: &ClientInfo,
    ) -> AppResult<RoleView> {
        let mut v = Validator::new();
        validate_name(&mut v, &name);
        v.text("description", &description, DESCRIPTION_MAX);
        v.finish()?;
        let permissions = parse_permissions(&permissions)?;
        let uow = self.writer.begin(actor, client).await?;
        grants::ensure_actor_holds(&uow, &permissions).await?;
        if !roles::by_names(uow.tx(), std::slice::from_ref(&name))
            .await?
            .is_empty()
        {
            return Err(name_taken());
        }
        let id = insert_role(&uow, name, description, mfa_required, false, &permissions).await?;
        let shown = view(roles::get(uow.tx(), id).await?.ok_or_else(not_found)?);
        uow.audit(
            AuditEntry::new("role.created")
                .target("role", shown.id)
                .change(serde_json::Value::Null, audit_view(&shown)),
        )
        .await?;
        uow.commit().await?;
        Ok(shown)
    }

    /// Edits a role. Takes effect for its holders on their next request, on every instance.
    pub async fn update(
        &self,
        actor: Actor,
        id: Uuid,
        patch: RolePatch,
        client: &ClientInfo,
    ) -> AppResult<RoleView> {
        let mut v = Validator::new();
        if let Some(name) = &patch.name {
            validate_name(&mut v, name);
        }
        if let Some(description) = &patch.description {
            v.text("description", description, DESCRIPTION_MAX);
        }
        v.finish()?;
        let permissions = patch
            .permissions
            .as_deref()
            .map(parse_permissions)
            .transpose()?;
        let mut uow = self.writer.begin(actor, client).await?;
        grants::lock(&uow).await?;
        let current = roles::get(uow.tx(), id).await?.ok_or_else(not_found)?;
        // Editing a role at all (even its MFA requirement) needs every permission it carries,
        // and every permission it gains.
        let touched: BTreeSet<String> = current
            .permissions
            .iter()
            .chain(permissions.iter().flatten())
            .cloned()
            .collect();
        grants::ensure_actor_holds(&uow, &touched).await?;
        grants::ensure_actor_outranks_holders(&uow, id).await?;
        if patch.mfa_required == Some(false) && current.role.mfa_required {
            grants::ensure_actor_is_administrator(&uow).await?;
        }
        let before = view(current.clone());
        let mut role = current.role;
        if let Some(name) = patch.name
            && name != role.name
        {
            if role.built_in {
                return Err(AppError::new(
                    ErrorCode::RolesBuiltIn,
                    "built-in roles cannot be renamed",
                ));
            }
            if !roles::by_names(uow.tx(), std::slice::from_ref(&name))
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
            if role.name == BuiltInRole::Admin.name() && permissions.len() != Permission::ALL.len()
            {
                return Err(AppError::new(
                    ErrorCode::RolesAdminIsComplete,
                    "the admin role always holds every permission",
                ));
            }
            let admins = grants::administrators(&uow).await?;
            roles::set_permissions(uow.tx(), id, permissions).await?;
            grants::ensure_an_administrator_remains(&uow, admins).await?;
        }
        role.updated_at = uow.now();
        roles::save(uow.tx(), role)
            .await
            .map_err(on_constraint(&roles::NAME_UNIQUE, name_taken))?;
        let after = view(roles::get(uow.tx(), id).await?.ok_or_else(not_found)?);
        uow.audit(
            AuditEntry::new("role.updated")
                .target("role", id)
                .change(audit_view(&before), audit_view(&after)),
        )
        .await?;
        self.authz.invalidate_after_commit(&mut uow);
        uow.commit().await?;
        Ok(after)
    }

    /// Deletes a custom role; its holders lose it (and are signed out).
    pub async fn delete(&self, actor: Actor, id: Uuid, client: &ClientInfo) -> AppResult<()> {
        let mut uow = self.writer.begin(actor, client).await?;
        grants::lock(&uow).await?;
        let role = roles::get(uow.tx(), id).await?.ok_or_else(not_found)?;
        grants::ensure_actor_holds(&uow, &role.permissions).await?;
        grants::ensure_actor_outranks_holders(&uow, id).await?;
        if role.role.built_in {
            return Err(AppError::new(
                ErrorCode::RolesBuiltIn,
                "built-in roles cannot be deleted",
            ));
        }
        for holder in roles::holders(uow.tx(), id).await? {
            crate::auth::sessions::revoke_everything(uow.tx(), holder, "roles_changed", uow.now())
                .await?;
        }
        let admins = grants::administrators(&uow).await?;
        roles::delete(uow.tx(), id).await?;
        grants::ensure_an_administrator_remains(&uow, admins).await?;
        uow.audit(
            AuditEntry::new("role.deleted")
                .target("role", id)
                .change(audit_view(&view(role)), serde_json::Value::Null),
        )
        .await?;
        self.authz.invalidate_after_commit(&mut uow);
        uow.commit().await
    }
}

/// Creates the built-in roles that do not exist yet and never touches existing ones (their
/// permissions may have been edited). Called by `SchemaService::seed` only.
pub(crate) async fn seed_built_ins(uow: &UnitOfWork) -> AppResult<()> {
    let names: Vec<String> = BuiltInRole::ALL
        .iter()
        .map(|r| r.name().to_owned())
        .collect();
    let existing = roles::by_names(uow.tx(), &names).await?;
    for built_in in BuiltInRole::ALL {
        if existing.iter().any(|r| r.name == built_in.name()) {
            continue;
        }
        let permissions = built_in
            .default_permissions()
            .into_iter()
            .map(|p| p.code().to_owned())
            .collect();
        insert_role(
            uow,
            built_in.name().into(),
            built_in.description().into(),
            built_in.mfa_required(),
            true,
            &permissions,
        )
        .await?;
    }
    Ok(())
}

fn name_taken() -> AppError {
    AppError::new(ErrorCode::RolesNameTaken, "a role with this name exists")
        .with_details(serde_json::json!({ "field": "name" }))
}

/// Inserts a role with its permissions; returns its id.
async fn insert_role(
    uow: &UnitOfWork,
    name: String,
    description: String,
    mfa_required: bool,
    built_in: bool,
    permissions: &BTreeSet<String>,
) -> AppResult<Uuid> {
    let role = roles::insert(
        uow.tx(),
        role::Model {
            id: depot_domain::id::new_id(),
            name,
            description,
            mfa_required,
            built_in,
            created_at: uow.now(),
            updated_at: uow.now(),
        },
    )
    .await
    .map_err(on_constraint(&roles::NAME_UNIQUE, name_taken))?;
    roles::set_permissions(uow.tx(), role.id, permissions).await?;
    Ok(role.id)
}
