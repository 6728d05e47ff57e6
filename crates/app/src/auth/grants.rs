//! The grant rules of [`depot_domain::auth::grants`], enforced inside the unit of work of a
//! change to who may do what: the caller's own permissions are read in the same transaction,
//! and changes to access are serialised so that "an administrator remains" cannot be raced.

use std::collections::BTreeSet;

use depot_domain::auth::Permission;
use depot_domain::auth::grants::{self, ADMINISTRATION};
use depot_domain::{Actor, AppResult};
use depot_store::repo::roles;
use uuid::Uuid;

use crate::uow::UnitOfWork;

/// Starts a change to access: taken before the unit of work reads any role or holder.
pub(crate) async fn lock(uow: &UnitOfWork) -> AppResult<()> {
    roles::lock_access_changes(uow.tx()).await
}

/// The permissions of the unit's actor, as stored now (the system holds every permission).
async fn held_by_actor(uow: &UnitOfWork) -> AppResult<BTreeSet<String>> {
    match uow.actor() {
        Actor::System(_) => Ok(Permission::ALL
            .iter()
            .map(|p| p.code().to_owned())
            .collect()),
        Actor::User(id) => roles::permissions_of_user(uow.tx(), id).await,
        Actor::Anonymous => Ok(BTreeSet::new()),
    }
}

/// `auth.permission_not_held` unless the actor holds every permission in `touched`.
pub(crate) async fn ensure_actor_holds(
    uow: &UnitOfWork,
    touched: &BTreeSet<String>,
) -> AppResult<()> {
    if touched.is_empty() {
        return Ok(());
    }
    grants::ensure_held(&held_by_actor(uow).await?, touched)
}

/// `auth.permission_not_held` unless the actor holds every permission `user` holds: nobody
/// manages (renames, re-emails, disables, re-roles) an account more powerful than their own.
pub(crate) async fn ensure_actor_outranks(uow: &UnitOfWork, user: Uuid) -> AppResult<()> {
    if uow.actor().user_id() == Some(user) {
        return Ok(());
    }
    let theirs = roles::permissions_of_user(uow.tx(), user).await?;
    ensure_actor_holds(uow, &theirs).await
}

/// `auth.permission_not_held` unless the actor outranks every other holder of `role`: editing or
/// deleting a role changes (and may sign out) everyone who holds it.
pub(crate) async fn ensure_actor_outranks_holders(uow: &UnitOfWork, role: Uuid) -> AppResult<()> {
    for holder in roles::holders(uow.tx(), role).await? {
        ensure_actor_outranks(uow, holder).await?;
    }
    Ok(())
}

/// `auth.permission_not_held` unless the actor is an administrator (lowering a role's MFA
/// requirement weakens every holder's sign-in, the actor's own included).
pub(crate) async fn ensure_actor_is_administrator(uow: &UnitOfWork) -> AppResult<()> {
    let codes: BTreeSet<String> = ADMINISTRATION.iter().map(|p| p.code().to_owned()).collect();
    ensure_actor_holds(uow, &codes).await
}

/// How many active administrators there are now; pass it to
/// [`ensure_an_administrator_remains`] after the change.
pub(crate) async fn administrators(uow: &UnitOfWork) -> AppResult<usize> {
    let codes = ADMINISTRATION.map(|p| p.code());
    roles::active_holders_of_all(uow.tx(), &codes).await
}

/// `users.last_admin` when the unit's changes took the count of active administrators from
/// `before` (some) to none. Call after writing, inside a unit that took [`lock`] before counting.
pub(crate) async fn ensure_an_administrator_remains(
    uow: &UnitOfWork,
    before: usize,
) -> AppResult<()> {
    if before > 0 && administrators(uow).await? == 0 {
        return Err(grants::last_admin());
    }
    Ok(())
}
