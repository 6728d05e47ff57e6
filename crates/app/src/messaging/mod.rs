//! Domain events and their consumers.
//!
//! Services record events with `UnitOfWork::emit` inside their own transaction (the outbox); the relay
//! publishes them to the broker; consumers — implementations of [`Handler`] — receive them
//! at least once and are made idempotent by [`HandlerDelivery`], which claims the message in the
//! processed-message table inside the handler's own transaction.

pub mod catalog;
mod relay;
mod schedule;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use depot_adapters::broker::{Delivery, Disposition, QueueSpec, jitter};
use depot_domain::message::{Message, backoff_delay};
use depot_domain::{AppResult, Clock};
use depot_store::repo::processed;
use depot_store::{DatabaseTransaction, Db};
use tracing::Instrument;

pub use relay::Relay;
pub use schedule::Scheduler;

/// How a consumer consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerPolicy {
    pub concurrency: usize,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for ConsumerPolicy {
    fn default() -> Self {
        Self {
            concurrency: 4,
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
        }
    }
}

/// A consumer of domain events.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The consumer's queue; also its name in the processed-message table.
    fn queue(&self) -> &'static str;
    /// The event types it consumes.
    fn bindings(&self) -> Vec<String>;
    fn policy(&self) -> ConsumerPolicy {
        ConsumerPolicy::default()
    }
    /// Whether this message concerns the consumer at all, answered without a write (a
    /// consumer bound to many event types but interested in few). When not, it is acknowledged
    /// without a transaction.
    async fn wants(&self, _message: &Message) -> AppResult<bool> {
        Ok(true)
    }
    /// Handles one message inside `tx`; its effects commit together with the processed mark.
    async fn handle(&self, tx: &DatabaseTransaction, message: &Message) -> AppResult<()>;
    /// Runs after `handle`'s transaction committed, the first time only (pushes that must not
    /// announce what might still roll back). Best effort: it cannot fail the message.
    async fn committed(&self, _message: &Message) {}
}

/// The queue a handler consumes, with its policy.
pub fn queue_spec(handler: &dyn Handler, concurrency_override: Option<usize>) -> QueueSpec {
    let policy = handler.policy();
    QueueSpec {
        name: handler.queue().to_owned(),
        bindings: handler.bindings(),
        concurrency: concurrency_override.unwrap_or(policy.concurrency).max(1),
        max_attempts: policy.max_attempts.max(1),
    }
}

/// Adapts a [`Handler`] to the broker: idempotency, retries with backoff, dead-lettering.
pub struct HandlerDelivery {
    handler: Arc<dyn Handler>,
    db: Db,
    clock: Arc<dyn Clock>,
}

impl HandlerDelivery {
    /// The consumer this delivers to.
    pub fn handler(&self) -> &dyn Handler {
        self.handler.as_ref()
    }

    /// Claims the message for this consumer and runs the handler, in one transaction; says
    /// what came of it (the metric's `result`).
    async fn handle_once(&self, message: &Message) -> AppResult<&'static str> {
        if !self.handler.wants(message).await? {
            return Ok("skipped");
        }
        let tx = self.db.begin().await?;
        if !processed::claim(&*tx, self.handler.queue(), message.id, self.clock.now()).await? {
            return Ok("duplicate");
        }
        self.handler.handle(&tx, message).await?;
        tx.commit().await?;
        self.handler.committed(message).await;
        Ok("processed")
    }

    pub fn new(handler: Arc<dyn Handler>, db: Db, clock: Arc<dyn Clock>) -> Self {
        Self { handler, db, clock }
    }
}

#[async_trait]
impl Delivery for HandlerDelivery {
    async fn deliver(&self, message: Message, attempt: u32) -> Disposition {
        let queue = self.handler.queue();
        let policy = self.handler.policy();
        let span = tracing::info_span!(
            "consume",
            queue,
            message_id = %message.id,
            event_type = %message.event_type,
            correlation_id = message.correlation_id.as_deref().unwrap_or(""),
            attempt,
            otel.name = format!("{} process", message.event_type),
            otel.kind = "consumer",
            otel.status_code = tracing::field::Empty,
        );
        // The consumer continues the trace of the message's publication.
        crate::trace::continue_trace(&span, message.traceparent.as_deref());
        let outcome = self.handle_once(&message).instrument(span.clone()).await;
        let _guard = span.enter();
        match outcome {
            Ok(result) => {
                metrics::counter!("messages_consumed_total", "queue" => queue, "result" => result)
                    .increment(1);
                Disposition::Ack
            }
            Err(err) => {
                span.record("otel.status_code", "ERROR");
                let error = format!("{}: {}", err.code(), err.cause_chain());
                metrics::counter!("messages_failed_total", "queue" => queue).increment(1);
                if attempt >= policy.max_attempts {
                    tracing::error!(%error, "message dead-lettered after {attempt} attempts");
                    metrics::counter!("messages_dead_lettered_total", "queue" => queue)
                        .increment(1);
                    Disposition::DeadLetter { error }
                } else {
                    let after =
                        backoff_delay(attempt, policy.backoff_base, policy.backoff_cap, jitter());
                    tracing::warn!(%error, retry_in_ms = after.as_millis() as u64, "message failed; will retry");
                    metrics::counter!("messages_retried_total", "queue" => queue).increment(1);
                    Disposition::Retry { after, error }
                }
            }
        }
    }
}
