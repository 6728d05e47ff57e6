//! The message broker behind one trait, with two implementations: the durable database queue
//! (embedded default) and RabbitMQ.
//!
//! Delivery is at-least-once. A consumer hands each delivery to a [`Delivery`] and applies the
//! [`Disposition`] it answers: acknowledge, retry after a delay, or park in the dead-letter queue
//! with the reason.

pub mod database;
pub mod rabbitmq;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use depot_domain::message::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A consumer queue: its name, the event types routed to it and how it consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    /// Event types (routing keys) this queue receives.
    pub bindings: Vec<String>,
    /// Deliveries handled at once by one process.
    pub concurrency: usize,
    /// Attempts before a message is dead-lettered.
    pub max_attempts: u32,
}

/// What to do with a delivery once handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    Retry { after: Duration, error: String },
    DeadLetter { error: String },
}

/// Handles one delivery; `attempt` counts from 1.
#[async_trait]
pub trait Delivery: Send + Sync + 'static {
    async fn deliver(&self, message: Message, attempt: u32) -> Disposition;
}

/// A parked message.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The broker's handle for replaying or purging this one message.
    pub id: Uuid,
    pub queue: String,
    pub message: Option<Message>,
    pub attempts: u32,
    pub reason: Option<String>,
    pub parked_at: DateTime<Utc>,
}

/// Which dead letters an admin operation applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterSelector {
    pub id: Option<Uuid>,
    pub queue: Option<String>,
}

/// A broker failure. An *unroutable* one means the broker is fine but no queue takes this
/// message type: retrying will not help.
#[derive(Debug)]
pub struct BrokerError(pub String);

const UNROUTABLE: &str = "unroutable";

impl BrokerError {
    pub fn unroutable(event_type: &str) -> Self {
        Self(format!("{UNROUTABLE}: no queue is bound to {event_type:?}"))
    }

    pub fn is_unroutable(&self) -> bool {
        self.0.starts_with(UNROUTABLE)
    }
}

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BrokerError {}

impl From<depot_domain::AppError> for BrokerError {
    fn from(err: depot_domain::AppError) -> Self {
        Self(format!("{}: {}", err.code(), err.cause_chain()))
    }
}

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// `"database"` or `"rabbitmq"`.
    fn kind(&self) -> &'static str;

    /// Declares the queues and their bindings (idempotent). Every process declares every queue
    /// it knows, so routing holds whichever process publishes.
    async fn declare(&self, queues: &[QueueSpec]) -> Result<(), BrokerError>;

    /// Publishes one message and returns once the broker has durably accepted it (for RabbitMQ:
    /// the publisher confirm; an unroutable message is an error).
    async fn publish(&self, message: &Message) -> Result<(), BrokerError>;

    /// Publishes messages in order and reports each one's outcome, stopping at the first
    /// failure that is not "unroutable" (the outcomes after it are absent). Implementations
    /// override it to amortise round trips; the default publishes one by one.
    async fn publish_batch(&self, messages: &[Message]) -> Vec<Result<(), BrokerError>> {
        let mut outcomes = Vec::with_capacity(messages.len());
        for message in messages {
            let outcome = self.publish(message).await;
            let stop = outcome.as_ref().is_err_and(|e| !e.is_unroutable());
            outcomes.push(outcome);
            if stop {
                break;
            }
        }
        outcomes
    }

    /// Consumes `queue` until `stop` is cancelled; in-flight deliveries finish first.
    async fn consume(&self, queue: QueueSpec, delivery: Arc<dyn Delivery>, stop: CancellationToken);

    async fn dead_letters(
        &self,
        queue: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, BrokerError>;

    /// Re-delivers parked messages with a fresh attempt budget; returns how many.
    async fn replay(&self, which: &DeadLetterSelector) -> Result<u64, BrokerError>;

    /// Deletes parked messages; returns how many.
    async fn purge(&self, which: &DeadLetterSelector) -> Result<u64, BrokerError>;

    /// Deletes every queue this broker declared, with its messages: for throwaway topologies
    /// (tests), never called by a deployment. Call it after the consumers have stopped.
    async fn remove_topology(&self) -> Result<(), BrokerError> {
        Ok(())
    }
}

/// Jitter in [0, 1) for retry delays.
pub fn jitter() -> f64 {
    rand::random::<f64>()
}
