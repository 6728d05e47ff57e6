//! RabbitMQ (AMQP 0-9-1 through `lapin`).
//!
//! Topology, declared on every (re)connect, all durable:
//! - topic exchange `depot.events`, routing key = event type;
//! - per consumer queue `Q`: a quorum queue bound to its event types; delay queues
//!   `Q.retry.<tier>` whose messages expire back into `Q` (retry with backoff); a quorum parking
//!   queue `Q.parking` for dead letters, each carrying the reason in `x-depot-error`.
//!
//! Publishing is persistent, `mandatory` and waits for the publisher confirm: an unroutable or
//! nacked message is an error, so the outbox keeps it. Connections are re-established with
//! backoff and jitter; one publishing channel is used at a time behind a mutex.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use depot_domain::message::{Message, backoff_delay};
use futures::StreamExt;
use lapin::Confirmation;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{
    BrokerError, DeadLetter, DeadLetterSelector, Delivery, Disposition, QueueSpec, jitter,
};

const ATTEMPT: &str = "x-depot-attempt";
const ERROR: &str = "x-depot-error";
/// Delay tiers of the retry queues; a retry waits in the smallest tier ≥ the asked delay.
const RETRY_TIERS: [(&str, u64); 5] = [
    ("1s", 1_000),
    ("5s", 5_000),
    ("30s", 30_000),
    ("2m", 120_000),
    ("10m", 600_000),
];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RabbitMq {
    url: String,
    /// Prefix of the exchange and queue names (`<prefix>.events`, `<prefix>.<queue>`), so that
    /// several deployments (or test runs) can share a virtual host.
    prefix: String,
    topology: RwLock<Vec<QueueSpec>>,
    /// The publishing connection and channel (confirm mode), created on demand.
    publisher: Mutex<Option<(Connection, Channel)>>,
}

fn err(context: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError(format!("{context}: {e}"))
}

fn string(value: impl Into<String>) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.into()))
}

/// The delay queue of `queue` for one retry tier (expires back into `queue`).
fn retry_queue(queue: &str, tier: &str) -> String {
    format!("{queue}.retry.{tier}")
}

fn parking(queue: &str) -> String {
    format!("{queue}.parking")
}

impl RabbitMq {
    pub fn new(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            topology: RwLock::new(Vec::new()),
            publisher: Mutex::new(None),
        }
    }

    fn exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// Queue specs with their physical (prefixed) names.
    fn queues(&self) -> Vec<QueueSpec> {
        self.topology.read().map(|t| t.clone()).unwrap_or_default()
    }

    fn physical(&self, queue: &str) -> String {
        format!("{}.{queue}", self.prefix)
    }

    /// A connection and a channel, nothing declared.
    async fn open(&self) -> Result<(Connection, Channel), BrokerError> {
        let connect = Connection::connect(&self.url, ConnectionProperties::default());
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| BrokerError("connecting to RabbitMQ timed out".into()))?
            .map_err(|e| err("connecting to RabbitMQ", e.kind_text()))?;
        let channel = conn
            .create_channel()
            .await
            .map_err(|e| err("opening a channel", e))?;
        Ok((conn, channel))
    }

    /// A connection with publisher confirms on and the whole topology declared.
    async fn connect(&self) -> Result<(Connection, Channel), BrokerError> {
        let (conn, channel) = self.open().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| err("enabling publisher confirms", e))?;
        declare_exchange(&channel, &self.exchange()).await?;
        for queue in self.queues() {
            let physical = QueueSpec {
                name: self.physical(&queue.name),
                ..queue
            };
            declare_queue(&channel, &self.exchange(), &physical).await?;
        }
        Ok((conn, channel))
    }

    /// Publishes on the shared channel; on any transport failure the link is dropped so the
    /// next call reconnects.
    async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<(), BrokerError> {
        let mut link = self.publisher.lock().await;
        if link
            .as_ref()
            .is_none_or(|(conn, _)| !conn.status().connected())
        {
            *link = Some(self.connect().await?);
        }
        let Some((_, channel)) = link.as_ref() else {
            return Err(BrokerError("no RabbitMQ channel".into()));
        };
        let result = confirm_publish(channel, exchange, routing_key, body, props).await;
        if let Err(e) = &result
            && !e.is_unroutable()
        {
            *link = None;
        }
        result
    }
}

