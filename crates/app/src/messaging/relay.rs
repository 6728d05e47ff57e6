//! The outbox relay: publishes pending events in order and marks each published only after the
//! broker confirmed it. One relay is active at a time (a lease), so order per aggregate holds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use depot_adapters::broker::Broker;
use depot_domain::AppResult;
use depot_domain::message::Message;
use depot_store::repo::{outbox, schedule};
use tracing::Instrument;
use uuid::Uuid;

use crate::uow::Writer;

const LEASE: &str = "outbox_relay";

/// A producer span for publishing `message`, continuing the trace the message was emitted in;
/// the message is re-stamped with it.
fn publication_span(message: &mut Message) -> tracing::Span {
    let span = tracing::info_span!(
        "outbox.publish",
        otel.name = format!("{} publish", message.event_type),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        messaging.message.id = %message.id,
        messaging.destination.name = %message.event_type,
    );
    crate::trace::continue_trace(&span, message.traceparent.as_deref());
    if let Some(traceparent) = crate::trace::traceparent_of(&span) {
        message.traceparent = Some(traceparent);
    }
    span
}

#[derive(Clone)]
pub struct Relay {
    writer: Writer,
    broker: Arc<dyn Broker>,
    owner: String,
    batch: u64,
    lease_ttl: Duration,
    /// Until when this instance holds the lease, as last recorded; renewed once half of it has
    /// passed, not on every pass.
    lease_until: Arc<Mutex<Option<DateTime<Utc>>>>,
    /// When the backlog gauges were last refreshed (at most once a second under load).
    gauges_at: Arc<Mutex<Option<Instant>>>,
}

/// How often, at most, a busy relay counts the backlog for the gauges.
const GAUGE_EVERY: Duration = Duration::from_secs(1);

/// What one relay pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayPass {
    /// Events taken from the outbox (published, set aside or not confirmed).
    pub seen: usize,
    pub published: usize,
    /// The broker refused or was unreachable; the rest of the batch waits for the next pass.
    pub stalled: bool,
    /// Another instance holds the relay lease.
    pub not_leader: bool,
}

impl Relay {
    pub fn new(writer: Writer, broker: Arc<dyn Broker>, owner: String) -> Self {
        Self {
            writer,
            broker,
            owner,
            batch: 500,
            lease_ttl: Duration::from_secs(15),
            lease_until: Arc::default(),
            gauges_at: Arc::default(),
        }
    }

