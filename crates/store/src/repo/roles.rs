//! Roles, their permissions and their holders.

use std::collections::{BTreeMap, BTreeSet};

use depot_domain::AppResult;
use depot_domain::state::UserStatus;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Statement,
};
use uuid::Uuid;

use super::replace_rows;
use crate::entity::{role, role_permission, user, user_role};
use crate::error::{Constraint, db_error};

/// Role names are unique.
pub const NAME_UNIQUE: Constraint = Constraint {
    name: "roles_name_key",
    table: "roles",
    columns: &["name"],
};

/// A role with its permission codes.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleWithPermissions {
    pub role: role::Model,
    pub permissions: BTreeSet<String>,
}

pub async fn insert(conn: &impl ConnectionTrait, role: role::Model) -> AppResult<role::Model> {
    role.into_active_model()
        .reset_all()
        .insert(conn)
        .await
        .map_err(db_error)
}

pub async fn save(conn: &impl ConnectionTrait, role: role::Model) -> AppResult<role::Model> {
    role.into_active_model()
        .reset_all()
        .update(conn)
        .await
        .map_err(db_error)
}

pub async fn delete(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<()> {
    role::Entity::delete_by_id(id)
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<RoleWithPermissions>> {
    let Some(role) = role::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let permissions = permissions_of(conn, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    Ok(Some(RoleWithPermissions { role, permissions }))
}

pub async fn by_names(
    conn: &impl ConnectionTrait,
    names: &[String],
) -> AppResult<Vec<role::Model>> {
    role::Entity::find()
        .filter(role::Column::Name.is_in(names.iter().cloned()))
        .all(conn)
        .await
        .map_err(db_error)
}

/// Every role, by name. Roles are few (tens), so the list is not paginated.
pub async fn list(conn: &impl ConnectionTrait) -> AppResult<Vec<RoleWithPermissions>> {
    let roles = role::Entity::find()
        .order_by_asc(role::Column::Name)
        .all(conn)
        .await
        .map_err(db_error)?;
    let ids: Vec<Uuid> = roles.iter().map(|r| r.id).collect();
    let mut permissions = permissions_of(conn, &ids).await?;
    Ok(roles
        .into_iter()
        .map(|role| RoleWithPermissions {
            permissions: permissions.remove(&role.id).unwrap_or_default(),
            role,
        })
        .collect())
}

async fn permissions_of(
    conn: &impl ConnectionTrait,
    role_ids: &[Uuid],
) -> AppResult<BTreeMap<Uuid, BTreeSet<String>>> {
    let rows = role_permission::Entity::find()
        .filter(role_permission::Column::RoleId.is_in(role_ids.iter().copied()))
        .all(conn)
        .await
        .map_err(db_error)?;
    let mut map: BTreeMap<Uuid, BTreeSet<String>> = BTreeMap::new();
    for row in rows {
        map.entry(row.role_id).or_default().insert(row.permission);
    }
    Ok(map)
}

/// Replaces the role's permissions with `permissions`.
pub async fn set_permissions(
    conn: &impl ConnectionTrait,
    role_id: Uuid,
    permissions: &BTreeSet<String>,
) -> AppResult<()> {
    let rows = permissions.iter().map(|p| {
        role_permission::Model {
            role_id,
            permission: p.clone(),
        }
        .into_active_model()
    });
    replace_rows(conn, role_permission::Column::RoleId.eq(role_id), rows).await
}

/// The roles a user holds.
pub async fn of_user(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
) -> AppResult<Vec<RoleWithPermissions>> {
    let ids: Vec<Uuid> = user_role::Entity::find()
        .filter(user_role::Column::UserId.eq(user_id))
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|r| r.role_id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    list_by_ids(conn, &ids).await
}

async fn list_by_ids(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<RoleWithPermissions>> {
    let roles = role::Entity::find()
        .filter(role::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(role::Column::Name)
        .all(conn)
        .await
        .map_err(db_error)?;
    let mut permissions = permissions_of(conn, ids).await?;
    Ok(roles
        .into_iter()
        .map(|role| RoleWithPermissions {
            permissions: permissions.remove(&role.id).unwrap_or_default(),
            role,
        })
        .collect())
}

/// Role names per user, for lists of users.
pub async fn names_of_users(
    conn: &impl ConnectionTrait,
    user_ids: &[Uuid],
) -> AppResult<BTreeMap<Uuid, Vec<String>>> {
    let links = user_role::Entity::find()
        .filter(user_role::Column::UserId.is_in(user_ids.iter().copied()))
        .all(conn)
        .await
        .map_err(db_error)?;
    let role_ids: BTreeSet<Uuid> = links.iter().map(|l| l.role_id).collect();
    let names: BTreeMap<Uuid, String> = role::Entity::find()
        .filter(role::Column::Id.is_in(role_ids))
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect();
    let mut map: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
    for link in links {
        if let Some(name) = names.get(&link.role_id) {
            map.entry(link.user_id).or_default().push(name.clone());
        }
    }
    for names in map.values_mut() {
        names.sort();
    }
    Ok(map)
}

/// Replaces the user's roles.
pub async fn set_user_roles(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    role_ids: &BTreeSet<Uuid>,
) -> AppResult<()> {
    let rows = role_ids
        .iter()
        .map(|&role_id| user_role::Model { user_id, role_id }.into_active_model());
    replace_rows(conn, user_role::Column::UserId.eq(user_id), rows).await
}

/// Users holding the role.
pub async fn holders(conn: &impl ConnectionTrait, role_id: Uuid) -> AppResult<Vec<Uuid>> {
    Ok(user_role::Entity::find()
        .filter(user_role::Column::RoleId.eq(role_id))
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|r| r.user_id)
        .collect())
}

/// Every permission the user holds through any of their roles.
pub async fn permissions_of_user(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
) -> AppResult<BTreeSet<String>> {
    Ok(of_user(conn, user_id)
        .await?
        .into_iter()
        .flat_map(|r| r.permissions)
        .collect())
}

/// Serialises changes to who holds which permission until the transaction ends, so that two
/// concurrent demotions cannot each see the other administrator still in place. PostgreSQL: a
/// transaction-level advisory lock; SQLite: writers are already serialised.
pub async fn lock_access_changes(conn: &impl ConnectionTrait) -> AppResult<()> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT pg_advisory_xact_lock({ACCESS_CHANGES_LOCK_KEY})"),
        ))
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// Arbitrary but fixed key of the advisory lock taken by [`lock_access_changes`].
const ACCESS_CHANGES_LOCK_KEY: i64 = 0x6465_706f_7461_6363;

/// How many active users hold every one of `permissions` (through any mix of roles).
pub async fn active_holders_of_all(
    conn: &impl ConnectionTrait,
    permissions: &[&str],
) -> AppResult<usize> {
    Ok(active_holders(conn, permissions).await?.len())
}

/// The active users who hold every one of `permissions` (through any mix of roles), in id
/// order.
pub async fn active_holders(
    conn: &impl ConnectionTrait,
    permissions: &[&str],
) -> AppResult<Vec<Uuid>> {
    let grants = role_permission::Entity::find()
        .filter(role_permission::Column::Permission.is_in(permissions.iter().copied()))
        .all(conn)
        .await
        .map_err(db_error)?;
    let mut by_role: BTreeMap<Uuid, BTreeSet<String>> = BTreeMap::new();
    for grant in grants {
        by_role
            .entry(grant.role_id)
            .or_default()
            .insert(grant.permission);
    }
    let links = user_role::Entity::find()
        .filter(user_role::Column::RoleId.is_in(by_role.keys().copied()))
        .all(conn)
        .await
        .map_err(db_error)?;
    let mut by_user: BTreeMap<Uuid, BTreeSet<String>> = BTreeMap::new();
    for link in links {
        if let Some(held) = by_role.get(&link.role_id) {
            by_user
                .entry(link.user_id)
                .or_default()
                .extend(held.iter().cloned());
        }
    }
    let holders: Vec<Uuid> = by_user
        .into_iter()
        .filter(|(_, held)| held.len() == permissions.len())
        .map(|(user, _)| user)
        .collect();
    let mut active: Vec<Uuid> = super::find_in(
        conn,
        || user::Entity::find().filter(user::Column::Status.eq(UserStatus::Active.as_str())),
        user::Column::Id,
        &holders,
    )
    .await?
    .into_iter()
    .map(|u| u.id)
    .collect();
    active.sort_unstable();
    Ok(active)
}

/// Every permission carried by any of the roles.
pub async fn permissions_of_roles(
    conn: &impl ConnectionTrait,
    role_ids: &BTreeSet<Uuid>,
) -> AppResult<BTreeSet<String>> {
    let ids: Vec<Uuid> = role_ids.iter().copied().collect();
    Ok(permissions_of(conn, &ids)
        .await?
        .into_values()
        .flatten()
        .collect())
}
