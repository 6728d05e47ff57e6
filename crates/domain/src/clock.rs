//! Time comes from an injected [`Clock`] so that tests can control it.

use chrono::{DateTime, Utc};

/// The source of "now" for every service.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// A clock that always answers the same instant; for tests of time-dependent rules.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}