    /// Publishes up to one batch of pending events, oldest first.
    pub async fn pass(&self) -> AppResult<RelayPass> {
        if !self.lead().await? {
            return Ok(RelayPass {
                not_leader: true,
                ..RelayPass::default()
            });
        }
        let rows = outbox::pending(self.writer.db().reader(), self.batch).await?;
        let rows_seen = rows.len();
        let mut pass = RelayPass::default();
        // Events that can never be published (they fail their schema or no queue takes them)
        // are set aside with the reason; the rest go out in one pipelined batch.
        let mut set_aside: Vec<(Uuid, String)> = Vec::new();
        let mut valid = Vec::with_capacity(rows.len());
        for row in &rows {
            let message = outbox::to_message(row);
            match super::catalog::validate(&message) {
                Ok(()) => valid.push(message),
                Err(reason) => {
                    tracing::error!(event_id = %row.id, event_type = %row.event_type, %reason, "event fails its schema; set aside");
                    metrics::counter!("outbox_invalid_total", "type" => row.event_type.clone())
                        .increment(1);
                    set_aside.push((row.id, format!("schema: {reason}")));
                }
            }
        }
        // Each event's publication is a span in the trace of the work that emitted it, and
        // the message names that span so its consumers continue from there.
        let spans: Vec<tracing::Span> = valid.iter_mut().map(publication_span).collect();
        let outcomes = if valid.is_empty() {
            Vec::new()
        } else {
            self.broker
                .publish_batch(&valid)
                .instrument(tracing::info_span!(
                    "broker.publish",
                    otel.kind = "client",
                    messages = valid.len()
                ))
                .await
        };
        for (span, outcome) in spans.iter().zip(&outcomes) {
            if outcome.is_err() {
                span.record("otel.status_code", "ERROR");
            }
        }
        drop(spans);
        let mut published = Vec::new();
        let mut failure: Option<(Uuid, String)> = None;
        for (message, outcome) in valid.iter().zip(&outcomes) {
            match outcome {
                Ok(()) => {
                    metrics::counter!("outbox_published_total", "type" => message.event_type.clone()).increment(1);
                    published.push(message.id);
                }
                Err(err)
                    if err.is_unroutable()
                        && super::catalog::may_go_unheard(&message.event_type) =>
                {
                    // A broadcast nobody listens to in this deployment: done.
                    metrics::counter!("outbox_unheard_total", "type" => message.event_type.clone())
                        .increment(1);
                    published.push(message.id);
                }
                Err(err) if err.is_unroutable() => {
                    tracing::error!(event_id = %message.id, error = %err, "event is unroutable; set aside");
                    metrics::counter!("outbox_unroutable_total", "type" => message.event_type.clone()).increment(1);
                    set_aside.push((message.id, err.to_string()));
                }
                Err(err) => {
                    tracing::warn!(event_id = %message.id, error = %err, "publishing failed; will retry");
                    metrics::counter!("outbox_publish_failures_total").increment(1);
                    failure = Some((message.id, err.to_string()));
                    break;
                }
            }
        }
        if failure.is_none() && outcomes.len() < valid.len() {
            failure = valid
                .get(outcomes.len())
                .map(|m| (m.id, "the broker stopped confirming".to_owned()));
        }
        pass.seen = rows_seen;
        pass.published = published.len();
        pass.stalled = failure.is_some();
        // An idle pass has nothing to record: no transaction.
        if rows_seen > 0 {
            let at = self.writer.now();
            let tx = self.writer.db().begin().await?;
            outbox::mark_published(&*tx, &published, at).await?;
            for (id, reason) in &set_aside {
                outbox::mark_failed(&*tx, *id, reason).await?;
            }
            if let Some((id, reason)) = &failure {
                outbox::record_failure(&*tx, *id, reason).await?;
            }
            tx.commit().await?;
        }
        // An idle pass (nothing was pending) needs no backlog query: it is empty. A busy relay
        // counts the backlog at most once a second.
        if rows_seen == 0 {
            metrics::gauge!("outbox_pending").set(0.0);
            metrics::gauge!("outbox_relay_lag_seconds").set(0.0);
        } else if self.gauges_due()
            && let Ok((count, oldest)) = outbox::backlog(self.writer.db().reader()).await
        {
            metrics::gauge!("outbox_pending").set(count as f64);
            let lag = oldest.map_or(0.0, |t| {
                (self.writer.now() - t).num_milliseconds().max(0) as f64 / 1000.0
            });
            metrics::gauge!("outbox_relay_lag_seconds").set(lag);
        }
        Ok(pass)
    }

    /// Whether the backlog gauges are due for a refresh (then they count as refreshed).
    fn gauges_due(&self) -> bool {
        let mut last = self.gauges_at.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= GAUGE_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// Whether this instance leads: from its record while more than half of its lease is left,
    /// else by acquiring (or renewing) the lease in the database.
    async fn lead(&self) -> AppResult<bool> {
        let now = self.writer.now();
        let ttl = chrono::Duration::from_std(self.lease_ttl).unwrap_or_default();
        let held = self
            .lease_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| until - now > ttl / 2);
        if held {
            return Ok(true);
        }
        let until = now + ttl;
        let tx = self.writer.db().begin().await?;
        let leader = schedule::acquire_lease(&*tx, LEASE, &self.owner, now, until).await?;
        tx.commit().await?;
        *self.lease_until.lock().unwrap_or_else(|e| e.into_inner()) = leader.then_some(until);
        Ok(leader)
    }

    /// The most events one pass publishes.
    pub fn batch_size(&self) -> usize {
        usize::try_from(self.batch).unwrap_or(usize::MAX)
    }

    /// Gives up the lease (on shutdown), so another instance takes over at once.
    pub async fn resign(&self) -> AppResult<()> {
        *self.lease_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let tx = self.writer.db().begin().await?;
        schedule::release_lease(&*tx, LEASE, &self.owner).await?;
        tx.commit().await
    }
}
