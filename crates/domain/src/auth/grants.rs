//! Who may hand out access: nobody grants, revokes or edits a permission they do not hold
//! themselves, and no change may leave the system without an administrator.

use std::collections::BTreeSet;

use super::Permission;
use crate::{AppError, AppResult, ErrorCode};

/// The permissions that make an administrator: whoever holds both can repair any access.
pub const ADMINISTRATION: [Permission; 2] = [Permission::UsersManage, Permission::RolesManage];

/// Refuses a change touching `touched` unless the caller `holds` every one of them
/// (`auth.permission_not_held`, 403, naming the missing ones).
pub fn ensure_held<'a>(
    holds: &BTreeSet<String>,
    touched: impl IntoIterator<Item = &'a String>,
) -> AppResult<()> {
    let missing: BTreeSet<&String> = touched
        .into_iter()
        .filter(|p| !holds.contains(*p))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorCode::AuthPermissionNotHeld,
            "you cannot grant, revoke or edit permissions you do not hold yourself",
        )
        .with_details(serde_json::json!({ "permissions": missing })))
    }
}

/// The permissions that change when `before` becomes `after` (gained or lost).
pub fn changed(before: &BTreeSet<String>, after: &BTreeSet<String>) -> BTreeSet<String> {
    before.symmetric_difference(after).cloned().collect()
}

/// Whether a set of permissions makes its holder an administrator.
pub fn is_administrator(permissions: &BTreeSet<String>) -> bool {
    ADMINISTRATION
        .iter()
        .all(|p| permissions.contains(p.code()))
}

/// `users.last_admin` (409): the change would leave no active administrator.
pub fn last_admin() -> AppError {
    AppError::new(
        ErrorCode::UsersLastAdmin,
        "this change would leave no active user holding users.manage and roles.manage",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_held_permission_may_be_handed_out() {
        let holds = set(&["users.manage", "stock.read"]);
        assert!(ensure_held(&holds, &set(&["stock.read"])).is_ok());
        assert!(ensure_held(&holds, &set(&[])).is_ok());
    }

    #[test]
    fn an_unheld_permission_is_named_in_the_refusal() {
        let holds = set(&["users.manage"]);
        let err = ensure_held(&holds, &set(&["roles.manage", "users.manage"]))
            .err()
            .map(|e| (e.code().to_owned(), e.details().cloned()));
        assert_eq!(
            err,
            Some((
                "auth.permission_not_held".to_owned(),
                Some(serde_json::json!({ "permissions": ["roles.manage"] }))
            ))
        );
    }

    #[test]
    fn changes_are_what_is_gained_and_what_is_lost() {
        let before = set(&["a", "b"]);
        let after = set(&["b", "c"]);
        assert_eq!(changed(&before, &after), set(&["a", "c"]));
    }

    #[test]
    fn an_administrator_holds_both_management_permissions() {
        assert!(is_administrator(&set(&[
            "users.manage",
            "roles.manage",
            "x"
        ])));
        assert!(!is_administrator(&set(&["users.manage"])));
        assert!(!is_administrator(&set(&["roles.manage"])));
    }
}
