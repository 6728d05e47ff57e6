//! When a scheduled job runs: every fixed interval, or by a cron expression (with seconds:
//! `sec min hour day-of-month month day-of-week`, UTC).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub enum Cadence {
    Every(Duration),
    Cron(Box<cron::Schedule>),
}

impl Cadence {
    /// Parses `every 90s` / `every 10m` / `every 2h` or a cron expression.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("every ") {
            let rest = rest.trim();
            let (number, unit) = rest.split_at(
                rest.find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len()),
            );
            let n: u64 = number
                .parse()
                .map_err(|_| format!("{text:?}: expected e.g. `every 10m`"))?;
            let seconds = match unit {
                "s" => n,
                "m" => n * 60,
                "h" => n * 3600,
                _ => return Err(format!("{text:?}: the unit must be s, m or h")),
            };
            if seconds == 0 {
                return Err(format!("{text:?}: the interval must be positive"));
            }
            return Ok(Self::Every(Duration::from_secs(seconds)));
        }
        cron::Schedule::from_str(text)
            .map(|s| Self::Cron(Box::new(s)))
            .map_err(|e| {
                format!("{text:?} is neither `every <n><s|m|h>` nor a cron expression: {e}")
            })
    }

    /// The first run time strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(every) => chrono::Duration::from_std(*every).ok().map(|d| now + d),
            Self::Cron(schedule) => schedule.after(&now).next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn intervals_and_cron_expressions() {
        let now = Utc
            .with_ymd_and_hms(2026, 1, 1, 10, 7, 30)
            .single()
            .unwrap_or_default();
        let every = Cadence::parse("every 10m").ok();
        assert_eq!(
            every.and_then(|c| c.next_after(now)),
            Some(now + chrono::Duration::minutes(10))
        );
        let cron = Cadence::parse("0 */15 * * * *").ok();
        assert_eq!(
            cron.and_then(|c| c.next_after(now)),
            Utc.with_ymd_and_hms(2026, 1, 1, 10, 15, 0).single()
        );
        let nightly = Cadence::parse("0 30 2 * * *").ok();
        assert_eq!(
            nightly.and_then(|c| c.next_after(now)),
            Utc.with_ymd_and_hms(2026, 1, 2, 2, 30, 0).single()
        );
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "every",
            "every 0s",
            "every 5d",
            "every tenm",
            "* * *",
            "61 * * * * *",
        ] {
            assert!(Cadence::parse(bad).is_err(), "{bad}");
        }
    }
}
