//! Realtime fan-out: a message for one user's sockets, published by whichever process produced
//! it and heard by every process that may hold one of those sockets.
//!
//! Embedded, it is an in-process broadcast channel (one process serves the API and runs the
//! workers). With Redis, messages go through pub/sub on `<namespace>:realtime` and each process
//! relays what it hears to its local subscribers; a process that loses the subscription
//! resubscribes with backoff (messages published meanwhile are not replayed — a client reads
//! what it missed from the notification list when it reconnects).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cache::RedisLayer;

/// How many messages a slow local subscriber may fall behind before it loses some.
const LOCAL_CAPACITY: usize = 8_192;

/// One message for the sockets of one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub user_id: Uuid,
    /// Only this session's sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
    /// `notification`, `report.progress`, …
    pub kind: String,
    pub data: serde_json::Value,
}

pub struct Fanout {
    local: broadcast::Sender<Arc<Envelope>>,
    redis: Option<(Arc<RedisLayer>, String)>,
    stop: CancellationToken,
}

impl Fanout {
    /// In-process only.
    pub fn local() -> Arc<Self> {
        Arc::new(Self {
            local: broadcast::channel(LOCAL_CAPACITY).0,
            redis: None,
            stop: CancellationToken::new(),
        })
    }

    /// Through Redis pub/sub on `<namespace>:realtime`; [`Fanout::start`] follows the channel.
    pub fn redis(layer: Arc<RedisLayer>, namespace: &str) -> Arc<Self> {
        Arc::new(Self {
            local: broadcast::channel(LOCAL_CAPACITY).0,
            redis: Some((layer, format!("{namespace}:realtime"))),
            stop: CancellationToken::new(),
        })
    }

    /// `memory` or `redis`.
    pub fn backend(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    /// Starts following the Redis channel (a no-op in-process).
    pub fn start(self: &Arc<Self>) {
        if self.redis.is_some() {
            tokio::spawn(self.clone().follow_loop());
        }
    }

    pub fn close(&self) {
        self.stop.cancel();
    }

    /// What this process hears: every envelope published anywhere (with Redis) or here.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.local.subscribe()
    }

    /// Publishes `envelope` to every process. When Redis does not take it, this process's
    /// own sockets still get it (and the failure is counted).
    pub async fn publish(&self, envelope: Envelope) {
        match &self.redis {
            None => {
                // Nobody listening is fine.
                let _ = self.local.send(Arc::new(envelope));
            }
            Some((layer, channel)) => {
                let published = match serde_json::to_string(&envelope) {
                    Ok(text) => layer.publish(channel, &text).await.is_ok(),
                    Err(_) => false,
                };
                if !published {
                    metrics::counter!("realtime_publish_failures_total").increment(1);
                    let _ = self.local.send(Arc::new(envelope));
                }
            }
        }
    }

    async fn follow_loop(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        while !self.stop.is_cancelled() {
            if self.follow().await.is_err() {
                metrics::counter!("realtime_resubscribes_total").increment(1);
            } else {
                backoff = Duration::from_millis(100);
            }
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn follow(&self) -> Result<(), ()> {
        use futures::StreamExt;
        let Some((layer, channel)) = &self.redis else {
            return Ok(());
        };
        let timeout = Duration::from_secs(2);
        let mut pubsub = tokio::time::timeout(timeout, layer.client().get_async_pubsub())
            .await
            .map_err(|_| ())?
            .map_err(|_| ())?;
        tokio::time::timeout(timeout, pubsub.subscribe(channel))
            .await
            .map_err(|_| ())?
            .map_err(|_| ())?;
        let mut stream = pubsub.on_message();
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return Ok(()),
                message = stream.next() => {
                    let Some(message) = message else { return Err(()) };
                    match serde_json::from_slice::<Envelope>(message.get_payload_bytes()) {
                        Ok(envelope) => {
                            let _ = self.local.send(Arc::new(envelope));
                        }
                        Err(_) => metrics::counter!("realtime_unreadable_total").increment(1),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_process_subscribers_hear_what_is_published() {
        let fanout = Fanout::local();
        let mut rx = fanout.subscribe();
        let envelope = Envelope {
            user_id: Uuid::nil(),
            session_id: None,
            kind: "notification".into(),
            data: serde_json::json!({"title": "hi"}),
        };
        fanout.publish(envelope.clone()).await;
        assert_eq!(*rx.recv().await.unwrap(), envelope);
    }
}
