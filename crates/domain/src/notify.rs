//! Notifications, who wants which, and outbound webhooks: the rules, as plain data.
//!
//! A notification is one message to one user on one channel, caused by one domain event. Which
//! event types notify, on which channels by default, and which cannot be switched off are
//! decided here; so are the webhook retry schedule and which network addresses a webhook may
//! never be sent to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::string_enum;
use crate::validation::FieldError;

string_enum! {
    /// `notifications.channel`.
    pub enum Channel { Email = "email", InApp = "in_app" }
}

string_enum! {
    /// `notifications.status`: an in-app notification is `sent` once stored; an email one
    /// follows its message in the mail queue (`failed` while a retry is due, `dead` after the
    /// last attempt).
    pub enum NotificationStatus {
        Pending = "pending",
        Sent = "sent",
        Failed = "failed",
        Dead = "dead",
    }
}

string_enum! {
    /// The kinds of notification: the domain event (or security event) that causes each.
    pub enum NotificationType {
        AlertRaised = "alert.raised",
        AlertResolved = "alert.resolved",
        PurchaseOrderTransitioned = "purchase_order.transitioned",
        SalesOrderTransitioned = "sales_order.transitioned",
        PaymentTransitioned = "payment.transitioned",
        NewDeviceSignIn = "security.new_device_sign_in",
        PasswordChanged = "security.password_changed",
        MfaChanged = "security.mfa_changed",
    }
}

impl NotificationType {
    /// Security notifications always reach their user, on every channel.
    pub fn is_security(self) -> bool {
        matches!(
            self,
            Self::NewDeviceSignIn | Self::PasswordChanged | Self::MfaChanged
        )
    }

    /// Whether a user who said nothing receives this type on `channel`: everything in the
    /// app; by email only what asks the user to act or concerns their account (purchase
    /// orders waiting for approval or moving on, security). Alerts and sales are opt-in by
    /// email — a busy warehouse raises many.
    pub fn enabled_by_default(self, channel: Channel) -> bool {
        match channel {
            Channel::InApp => true,
            Channel::Email => self.is_security() || self == Self::PurchaseOrderTransitioned,
        }
    }
}

/// Checks one preference change: a security type cannot be switched off, and the email
/// channel needs an address that is one.
pub fn check_preference(
    kind: NotificationType,
    channel: Channel,
    enabled: bool,
    has_valid_email: bool,
    field: &str,
) -> Option<FieldError> {
    if kind.is_security() && !enabled {
        return Some(FieldError::new(
            field,
            "locked",
            "security notifications cannot be switched off",
        ));
    }
    if channel == Channel::Email && enabled && !has_valid_email {
        return Some(FieldError::new(
            field,
            "address_required",
            "the email channel needs a valid email address on the account",
        ));
    }
    None
}

/// Whether `address` looks like a deliverable email address: one `@`, a non-empty local
/// part, a dotted domain, no whitespace or control characters.
pub fn is_valid_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !address.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Filters of the notification list.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    /// Only this user's (always set unless the caller may see everyone's).
    pub user_id: Option<Uuid>,
    pub unread: Option<bool>,
    pub kind: Option<NotificationType>,
    pub status: Option<NotificationStatus>,
    pub channel: Option<Channel>,
}

string_enum! {
    /// `webhook_deliveries.status`.
    pub enum DeliveryStatus {
        Pending = "pending",
        Delivering = "delivering",
        Succeeded = "succeeded",
        /// The last attempt failed; another is due at `next_attempt_at`.
        Failed = "failed",
        /// Retried for the whole window without success.
        Dead = "dead",
    }
}

/// How long a webhook delivery keeps being retried.
pub const WEBHOOK_RETRY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The longest pause between two attempts of a webhook delivery.
pub const WEBHOOK_BACKOFF_CAP: Duration = Duration::from_secs(3600);

