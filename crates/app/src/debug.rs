//! Test and development support (only with `debug_routes`, refused in prod): emit a
//! `debug.ping` event that the `debug` consumer handles — slowly, failing a number of times, or
//! always — leaving an audit row as its effect. It exercises the outbox, relay, broker and
//! consumer path end to end, including across a crash.

use depot_domain::ErrorCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use depot_adapters::cache::Cache;
use depot_domain::message::Message;
use depot_domain::{Actor, AppError, AppResult, Clock};
use depot_store::DatabaseTransaction;
use depot_store::repo::audit;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::background::Background;
use crate::client::ClientInfo;
use crate::messaging::{ConsumerPolicy, Handler};
use crate::uow::Writer;

pub const PING: &str = "debug.ping";
pub const HANDLED: &str = "debug.ping.handled";

/// What the `debug` consumer does with a ping.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ping {
    #[serde(default)]
    pub sleep_ms: u64,
    /// Fail this many deliveries before succeeding.
    #[serde(default)]
    pub fail_times: u32,
    /// Fail every delivery (a poison message).
    #[serde(default)]
    pub poison: bool,
}

#[derive(Clone)]
pub struct DebugService {
    writer: Writer,
    cache: Arc<Cache>,
    loads: Arc<AtomicU64>,
    attempts: Attempts,
}

/// How many times the `debug` consumer of this process ran its handler, per message.
type Attempts = Arc<Mutex<HashMap<Uuid, u32>>>;

/// A value served through the cache, with how many times its loader ran in this process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cached {
    pub key: String,
    pub loaded_at_load: u64,
}

impl DebugService {
    pub fn new(writer: Writer, cache: Arc<Cache>) -> Self {
        Self {
            writer,
            cache,
            loads: Arc::new(AtomicU64::new(0)),
            attempts: Attempts::default(),
        }
    }

    /// Registers the `debug` consumer.
    pub fn register(&self, background: &mut Background) {
        background.consumer(Arc::new(DebugHandler::new(
            self.writer.clock().clone(),
            self.attempts.clone(),
        )));
    }

    /// How many times this process's `debug` consumer ran its handler for `message` (whatever
    /// the broker: tests assert retries on RabbitMQ as on the database queue).
    pub fn attempts(&self, message: Uuid) -> u32 {
        self.attempts
            .lock()
            .map(|a| a.get(&message).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Reads `key` through the cache; the loader (standing in for the database) counts its runs.
    pub async fn cached(&self, key: &str) -> AppResult<(Cached, u64)> {
        let loads = self.loads.clone();
        let value = self
            .cache
            .get_or_load("debug", key, Duration::from_secs(60), || async move {
                let n = loads.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(Cached {
                    key: key.to_owned(),
                    loaded_at_load: n,
                })
            })
            .await?;
        Ok((value, self.loads.load(Ordering::SeqCst)))
    }

    /// Which cache serves [`DebugService::cached`]: `memory` or `redis`.
    pub fn cache_backend(&self) -> &'static str {
        self.cache.backend()
    }

    pub async fn invalidate_cached(&self) {
        self.cache.invalidate_namespace("debug").await;
    }

    /// Records a ping in the outbox; returns its message id.
    pub async fn emit_ping(&self, ping: Ping, client: &ClientInfo) -> AppResult<Uuid> {
        let mut uow = self.writer.begin(Actor::System("debug"), client).await?;
        let payload = serde_json::to_value(&ping).map_err(AppError::internal)?;
        let message = Message::new(PING, ("debug", "ping"), payload, uow.now())
            .correlated(client.request_id.clone());
        uow.emit(&message);
        uow.commit().await?;
        Ok(message.id)
    }
}

/// The `debug` consumer.
pub struct DebugHandler {
    clock: Arc<dyn Clock>,
    failures: Mutex<HashMap<Uuid, u32>>,
    attempts: Attempts,
    policy: ConsumerPolicy,
}

impl DebugHandler {
    pub fn new(clock: Arc<dyn Clock>, attempts: Attempts) -> Self {
        Self {
            clock,
            failures: Mutex::new(HashMap::new()),
            attempts,
            policy: ConsumerPolicy {
                concurrency: 4,
                max_attempts: 3,
                backoff_base: Duration::from_millis(100),
                backoff_cap: Duration::from_secs(2),
            },
        }
    }
}

#[async_trait]
impl Handler for DebugHandler {
    fn queue(&self) -> &'static str {
        "debug"
    }

    fn bindings(&self) -> Vec<String> {
        vec![PING.to_owned()]
    }

    fn policy(&self) -> ConsumerPolicy {
        self.policy
    }

    async fn handle(&self, tx: &DatabaseTransaction, message: &Message) -> AppResult<()> {
        let ping: Ping = serde_json::from_value(message.payload.clone())
            .map_err(|e| AppError::new(ErrorCode::DebugBadPing, "not a ping").with_source(e))?;
        if let Ok(mut attempts) = self.attempts.lock() {
            *attempts.entry(message.id).or_insert(0) += 1;
        }
        // Observable from outside (tests wait for it before killing a worker mid-handler).
        tracing::info!(message_id = %message.id, sleep_ms = ping.sleep_ms, "ping handler started");
        if ping.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(ping.sleep_ms.min(60_000))).await;
        }
        if ping.poison {
            return Err(AppError::internal(std::io::Error::other(
                "poison message: always fails",
            )));
        }
        {
            let mut failures = self
                .failures
                .lock()
                .map_err(|_| AppError::internal(std::io::Error::other("lock")))?;
            let failed = failures.entry(message.id).or_insert(0);
            if *failed < ping.fail_times {
                *failed += 1;
                return Err(AppError::new(ErrorCode::DebugFlaky, "failing on purpose"));
            }
        }
        audit::append(
            tx,
            self.clock.now(),
            audit::NewAuditEntry {
                action: HANDLED.into(),
                target_type: Some("message".into()),
                target_id: Some(message.id.to_string()),
                ..Default::default()
            },
        )
        .await?;
        Ok(())
    }
}
