//! Keeping every instance's L1 in step without a Redis round trip per read.
//!
//! Each process subscribes to `<namespace>:cache-sync`. Invalidations and flags are published
//! there after they are written to Redis, and every subscriber applies them to its L1 state.
//! While the subscription is healthy, [`Cache::get_or_load_fresh`](super::Cache) answers from
//! local state alone; the moment it is not, reads go back to Redis on every call.
//!
//! "Healthy" is proved, not assumed: every 250 ms the process publishes a heartbeat and counts
//! itself in sync only while its own heartbeat came back within the last second. A publisher
//! also waits (briefly) for its own message to come back before returning, so by the time an
//! invalidating request answers, Redis has handed the message to every subscriber. After a
//! (re)subscribe the process re-reads every namespace version and flag it may have missed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Heartbeat period.
pub(super) const HEARTBEAT: Duration = Duration::from_millis(250);
/// A heartbeat older than this means the subscription can no longer be trusted.
const FRESH: Duration = Duration::from_secs(1);
/// How long a publisher waits for its own message to come back.
const ECHO_WAIT: Duration = Duration::from_millis(250);

pub(super) struct SyncState {
    pub(super) instance: String,
    subscribed: AtomicBool,
    last_echo: Mutex<Option<Instant>>,
    waiters: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl SyncState {
    pub(super) fn new() -> Self {
        Self {
            instance: depot_domain::id::new_id().simple().to_string(),
            subscribed: AtomicBool::new(false),
            last_echo: Mutex::new(None),
            waiters: Mutex::new(HashMap::new()),
        }
    }

    /// Whether local state reflects every invalidation published so far.
    pub(super) fn in_sync(&self) -> bool {
        self.subscribed.load(Ordering::SeqCst)
            && self
                .last_echo
                .lock()
                .ok()
                .and_then(|e| *e)
                .is_some_and(|at| at.elapsed() < FRESH)
    }

    pub(super) fn set_subscribed(&self, on: bool) {
        self.subscribed.store(on, Ordering::SeqCst);
        if !on {
            self.lost();
        }
    }

    /// Forget the last echo: out of sync until the next heartbeat comes back.
    pub(super) fn lost(&self) {
        if let Ok(mut e) = self.last_echo.lock() {
            *e = None;
        }
    }

    pub(super) fn heard_own_heartbeat(&self) {
        if let Ok(mut e) = self.last_echo.lock() {
            *e = Some(Instant::now());
        }
    }

    /// Registers a message id whose echo the publisher will wait for.
    pub(super) fn expect(&self, id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiters.lock() {
            w.insert(id.to_owned(), tx);
        }
        rx
    }

    pub(super) fn echoed(&self, id: &str) {
        if let Some(tx) = self.waiters.lock().ok().and_then(|mut w| w.remove(id)) {
            let _ = tx.send(());
        }
    }

    /// Waits for the echo of `id`; without it the subscription is not trusted any more.
    pub(super) async fn await_echo(&self, id: &str, rx: oneshot::Receiver<()>) {
        if tokio::time::timeout(ECHO_WAIT, rx).await.is_err() {
            if let Ok(mut w) = self.waiters.lock() {
                w.remove(id);
            }
            tracing::warn!("cache sync: own message did not come back; reading Redis directly");
            self.lost();
        }
    }
}

/// One message on the sync channel.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SyncMessage {
    Heartbeat {
        instance: String,
    },
    Version {
        id: String,
        namespace: String,
        version: u64,
    },
    Flag {
        id: String,
        ttl_ms: u64,
        key: String,
    },
}

impl SyncMessage {
    pub(super) fn encode(&self) -> String {
        match self {
            SyncMessage::Heartbeat { instance } => format!("h {instance}"),
            SyncMessage::Version {
                id,
                namespace,
                version,
            } => format!("v {id} {version} {namespace}"),
            SyncMessage::Flag { id, ttl_ms, key } => format!("f {id} {ttl_ms} {key}"),
        }
    }

    pub(super) fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(4, ' ');
        match parts.next()? {
            "h" => Some(SyncMessage::Heartbeat {
                instance: parts.next()?.to_owned(),
            }),
            "v" => Some(SyncMessage::Version {
                id: parts.next()?.to_owned(),
                version: parts.next()?.parse().ok()?,
                namespace: parts.next()?.to_owned(),
            }),
            "f" => Some(SyncMessage::Flag {
                id: parts.next()?.to_owned(),
                ttl_ms: parts.next()?.parse().ok()?,
                key: parts.next()?.to_owned(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_keys_may_contain_spaces_and_colons() {
        for m in [
            SyncMessage::Heartbeat {
                instance: "abc".into(),
            },
            SyncMessage::Version {
                id: "1".into(),
                namespace: "authz".into(),
                version: 7,
            },
            SyncMessage::Flag {
                id: "2".into(),
                ttl_ms: 900,
                key: "denied:a b".into(),
            },
        ] {
            assert_eq!(SyncMessage::decode(&m.encode()), Some(m));
        }
        assert_eq!(SyncMessage::decode("x 1"), None);
        assert_eq!(SyncMessage::decode("v 1 notanumber ns"), None);
    }

    #[test]
    fn in_sync_only_while_the_own_heartbeat_is_fresh() {
        let s = SyncState::new();
        assert!(!s.in_sync());
        s.set_subscribed(true);
        assert!(!s.in_sync(), "no heartbeat heard yet");
        s.heard_own_heartbeat();
        assert!(s.in_sync());
        s.lost();
        assert!(!s.in_sync());
        s.heard_own_heartbeat();
        s.set_subscribed(false);
        assert!(!s.in_sync());
    }
}
