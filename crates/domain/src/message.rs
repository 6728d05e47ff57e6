//! The message envelope every domain event travels in, and the retry backoff rule.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A domain event on the wire: id, type, version, time, correlation id and payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Unique per event (UUIDv7); consumers deduplicate on it.
    pub id: Uuid,
    /// Dotted event type, e.g. `stock.changed`; also the routing key.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload schema version.
    pub version: i32,
    pub occurred_at: DateTime<Utc>,
    /// The request or job that caused the event.
    pub correlation_id: Option<String>,
    /// W3C trace context (`traceparent`) of the work that emitted the event — or, on the
    /// wire, of its publication — so its consumers continue that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub payload: serde_json::Value,
}

impl Message {
    /// A new event (fresh UUIDv7 id, version 1, no correlation id) about one aggregate.
    pub fn new(
        event_type: impl Into<String>,
        aggregate: (impl Into<String>, impl ToString),
        payload: serde_json::Value,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: crate::id::new_id(),
            event_type: event_type.into(),
            version: 1,
            occurred_at,
            correlation_id: None,
            traceparent: None,
            aggregate_type: aggregate.0.into(),
            aggregate_id: aggregate.1.to_string(),
            payload,
        }
    }

    /// The request or job that caused the event.
    pub fn correlated(mut self, correlation_id: Option<String>) -> Self {
        self.correlation_id = correlation_id;
        self
    }

    /// The trace the event continues (`traceparent`), when it is not the emitter's current one.
    pub fn traced(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }
}

/// Delay before retry number `attempt` (1-based): exponential from `base`, capped at `cap`,
/// with "equal jitter" — half fixed, half scaled by `jitter` ∈ [0, 1) — so retries of many
/// failing messages spread out instead of arriving together.
pub fn backoff_delay(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(cap);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_exponentially_until_the_cap() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        let upper: Vec<_> = (1..=8).map(|a| backoff_delay(a, base, cap, 1.0)).collect();
        assert_eq!(upper[0], Duration::from_millis(100));
        assert_eq!(upper[1], Duration::from_millis(200));
        assert_eq!(upper[2], Duration::from_millis(400));
        assert_eq!(upper[7], cap);
        assert_eq!(backoff_delay(3, base, cap, 0.0), Duration::from_millis(200));
    }

    #[test]
    fn envelope_uses_type_on_the_wire() {
        let m = Message {
            id: Uuid::nil(),
            event_type: "stock.changed".into(),
            version: 1,
            occurred_at: DateTime::<Utc>::MIN_UTC,
            correlation_id: None,
            traceparent: None,
            aggregate_type: "product".into(),
            aggregate_id: "p1".into(),
            payload: serde_json::json!({}),
        };
        let json = serde_json::to_value(&m).unwrap_or_default();
        assert_eq!(json["type"], "stock.changed");
    }

    proptest! {
        #[test]
        fn never_exceeds_the_cap_nor_falls_below_half(attempt in 1u32..100, jitter in 0.0f64..1.0) {
            let base = Duration::from_millis(50);
            let cap = Duration::from_secs(60);
            let d = backoff_delay(attempt, base, cap, jitter);
            let full = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(30)).min(cap);
            prop_assert!(d <= cap);
            prop_assert!(d >= full / 2);
        }
    }
}