/// When a failed delivery is tried again: exponential from `base` (doubling per attempt,
/// capped at an hour, `jitter` ∈ [0, 1) spreading half of it), or `None` — dead — when that
/// would fall after the retry window that started at `first_attempt`.
pub fn webhook_retry_at(
    attempts: u32,
    base: Duration,
    jitter: f64,
    first_attempt: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let delay = crate::message::backoff_delay(attempts, base, WEBHOOK_BACKOFF_CAP, jitter);
    let at = now + chrono::Duration::from_std(delay).ok()?;
    let deadline = first_attempt + chrono::Duration::from_std(WEBHOOK_RETRY_WINDOW).ok()?;
    (at <= deadline).then_some(at)
}

/// Whether a webhook may be sent to `ip`: only a public unicast address. Loopback, private,
/// link-local (cloud metadata lives there), shared (CGNAT), unspecified, multicast, broadcast
/// and documentation ranges are refused, as is an IPv6 address that embeds one of them.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    let [.., hi, lo] = segments;
    let embedded = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // NAT64 (64:ff9b::/96) and IPv4-translated (::ffff:0:0/96) reach the IPv4 address in
    // their last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return is_public_v4(embedded);
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Local-use NAT64 (RFC 8215): whatever the network maps it to.
        || (segments[0] == 0x64 && segments[1] == 0xff9b && segments[2] == 1)
        // Unique local, link-local, the deprecated site-local.
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0
        // Documentation, Teredo and 6to4 (tunnels to IPv4 addresses).
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
        || (segments[0] == 0x2001 && segments[1] == 0)
        || segments[0] == 0x2002
        || segments[..6] == [0, 0, 0, 0, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn security_types_are_on_everywhere_and_cannot_be_switched_off() {
        for kind in NotificationType::ALL {
            for channel in Channel::ALL {
                if kind.is_security() {
                    assert!(kind.enabled_by_default(*channel));
                    assert_eq!(
                        check_preference(*kind, *channel, false, true, "f").map(|e| e.code),
                        Some("locked".into())
                    );
                } else {
                    assert!(check_preference(*kind, *channel, false, true, "f").is_none());
                }
            }
        }
        assert!(!NotificationType::AlertRaised.enabled_by_default(Channel::Email));
        assert!(NotificationType::AlertRaised.enabled_by_default(Channel::InApp));
    }

    #[test]
    fn email_needs_an_address_that_is_one() {
        let no_address = check_preference(
            NotificationType::AlertRaised,
            Channel::Email,
            true,
            false,
            "f",
        );
        assert_eq!(no_address.map(|e| e.code), Some("address_required".into()));
        assert!(
            check_preference(
                NotificationType::AlertRaised,
                Channel::InApp,
                true,
                false,
                "f"
            )
            .is_none()
        );
        assert!(is_valid_email("ops@depot.example"));
        for bad in [
            "",
            "ops",
            "ops@",
            "@x.io",
            "ops@local",
            "a b@x.io",
            "a@b@x.io",
            "a@.x",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn private_and_special_addresses_are_refused() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "64:ff9b:1::a00:1",
            "::ffff:0:7f00:1",
            "fec0::1",
            "2001:0:4136:e378::1",
            "2002:7f00:1::1",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(!is_public_ip(ip), "{refused} must be refused");
        }
        for allowed in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = allowed.parse().unwrap();
            assert!(is_public_ip(ip), "{allowed} must be allowed");
        }
    }

    #[test]
    fn retries_stop_after_the_window() {
        let start = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let base = Duration::from_secs(10);
        let first = webhook_retry_at(1, base, 0.0, start, start).unwrap();
        assert_eq!(first - start, chrono::Duration::seconds(5));
        let late = start + chrono::Duration::hours(23) + chrono::Duration::minutes(59);
        assert!(webhook_retry_at(20, base, 0.0, start, late).is_none());
    }

    proptest! {
        #[test]
        fn a_retry_is_never_due_before_now_nor_after_the_window(
            attempts in 1u32..60, offset in 0i64..(24 * 3600), jitter in 0.0f64..1.0,
        ) {
            let start = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
            let now = start + chrono::Duration::seconds(offset);
            if let Some(at) = webhook_retry_at(attempts, Duration::from_secs(5), jitter, start, now) {
                prop_assert!(at >= now);
                prop_assert!(at <= start + chrono::Duration::hours(24));
            }
        }
    }
}