impl LapinErrorText for lapin::Error {
    fn kind_text(&self) -> String {
        // The error kind only: the Display of some errors may include the URL.
        format!("{:?}", self.kind()).chars().take(200).collect()
    }
}

trait LapinErrorText {
    fn kind_text(&self) -> String;
}

async fn declare_exchange(channel: &Channel, exchange: &str) -> Result<(), BrokerError> {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| err("declaring the exchange", e))
}

async fn declare_queue(
    channel: &Channel,
    exchange: &str,
    queue: &QueueSpec,
) -> Result<(), BrokerError> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut quorum = FieldTable::default();
    quorum.insert("x-queue-type".into(), string("quorum"));
    for name in [queue.name.clone(), parking(&queue.name)] {
        channel
            .queue_declare(name.as_str().into(), durable, quorum.clone())
            .await
            .map_err(|e| err("declaring a queue", e))?;
    }
    for binding in &queue.bindings {
        channel
            .queue_bind(
                queue.name.as_str().into(),
                exchange.into(),
                binding.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| err("binding a queue", e))?;
    }
    for (tier, ttl_ms) in RETRY_TIERS {
        let mut args = FieldTable::default();
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(i64::try_from(ttl_ms).unwrap_or(i64::MAX)),
        );
        args.insert("x-dead-letter-exchange".into(), string(""));
        args.insert(
            "x-dead-letter-routing-key".into(),
            string(queue.name.clone()),
        );
        channel
            .queue_declare(
                retry_queue(&queue.name, tier).as_str().into(),
                durable,
                args,
            )
            .await
            .map_err(|e| err("declaring a retry queue", e))?;
    }
    Ok(())
}

async fn confirm_publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), BrokerError> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            props,
        )
        .await
        .map_err(|e| err("publishing", e))?
        .await
        .map_err(|e| err("waiting for the publisher confirm", e))?;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => {
            Err(BrokerError::unroutable(routing_key))
        }
        Confirmation::Nack(None) => Err(BrokerError("the broker refused the message".into())),
        Confirmation::NotRequested => Err(BrokerError("publisher confirms are off".into())),
    }
}

fn properties(message: &Message, attempt: u32, error: Option<&str>) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(ATTEMPT.into(), AMQPValue::LongLongInt(i64::from(attempt)));
    if let Some(error) = error {
        headers.insert(
            ERROR.into(),
            string(error.chars().take(2000).collect::<String>()),
        );
    }
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(message.id.to_string().as_str().into())
        .with_type(message.event_type.as_str().into())
        .with_headers(headers);
    if let Some(correlation) = &message.correlation_id {
        props = props.with_correlation_id(correlation.as_str().into());
    }
    props
}

