//! Security events (schemas in `docs/events`): emitted in the unit of work of the change, so
//! the user hears of a new sign-in, a password change or an MFA change by notification —
//! always, whatever their preferences.

use chrono::{DateTime, Utc};
use depot_domain::message::Message;
use depot_store::entity::session;
use serde_json::json;
use uuid::Uuid;

pub const NEW_DEVICE_SIGN_IN: &str = "security.new_device_sign_in";
pub const PASSWORD_CHANGED: &str = "security.password_changed";
pub const MFA_CHANGED: &str = "security.mfa_changed";

/// A sign-in from a device the account had not signed in from before.
pub(crate) fn new_device_sign_in(s: &session::Model) -> Message {
    Message::new(
        NEW_DEVICE_SIGN_IN,
        ("user", s.user_id),
        json!({
            "user_id": s.user_id,
            "session_id": s.id,
            "device_name": s.device_name,
            "user_agent": s.user_agent,
            "ip": s.ip,
            "signed_in_at": s.created_at,
        }),
        s.created_at,
    )
}

/// The password was changed by its user (`changed`) or set through a reset link (`reset`).
pub(crate) fn password_changed(user_id: Uuid, how: &str, at: DateTime<Utc>) -> Message {
    Message::new(
        PASSWORD_CHANGED,
        ("user", user_id),
        json!({ "user_id": user_id, "how": how, "changed_at": at }),
        at,
    )
}

/// Two-factor sign-in was enabled or disabled by the user, or reset by an administrator.
pub(crate) fn mfa_changed(user_id: Uuid, enabled: bool, how: &str, at: DateTime<Utc>) -> Message {
    Message::new(
        MFA_CHANGED,
        ("user", user_id),
        json!({ "user_id": user_id, "enabled": enabled, "how": how, "changed_at": at }),
        at,
    )
}
