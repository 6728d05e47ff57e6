//! Who performs a change. Every service call that writes takes one [`Actor`], and every audit
//! row records it — a signed-in user by id, the system (a CLI command, a scheduled job) by name.

use std::fmt;

use uuid::Uuid;

/// The one who acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A signed-in user.
    User(Uuid),
    /// Depot itself: a CLI command (`"cli"`), a job or the start-up sequence, by name.
    System(&'static str),
    /// Nobody identified yet (a failed sign-in with an unknown email, a reset link request).
    Anonymous,
}

impl Actor {
    /// The acting user's id, if a user acts.
    pub fn user_id(self) -> Option<Uuid> {
        match self {
            Self::User(id) => Some(id),
            Self::System(_) | Self::Anonymous => None,
        }
    }

    /// The system actor's name, if the system acts.
    pub fn system_name(self) -> Option<&'static str> {
        match self {
            Self::System(name) => Some(name),
            Self::User(_) | Self::Anonymous => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::System(name) => write!(f, "system:{name}"),
            Self::Anonymous => f.write_str("anonymous"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_users_have_ids_and_only_the_system_has_a_name() {
        let id = Uuid::now_v7();
        assert_eq!(Actor::User(id).user_id(), Some(id));
        assert_eq!(Actor::System("cli").user_id(), None);
        assert_eq!(Actor::Anonymous.user_id(), None);
        assert_eq!(Actor::System("cli").system_name(), Some("cli"));
        assert_eq!(Actor::User(id).system_name(), None);
        assert_eq!(Actor::System("cli").to_string(), "system:cli");
        assert_eq!(Actor::User(id).to_string(), format!("user:{id}"));
    }
}