fn header_i64(props: &BasicProperties, key: &str) -> Option<i64> {
    match props.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn header_text(props: &BasicProperties, key: &str) -> Option<String> {
    match props.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// The attempt number of a delivery: our header, plus the redeliveries quorum queues count
/// (a consumer that died mid-handler).
fn attempt_of(props: &BasicProperties) -> u32 {
    let ours = header_i64(props, ATTEMPT).unwrap_or(1).max(1);
    let redelivered = header_i64(props, "x-delivery-count").unwrap_or(0).max(0);
    u32::try_from(ours + redelivered).unwrap_or(u32::MAX)
}

fn retry_tier(after: Duration) -> &'static str {
    let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
    RETRY_TIERS
        .iter()
        .find(|(_, ttl)| *ttl >= ms)
        .map_or(RETRY_TIERS[RETRY_TIERS.len() - 1].0, |(name, _)| name)
}

#[async_trait]
impl super::Broker for RabbitMq {
    fn kind(&self) -> &'static str {
        "rabbitmq"
    }

    async fn declare(&self, queues: &[QueueSpec]) -> Result<(), BrokerError> {
        {
            let mut topology = self
                .topology
                .write()
                .map_err(|_| BrokerError("topology poisoned".into()))?;
            for queue in queues {
                if !topology.iter().any(|q| q.name == queue.name) {
                    topology.push(queue.clone());
                }
            }
        }
        // Declared now if RabbitMQ is up, else on the first (re)connect.
        let mut link = self.publisher.lock().await;
        match self.connect().await {
            Ok(connected) => *link = Some(connected),
            Err(e) => {
                tracing::warn!(error = %e, "RabbitMQ unreachable; topology will be declared on connect")
            }
        }
        Ok(())
    }

    async fn publish(&self, message: &Message) -> Result<(), BrokerError> {
        let body = serde_json::to_vec(message).map_err(|e| err("encoding", e))?;
        self.publish_raw(
            &self.exchange(),
            &message.event_type,
            &body,
            properties(message, 1, None),
        )
        .await?;
        metrics::counter!("broker_published_total", "broker" => "rabbitmq", "type" => message.event_type.clone()).increment(1);
        Ok(())
    }

    async fn publish_batch(&self, messages: &[Message]) -> Vec<Result<(), BrokerError>> {
        // Pipelined: send every message, then collect the confirms in order.
        let mut link = self.publisher.lock().await;
        if link
            .as_ref()
            .is_none_or(|(conn, _)| !conn.status().connected())
        {
            match self.connect().await {
                Ok(connected) => *link = Some(connected),
                Err(e) => return vec![Err(e)],
            }
        }
        let Some((_, channel)) = link.as_ref() else {
            return vec![Err(BrokerError("no RabbitMQ channel".into()))];
        };
        let exchange = self.exchange();
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let body = match serde_json::to_vec(message) {
                Ok(body) => body,
                Err(e) => {
                    pending.push(Err(err("encoding", e)));
                    break;
                }
            };
            let sent = channel
                .basic_publish(
                    exchange.as_str().into(),
                    message.event_type.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &body,
                    properties(message, 1, None),
                )
                .await
                .map_err(|e| err("publishing", e));
            let failed = sent.is_err();
            pending.push(sent.map(|confirm| (message.event_type.clone(), confirm)));
            if failed {
                break;
            }
        }
        let mut outcomes = Vec::with_capacity(pending.len());
        for item in pending {
            let outcome = match item {
                Ok((kind, confirm)) => match confirm.await {
                    Ok(Confirmation::Ack(None)) => Ok(()),
                    Ok(Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_))) => {
                        Err(BrokerError::unroutable(&kind))
                    }
                    Ok(_) => Err(BrokerError("the broker refused the message".into())),
                    Err(e) => Err(err("waiting for the publisher confirm", e)),
                },
                Err(e) => Err(e),
            };
            let stop = outcome.as_ref().is_err_and(|e| !e.is_unroutable());
            outcomes.push(outcome);
            if stop {
                // Drop the link: the next publish reconnects.
                *link = None;
                break;
            }
        }
        outcomes
    }

    async fn consume(
        &self,
        queue: QueueSpec,
        delivery: Arc<dyn Delivery>,
        stop: CancellationToken,
    ) {
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            match self.consume_once(&queue, &delivery, &stop).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    let pause = backoff_delay(
                        failures,
                        Duration::from_millis(200),
                        Duration::from_secs(30),
                        jitter(),
                    );
                    tracing::warn!(queue = %queue.name, error = %e, retry_in_ms = pause.as_millis() as u64, "consumer lost RabbitMQ; reconnecting");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    async fn dead_letters(
        &self,
        queue: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, BrokerError> {
        let mut out = Vec::new();
        for spec in self.selected(queue) {
            let (conn, channel) = self.connect().await?;
            let held = drain(&channel, &parking(&self.physical(&spec.name)), limit).await?;
            for get in &held {
                let message: Option<Message> = serde_json::from_slice(&get.delivery.data).ok();
                out.push(DeadLetter {
                    id: message.as_ref().map(|m| m.id).unwrap_or_default(),
                    queue: spec.name.clone(),
                    attempts: u32::try_from(
                        header_i64(&get.delivery.properties, ATTEMPT).unwrap_or(0),
                    )
                    .unwrap_or(0),
                    reason: header_text(&get.delivery.properties, ERROR),
                    parked_at: message
                        .as_ref()
                        .map_or_else(chrono::Utc::now, |m| m.occurred_at),
                    message,
                });
            }
            // Listing must not consume: put everything back.
            requeue(held).await;
            let _ = conn.close(200, "listed".into()).await;
        }
        Ok(out)
    }

    async fn replay(&self, which: &DeadLetterSelector) -> Result<u64, BrokerError> {
        self.settle_parked(which, true).await
    }

    async fn purge(&self, which: &DeadLetterSelector) -> Result<u64, BrokerError> {
        if which.id.is_none() {
            let mut n = 0;
            for spec in self.selected(which.queue.as_deref()) {
                let (conn, channel) = self.connect().await?;
                n += u64::from(
                    channel
                        .queue_purge(
                            parking(&self.physical(&spec.name)).as_str().into(),
                            QueuePurgeOptions::default(),
                        )
                        .await
                        .map_err(|e| err("purging", e))?,
                );
                let _ = conn.close(200, "purged".into()).await;
            }
            return Ok(n);
        }
        self.settle_parked(which, false).await
    }

    async fn remove_topology(&self) -> Result<(), BrokerError> {
        // Not `connect`: it would declare the queues again.
        let (conn, channel) = self.open().await?;
        for spec in self.queues() {
            let queue = self.physical(&spec.name);
            let mut names = vec![parking(&queue)];
            names.extend(
                RETRY_TIERS
                    .iter()
                    .map(|(tier, _)| retry_queue(&queue, tier)),
            );
            names.push(queue);
            for name in names {
                channel
                    .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                    .await
                    .map_err(|e| err("deleting a queue", e))?;
            }
        }
        let _ = conn.close(200, "topology removed".into()).await;
        Ok(())
    }
}

impl RabbitMq {
    fn selected(&self, queue: Option<&str>) -> Vec<QueueSpec> {
        self.queues()
            .into_iter()
            .filter(|q| queue.is_none_or(|name| q.name == name))
            .collect()
    }

    /// Takes the selected parked messages out of their parking queues: re-published to their
    /// queue with a fresh attempt count (`replay`) or dropped. Others are put back.
    async fn settle_parked(
        &self,
        which: &DeadLetterSelector,
        replay: bool,
    ) -> Result<u64, BrokerError> {
        let mut settled = 0;
        for spec in self.selected(which.queue.as_deref()) {
            let (conn, channel) = self.connect().await?;
            let physical = self.physical(&spec.name);
            let held = drain(&channel, &parking(&physical), u32::MAX).await?;
            let mut keep = Vec::new();
            for get in held {
                let message: Option<Message> = serde_json::from_slice(&get.delivery.data).ok();
                let selected =
                    which.id.is_none() || message.as_ref().is_some_and(|m| Some(m.id) == which.id);
                if !selected {
                    keep.push(get);
                    continue;
                }
                if replay && let Some(message) = &message {
                    confirm_publish(
                        &channel,
                        "",
                        &physical,
                        &get.delivery.data,
                        properties(message, 1, None),
                    )
                    .await?;
                }
                get.delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(|e| err("acknowledging", e))?;
                settled += 1;
            }
            requeue(keep).await;
            let _ = conn.close(200, "settled".into()).await;
        }
        Ok(settled)
    }

    async fn consume_once(
        &self,
        queue: &QueueSpec,
        delivery: &Arc<dyn Delivery>,
        stop: &CancellationToken,
    ) -> Result<(), BrokerError> {
        let queue = &QueueSpec {
            name: self.physical(&queue.name),
            ..queue.clone()
        };
        let (conn, channel) = self.connect().await?;
        let prefetch = u16::try_from(queue.concurrency.max(1)).unwrap_or(u16::MAX);
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| err("setting prefetch", e))?;
        let tag = format!("{}-{}", queue.name, std::process::id());
        let consumer = channel
            .basic_consume(
                queue.name.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| err("starting the consumer", e))?;
        let failed = std::sync::atomic::AtomicBool::new(false);
        consumer
            .take_until(stop.cancelled())
            .for_each_concurrent(queue.concurrency.max(1), |item| {
                let (channel, failed) = (&channel, &failed);
                async move {
                    match item {
                        Ok(d) => {
                            if let Err(e) = handle_delivery(channel, queue, delivery, d).await {
                                tracing::warn!(queue = %queue.name, error = %e, "could not settle a delivery");
                            }
                        }
                        Err(_) => failed.store(true, std::sync::atomic::Ordering::SeqCst),
                    }
                }
            })
            .await;
        // Unacknowledged deliveries go back to the queue when the channel closes.
        let _ = channel.close(200, "consumer stopped".into()).await;
        let _ = conn.close(200, "consumer stopped".into()).await;
        if failed.load(std::sync::atomic::Ordering::SeqCst) || (!stop.is_cancelled()) {
            return Err(BrokerError("the consumer stream ended".into()));
        }
        Ok(())
    }
}

