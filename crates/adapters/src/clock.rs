//! The wall clock.

use chrono::{DateTime, Utc};
use depot_domain::Clock;

/// The real clock: UTC now.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
