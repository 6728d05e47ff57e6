//! The durable database queue: one `jobs` row per (queue, message).
//!
//! Publishing inserts a row for every queue bound to the message's type (deduplicated on the
//! message id, so publishing twice is harmless). Consumers poll, claim due rows with a
//! visibility timeout, and complete, reschedule or bury them.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use depot_domain::message::Message;
use depot_domain::{AppResult, Clock};
use depot_store::Db;
use depot_store::repo::jobs;
use futures::{StreamExt, stream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{BrokerError, DeadLetter, DeadLetterSelector, Delivery, Disposition, QueueSpec};

/// Jobs one claim takes per slot of a queue's concurrency: a busy queue claims and settles
/// its jobs in batches (two transactions per batch, not two per job). A batch's verdicts are
/// written when its last job ends, so a claim lasts up to eight handler runs: should that
/// exceed the visibility timeout, the jobs are delivered again (the consumers' processed table
/// keeps each effect single).
const CLAIMS_PER_SLOT: usize = 8;

/// Tuning of the database queue.
#[derive(Debug, Clone)]
pub struct DatabaseQueueOptions {
    /// How long a claim lasts; a job whose worker died is retried after this.
    pub visibility_timeout: Duration,
    /// How long an idle consumer waits before polling again.
    pub poll_interval: Duration,
}

impl Default for DatabaseQueueOptions {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(200),
        }
    }
}

pub struct DatabaseQueue {
    db: Db,
    clock: Arc<dyn Clock>,
    options: DatabaseQueueOptions,
    /// Worker identity written into claims.
    worker_id: String,
    /// event type → (queue name, max attempts)
    routes: RwLock<BTreeMap<String, Vec<(String, u32)>>>,
}