async fn handle_delivery(
    channel: &Channel,
    queue: &QueueSpec,
    delivery: &Arc<dyn Delivery>,
    d: lapin::message::Delivery,
) -> Result<(), BrokerError> {
    let attempt = attempt_of(&d.properties);
    let disposition = match serde_json::from_slice::<Message>(&d.data) {
        Ok(message) => {
            let outcome = delivery.deliver(message.clone(), attempt).await;
            match outcome {
                Disposition::Ack => None,
                Disposition::Retry { after, error } => Some((
                    retry_queue(&queue.name, retry_tier(after)),
                    properties(&message, attempt + 1, Some(&error)),
                )),
                Disposition::DeadLetter { error } => Some((
                    parking(&queue.name),
                    properties(&message, attempt, Some(&error)),
                )),
            }
        }
        Err(e) => Some((
            parking(&queue.name),
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers({
                    let mut h = FieldTable::default();
                    h.insert(ERROR.into(), string(format!("undecodable message: {e}")));
                    h
                }),
        )),
    };
    if let Some((target, props)) = disposition {
        // Move first, acknowledge after: a crash in between duplicates, never loses.
        if let Err(e) = confirm_publish(channel, "", &target, &d.data, props).await {
            let _ = d
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
            return Err(e);
        }
    }
    d.ack(BasicAckOptions::default())
        .await
        .map_err(|e| err("acknowledging", e))?;
    Ok(())
}

/// Puts messages taken with `basic_get` back into their queue.
async fn requeue(held: Vec<lapin::message::BasicGetMessage>) {
    for get in held {
        let options = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        let _ = get.delivery.nack(options).await;
    }
}

/// Gets up to `limit` messages from `queue` without acknowledging them.
async fn drain(
    channel: &Channel,
    queue: &str,
    limit: u32,
) -> Result<Vec<lapin::message::BasicGetMessage>, BrokerError> {
    let mut held = Vec::new();
    let mut remaining: Option<u32> = None;
    while held.len() < limit as usize && remaining.is_none_or(|r| r > 0) {
        let got = channel
            .basic_get(ShortString::from(queue), BasicGetOptions { no_ack: false })
            .await
            .map_err(|e| err("reading the parking queue", e))?;
        let Some(got) = got else { break };
        remaining = Some(got.message_count);
        held.push(got);
    }
    Ok(held)
}
