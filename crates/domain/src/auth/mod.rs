//! Identity and access rules: the permission catalogue and built-in roles, the password policy,
//! the login lockout schedule and TOTP verification. No I/O: hashing, storage and tokens live in
//! the application layer.

pub mod grants;
pub mod lockout;
pub mod password;
pub mod permission;
pub mod totp;

pub use lockout::LockoutPolicy;
pub use password::{
    PasswordContext, PasswordPolicy, normalize_email, validate_email, validate_phone,
};
pub use permission::{BuiltInRole, Grant, Permission, perm};

use crate::AppError;
use crate::ErrorCode;
use crate::state::UserStatus;

/// `users.not_found` (404).
pub fn user_not_found() -> AppError {
    AppError::new(ErrorCode::UsersNotFound, "no such user")
}

/// Filters of the user list.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub status: Option<UserStatus>,
    /// Case-insensitive substring of the email or display name.
    pub search: Option<String>,
}
