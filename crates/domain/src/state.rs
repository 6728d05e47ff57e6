//! States and kinds stored as text: one enum each, whose `as_str` is what the database holds
//! and whose `VALUES` feed the `CHECK (… IN (…))` constraint of its column.

/// Declares a string-valued enum: `as_str`, `parse`, `ALL`, `VALUES`, `Display`, and serde as
/// the same strings.
#[macro_export]
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// Every value as stored (for `CHECK` constraints).
            pub const VALUES: &'static [&'static str] = &[$($text),+];

            /// The stored form.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// The value stored as `text`, if any.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                ::utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(::utoipa::openapi::schema::Type::String)
                    .enum_values(Some(Self::VALUES.iter().copied()))
                    .into()
            }
        }

        impl ::utoipa::ToSchema for $name {}

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                Self::parse(&text).ok_or_else(|| {
                    ::serde::de::Error::unknown_variant(&text, Self::VALUES)
                })
            }
        }
    };
}

string_enum! {
    /// `users.status`.
    pub enum UserStatus { Active = "active", Disabled = "disabled" }
}

string_enum! {
    /// `refresh_tokens.status`: a token is used once, then rotated; revoked with its session.
    pub enum RefreshTokenStatus { Active = "active", Rotated = "rotated", Revoked = "revoked" }
}

string_enum! {
    /// `jobs.status`: a message on the database queue.
    pub enum JobStatus {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Dead = "dead",
    }
}

string_enum! {
    /// `outbox.status`.
    pub enum OutboxStatus { Pending = "pending", Published = "published", Failed = "failed" }
}

string_enum! {
    /// `idempotency_keys.status`: claimed and running; its effect committed (the response not
    /// stored yet); its response stored.
    pub enum IdempotencyStatus {
        InProgress = "in_progress",
        Committed = "committed",
        Completed = "completed",
    }
}

string_enum! {
    /// `outbound_emails.status`.
    pub enum EmailStatus { Pending = "pending", Sending = "sending", Sent = "sent", Dead = "dead" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_parses_back_and_nothing_else_does() {
        for s in UserStatus::ALL {
            assert_eq!(UserStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(UserStatus::VALUES, ["active", "disabled"]);
        assert_eq!(UserStatus::parse("Active"), None);
        assert_eq!(JobStatus::VALUES.len(), JobStatus::ALL.len());
    }

    #[test]
    fn serde_uses_the_stored_form() {
        assert_eq!(
            serde_json::to_string(&UserStatus::Disabled).unwrap(),
            "\"disabled\""
        );
        let back: RefreshTokenStatus = serde_json::from_str("\"rotated\"").unwrap();
        assert_eq!(back, RefreshTokenStatus::Rotated);
        assert!(serde_json::from_str::<UserStatus>("\"gone\"").is_err());
    }
}
