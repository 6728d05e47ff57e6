//! Per-account login throttling: after `threshold` consecutive failures the account is locked
//! for `base`, doubling with every further failure up to `max`. A success resets the count.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            base: Duration::from_secs(60),
            max: Duration::from_secs(3600),
        }
    }
}

impl LockoutPolicy {
    /// How long the account is locked after its `failures`-th consecutive failure (none below
    /// the threshold).
    pub fn lock_after(&self, failures: u32) -> Option<Duration> {
        if self.threshold == 0 || failures < self.threshold {
            return None;
        }
        let doublings = (failures - self.threshold).min(20);
        Some(self.base.saturating_mul(1 << doublings).min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn locks_at_the_threshold_and_doubles_up_to_the_cap() {
        let p = LockoutPolicy::default();
        assert_eq!(p.lock_after(4), None);
        assert_eq!(p.lock_after(5), Some(Duration::from_secs(60)));
        assert_eq!(p.lock_after(6), Some(Duration::from_secs(120)));
        assert_eq!(p.lock_after(8), Some(Duration::from_secs(480)));
        assert_eq!(p.lock_after(100), Some(Duration::from_secs(3600)));
    }

    proptest! {
        #[test]
        fn the_lock_never_shrinks_and_never_exceeds_the_cap(n in 0u32..1000) {
            let p = LockoutPolicy::default();
            let a = p.lock_after(n).unwrap_or_default();
            let b = p.lock_after(n + 1).unwrap_or_default();
            prop_assert!(a <= b);
            prop_assert!(b <= p.max);
        }
    }
}