impl DatabaseQueue {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        options: DatabaseQueueOptions,
        worker_id: String,
    ) -> Self {
        Self {
            db,
            clock,
            options,
            worker_id,
            routes: RwLock::new(BTreeMap::new()),
        }
    }

    fn routes_for(&self, event_type: &str) -> Vec<(String, u32)> {
        self.routes
            .read()
            .map(|r| r.get(event_type).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Claims up to [`CLAIMS_PER_SLOT`] jobs per slot of the queue's concurrency, runs them
    /// `concurrency` at a time, then settles them all in one transaction (the acks in one
    /// statement). Returns how many it claimed.
    async fn consume_batch(
        &self,
        queue: &QueueSpec,
        delivery: &Arc<dyn Delivery>,
    ) -> Result<usize, BrokerError> {
        let now = self.clock.now();
        let until =
            now + chrono::Duration::from_std(self.options.visibility_timeout).unwrap_or_default();
        let concurrency = queue.concurrency.max(1);
        let limit = u32::try_from(concurrency.saturating_mul(CLAIMS_PER_SLOT)).unwrap_or(u32::MAX);
        let tx = self.db.begin().await?;
        let claimed = jobs::claim(&*tx, &queue.name, &self.worker_id, limit, now, until).await?;
        tx.commit().await?;
        let n = claimed.len();
        let verdicts: Vec<(Uuid, Disposition)> = stream::iter(claimed)
            .map(|job| self.run_one(delivery, job))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        if let Err(err) = self.settle(&verdicts).await {
            // The claims expire and the jobs are delivered again; the consumer's processed
            // table keeps each effect single.
            tracing::warn!(queue = %queue.name, jobs = n, error = ?err, "could not settle jobs");
        }
        Ok(n)
    }

    /// Applies the consumers' verdicts to their job rows, in one transaction (none when there
    /// are none: an idle poll writes nothing).
    async fn settle(&self, verdicts: &[(Uuid, Disposition)]) -> AppResult<()> {
        if verdicts.is_empty() {
            return Ok(());
        }
        let (worker, now) = (self.worker_id.as_str(), self.clock.now());
        let tx = self.db.begin().await?;
        let acked: Vec<Uuid> = verdicts
            .iter()
            .filter(|(_, d)| *d == Disposition::Ack)
            .map(|(id, _)| *id)
            .collect();
        jobs::complete_all(&*tx, &acked, worker, now).await?;
        for (id, disposition) in verdicts {
            match disposition {
                Disposition::Ack => {}
                Disposition::Retry { after, error } => {
                    let at = now + chrono::Duration::from_std(*after).unwrap_or_default();
                    jobs::retry(&*tx, *id, worker, at, error, now).await?;
                }
                Disposition::DeadLetter { error } => {
                    jobs::bury(&*tx, *id, worker, error, now).await?;
                }
            }
        }
        tx.commit().await
    }

    /// Stores one job row per (message, bound queue), all in one transaction.
    async fn enqueue_all(&self, routed: &[(Message, Vec<(String, u32)>)]) -> AppResult<()> {
        let now = self.clock.now();
        let mut entries = Vec::new();
        for (message, targets) in routed {
            for (queue, max_attempts) in targets {
                let max = i32::try_from(*max_attempts).unwrap_or(i32::MAX);
                entries.push((queue.as_str(), message, max));
            }
        }
        let tx = self.db.begin().await?;
        jobs::enqueue_all(&*tx, &entries, now).await?;
        tx.commit().await
    }

    /// Hands one job's message to the consumer and returns its verdict.
    async fn run_one(
        &self,
        delivery: &Arc<dyn Delivery>,
        job: depot_store::entity::job::Model,
    ) -> (Uuid, Disposition) {
        let attempt = u32::try_from(job.attempts).unwrap_or(1).max(1);
        let disposition = match jobs::message_of(&job) {
            Ok(message) => delivery.deliver(message, attempt).await,
            Err(err) => Disposition::DeadLetter {
                error: format!("undecodable message: {}", err.cause_chain()),
            },
        };
        (job.id, disposition)
    }
}

#[async_trait]
impl super::Broker for DatabaseQueue {
    fn kind(&self) -> &'static str {
        "database"
    }

    async fn declare(&self, queues: &[QueueSpec]) -> Result<(), BrokerError> {
        let mut routes = self
            .routes
            .write()
            .map_err(|_| BrokerError("routing table poisoned".into()))?;
        for queue in queues {
            for binding in &queue.bindings {
                let targets = routes.entry(binding.clone()).or_default();
                if !targets.iter().any(|(name, _)| name == &queue.name) {
                    targets.push((queue.name.clone(), queue.max_attempts));
                }
            }
        }
        Ok(())
    }

    async fn publish(&self, message: &Message) -> Result<(), BrokerError> {
        self.publish_batch(std::slice::from_ref(message))
            .await
            .pop()
            .unwrap_or_else(|| Err(BrokerError("nothing was published".into())))
    }

    async fn publish_batch(&self, messages: &[Message]) -> Vec<Result<(), BrokerError>> {
        // One transaction for the whole batch. A type no queue is bound to is refused, as a
        // mandatory publish to RabbitMQ would be.
        let routed: Vec<(Message, Vec<(String, u32)>)> = messages
            .iter()
            .map(|m| (m.clone(), self.routes_for(&m.event_type)))
            .collect();
        let outcomes: Vec<Result<(), BrokerError>> = routed
            .iter()
            .map(|(m, targets)| {
                if targets.is_empty() {
                    Err(BrokerError::unroutable(&m.event_type))
                } else {
                    Ok(())
                }
            })
            .collect();
        let stored = self.enqueue_all(&routed).await;
        match stored {
            Ok(()) => outcomes,
            Err(err) => vec![Err(BrokerError::from(err))],
        }
    }

    async fn consume(
        &self,
        queue: QueueSpec,
        delivery: Arc<dyn Delivery>,
        stop: CancellationToken,
    ) {
        while !stop.is_cancelled() {
            let handled = match self.consume_batch(&queue, &delivery).await {
                Ok(n) => n,
                Err(err) => {
                    tracing::warn!(queue = %queue.name, error = %err, "claiming jobs failed");
                    0
                }
            };
            if handled == 0 {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(self.options.poll_interval) => {}
                }
            }
        }
    }

    async fn dead_letters(
        &self,
        queue: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, BrokerError> {
        let rows = jobs::dead(self.db.reader(), queue, u64::from(limit)).await?;
        Ok(rows
            .into_iter()
            .map(|job| DeadLetter {
                id: job.id,
                queue: job.queue.clone(),
                message: jobs::message_of(&job).ok(),
                attempts: u32::try_from(job.attempts).unwrap_or(0),
                reason: job.last_error.clone(),
                parked_at: job.updated_at,
            })
            .collect())
    }

    async fn replay(&self, which: &DeadLetterSelector) -> Result<u64, BrokerError> {
        let tx = self.db.begin().await?;
        let replayed = jobs::replay(&*tx, which.id, which.queue.as_deref(), Utc::now()).await?;
        tx.commit().await?;
        Ok(replayed)
    }

    async fn purge(&self, which: &DeadLetterSelector) -> Result<u64, BrokerError> {
        let tx = self.db.begin().await?;
        let purged = jobs::purge(&*tx, which.id, which.queue.as_deref()).await?;
        tx.commit().await?;
        Ok(purged)
    }
}
