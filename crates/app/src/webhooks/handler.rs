//! The `webhooks` consumer: queues one delivery per active webhook subscribed to the event,
//! in the consumer's transaction (a redelivered event queues nothing twice). The body is the
//! event's envelope exactly as it will be signed and sent.

use std::sync::Arc;

use async_trait::async_trait;
use depot_domain::message::Message;
use depot_domain::notify::DeliveryStatus;
use depot_domain::{AppError, AppResult, Clock};
use depot_store::DatabaseTransaction;
use depot_store::entity::{webhook, webhook_delivery};
use depot_store::repo::webhooks;

use super::subscribable;
use super::subscriptions::{Subscriptions, event_types, takes};
use crate::messaging::{ConsumerPolicy, Handler};

pub struct WebhookHandler {
    clock: Arc<dyn Clock>,
    subscriptions: Subscriptions,
}

impl WebhookHandler {
    pub fn new(clock: Arc<dyn Clock>, subscriptions: Subscriptions) -> Self {
        Self {
            clock,
            subscriptions,
        }
    }
}

/// The active webhooks subscribed to `message`'s type.
fn subscribed(hooks: Vec<webhook::Model>, message: &Message) -> Vec<webhook::Model> {
    hooks
        .into_iter()
        .filter(|w| takes(&event_types(&w.event_types), &message.event_type))
        .collect()
}

#[async_trait]
impl Handler for WebhookHandler {
    fn queue(&self) -> &'static str {
        "webhooks"
    }

    fn bindings(&self) -> Vec<String> {
        subscribable().map(str::to_owned).collect()
    }

    fn policy(&self) -> ConsumerPolicy {
        ConsumerPolicy {
            concurrency: 4,
            ..ConsumerPolicy::default()
        }
    }

    /// Most events concern no webhook: the cached subscriptions tell, and no transaction is
    /// opened.
    async fn wants(&self, message: &Message) -> AppResult<bool> {
        self.subscriptions.any_for(&message.event_type).await
    }

    async fn handle(&self, tx: &DatabaseTransaction, message: &Message) -> AppResult<()> {
        let wanted = subscribed(webhooks::active(tx).await?, message);
        if wanted.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_string(message).map_err(AppError::internal)?;
        let now = self.clock.now();
        for hook in wanted {
            webhooks::enqueue(
                tx,
                webhook_delivery::Model {
                    id: depot_domain::id::new_id(),
                    webhook_id: hook.id,
                    event_id: message.id,
                    event_type: message.event_type.clone(),
                    body: body.clone(),
                    status: DeliveryStatus::Pending.as_str().to_owned(),
                    attempts: 0,
                    next_attempt_at: now,
                    locked_until: None,
                    last_status_code: None,
                    last_error: None,
                    window_started_at: now,
                    created_at: now,
                    delivered_at: None,
                    updated_at: now,
                },
            )
            .await?;
        }
        Ok(())
    }
}
