//! Identity and access rules: the permission catalogue and built-in roles, the password policy,
//! the login lockout schedule and TOTP verification. No I/O: hashing, storage and tokens live in
//! the application layer.

pub mod lockout;
pub mod password;
pub mod permission;
pub mod totp;

pub use lockout::LockoutPolicy;
pub use password::{PasswordPolicy, normalize_email, validate_email, validate_phone};
pub use permission::{BuiltInRole, Grant, Permission, perm};
