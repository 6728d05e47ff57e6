//! Outbound webhooks: subscriptions per event type, each with its own signing secret (shown
//! once, stored sealed). The `webhooks` consumer ([`handler`]) queues a delivery per matching
//! event in its transaction; the sender ([`sender`]) POSTs due deliveries with no transaction
//! held, signed `Depot-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, and retries a
//! failure with backoff for 24 hours before the delivery is `dead`. Every delivery is logged and
//! can be delivered again on request.

pub mod handler;
pub mod sender;
pub mod subscriptions;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use depot_adapters::cache::Cache;
use depot_adapters::webhook::WebhookClient;
use depot_domain::notify::DeliveryStatus;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::{Actor, AppError, AppResult, ErrorCode, Validator};
use depot_store::entity::{webhook, webhook_delivery};
use depot_store::repo::webhooks;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::auth::sealed::Sealer;
use crate::auth::secrets;
use crate::background::Background;
use crate::catalog::map_page;
use crate::client::ClientInfo;
use crate::messaging::catalog;
use crate::uow::Writer;
use subscriptions::Subscriptions;

/// Subscribes to every event type.
pub const ALL_EVENTS: &str = "*";
const MAX_URL: usize = 2_000;
const MAX_DESCRIPTION: usize = 500;

/// The event types a webhook may subscribe to: every type in the catalogue but the debug ones
/// and the security ones (they carry users' sign-in addresses and devices: personal data that
/// stays inside Depot).
pub fn subscribable() -> impl Iterator<Item = &'static str> {
    catalog::EVENTS
        .iter()
        .map(|(kind, ..)| *kind)
        .filter(|kind| !kind.starts_with("debug.") && !kind.starts_with("security."))
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    /// Event types delivered; `*` is every one.
    pub event_types: Vec<String>,
    pub active: bool,
    pub description: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new webhook, with its signing secret — shown this once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_…`: verify `Depot-Signature` with it. Not shown again.
    pub secret: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    #[schema(max_length = 2000, example = "https://erp.example.com/depot/events")]
    pub url: String,
    /// Event types to deliver (`*` for every one): see `docs/events`.
    #[schema(min_items = 1, max_items = 64)]
    pub event_types: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    #[schema(min_items = 1, max_items = 64)]
    pub event_types: Option<Vec<String>>,
    pub active: Option<bool>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// The receiver's last HTTP status, if it answered.
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

fn view(w: webhook::Model) -> WebhookView {
    WebhookView {
        id: w.id,
        url: w.url,
        event_types: subscriptions::event_types(&w.event_types),
        active: w.active,
        description: w.description,
        created_by: w.created_by,
        created_at: w.created_at,
        updated_at: w.updated_at,
    }
}

fn delivery_view(d: webhook_delivery::Model) -> DeliveryView {
    let status = DeliveryStatus::parse(&d.status).unwrap_or(DeliveryStatus::Pending);
    DeliveryView {
        id: d.id,
        webhook_id: d.webhook_id,
        event_id: d.event_id,
        event_type: d.event_type,
        status,
        attempts: d.attempts,
        last_status_code: d.last_status_code,
        last_error: d.last_error,
        next_attempt_at: matches!(status, DeliveryStatus::Pending | DeliveryStatus::Failed)
            .then_some(d.next_attempt_at),
        created_at: d.created_at,
        delivered_at: d.delivered_at,
        updated_at: d.updated_at,
    }
}

fn not_found() -> AppError {
    AppError::new(ErrorCode::WebhooksNotFound, "no such webhook")
}

#[derive(Clone)]
pub struct WebhookService {
    writer: Writer,
    sealer: Sealer,
    client: WebhookClient,
    retry_base: std::time::Duration,
    subscriptions: Subscriptions,
}

impl WebhookService {
    pub fn new(
        writer: Writer,
        sealer: Sealer,
        client: WebhookClient,
        retry_base: std::time::Duration,
        cache: Arc<Cache>,
    ) -> Self {
        let subscriptions = Subscriptions::new(cache, writer.db().clone());
        Self {
            writer,
            sealer,
            client,
            retry_base,
            subscriptions,
        }
    }

    /// Registers the consumer that queues deliveries and the sender that makes them.
    pub fn register(&self, background: &mut Background) {
        background.consumer(Arc::new(handler::WebhookHandler::new(
            self.writer.clock().clone(),
            self.subscriptions.clone(),
        )));
        let sender = sender::Sender::new(
            self.writer.clone(),
            self.sealer.clone(),
            self.client.clone(),
            self.retry_base,
        );
        background.sender(
            "webhooks",
            std::time::Duration::from_millis(250),
            move || {
                let sender = sender.clone();
                async move { sender.send_due().await }
            },
        );
    }

    /// Checks a URL and event types; every problem at once.
    async fn check(&self, v: &mut Validator, url: Option<&str>, types: Option<&[String]>) {
        if let Some(url) = url {
            v.line("url", url, 1, MAX_URL);
            if let Err(err) = self.client.check(url).await {
                v.check(false, "url", "refused", &err.0);
            }
        }
        if let Some(types) = types {
            v.check(
                !types.is_empty(),
                "event_types",
                "required",
                "name at least one event type",
            );
            let known: BTreeSet<&str> = subscribable().collect();
            for (i, kind) in types.iter().enumerate() {
                v.check(
                    kind == ALL_EVENTS || known.contains(kind.as_str()),
                    &format!("event_types[{i}]"),
                    "unknown",
                    "is not an event type (see docs/events)",
                );
            }
        }
    }

    pub async fn create(
        &self,
        actor: Actor,
        new: NewWebhook,
        client: &ClientInfo,
    ) -> AppResult<CreatedWebhook> {
        let mut v = Validator::new();
        self.check(&mut v, Some(&new.url), Some(&new.event_types))
            .await;
        if let Some(d) = &new.description {
            v.text("description", d, MAX_DESCRIPTION);
        }
        refuse_url(v)?;
        let secret = format!("whsec_{}", secrets::random_token(32));
        let mut uow = self.writer.begin(actor, client).await?;
        let now = uow.now();
        let row = webhooks::insert(
            uow.tx(),
            webhook::Model {
                id: depot_domain::id::new_id(),
                url: new.url,
                event_types: types_json(&new.event_types)?,
                active: new.active,
                secret: self.sealer.seal(secret.as_bytes())?,
                description: new.description,
                created_by: actor.user_id(),
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        uow.audit(
            AuditEntry::new("webhook.created")
                .target("webhook", row.id)
                .details(serde_json::json!({
                    "event_types": new.event_types, "active": row.active,
                })),
        )
        .await?;
        self.subscriptions.changed_after_commit(&mut uow);
        uow.commit().await?;
        Ok(CreatedWebhook {
            webhook: view(row),
            secret,
        })
    }

    pub async fn list(&self, page: &PageRequest) -> AppResult<Page<WebhookView>> {
        Ok(map_page(
            webhooks::list(self.writer.db().reader(), page).await?,
            view,
        ))
    }

    pub async fn get(&self, id: Uuid) -> AppResult<WebhookView> {
        webhooks::get(self.writer.db().reader(), id)
            .await?
            .map(view)
            .ok_or_else(not_found)
    }

    pub async fn update(
        &self,
        actor: Actor,
        id: Uuid,
        patch: WebhookPatch,
        client: &ClientInfo,
    ) -> AppResult<WebhookView> {
        let mut v = Validator::new();
        self.check(&mut v, patch.url.as_deref(), patch.event_types.as_deref())
            .await;
        if let Some(d) = &patch.description {
            v.text("description", d, MAX_DESCRIPTION);
        }
        refuse_url(v)?;
        let mut uow = self.writer.begin(actor, client).await?;
        let mut row = webhooks::get(uow.tx(), id).await?.ok_or_else(not_found)?;
        if let Some(url) = patch.url.clone() {
            row.url = url;
        }
        if let Some(types) = &patch.event_types {
            row.event_types = types_json(types)?;
        }
        if let Some(active) = patch.active {
            row.active = active;
        }
        if let Some(description) = patch.description.clone() {
            row.description = Some(description);
        }
        row.updated_at = uow.now();
        let row = webhooks::save(uow.tx(), row).await?;
        uow.audit(
            AuditEntry::new("webhook.updated")
                .target("webhook", id)
                .details(serde_json::json!({
                    "url_changed": patch.url.is_some(),
                    "event_types": patch.event_types,
                    "active": patch.active,
                })),
        )
        .await?;
        self.subscriptions.changed_after_commit(&mut uow);
        uow.commit().await?;
        Ok(view(row))
    }

    pub async fn delete(&self, actor: Actor, id: Uuid, client: &ClientInfo) -> AppResult<()> {
        let mut uow = self.writer.begin(actor, client).await?;
        if !webhooks::delete(uow.tx(), id).await? {
            return Err(not_found());
        }
        uow.audit(AuditEntry::new("webhook.deleted").target("webhook", id))
            .await?;
        self.subscriptions.changed_after_commit(&mut uow);
        uow.commit().await
    }

    pub async fn deliveries(
        &self,
        id: Uuid,
        status: Option<DeliveryStatus>,
        page: &PageRequest,
    ) -> AppResult<Page<DeliveryView>> {
        let conn = self.writer.db().reader();
        webhooks::get(conn, id).await?.ok_or_else(not_found)?;
        Ok(map_page(
            webhooks::deliveries(conn, id, status, page).await?,
            delivery_view,
        ))
    }

    pub async fn delivery(&self, id: Uuid, delivery: Uuid) -> AppResult<DeliveryView> {
        webhooks::delivery(self.writer.db().reader(), id, delivery)
            .await?
            .map(delivery_view)
            .ok_or_else(delivery_not_found)
    }

    /// Queues a delivery again now, with a fresh 24-hour retry window. One being delivered
    /// this moment is left to finish (409).
    pub async fn redeliver(
        &self,
        actor: Actor,
        id: Uuid,
        delivery: Uuid,
        client: &ClientInfo,
    ) -> AppResult<DeliveryView> {
        let uow = self.writer.begin(actor, client).await?;
        webhooks::delivery(uow.tx(), id, delivery)
            .await?
            .ok_or_else(delivery_not_found)?;
        if !webhooks::redeliver(uow.tx(), delivery, uow.now()).await? {
            return Err(AppError::new(
                ErrorCode::WebhooksDeliveryInProgress,
                "the delivery is being made right now",
            ));
        }
        uow.audit(
            AuditEntry::new("webhook.redelivered")
                .target("webhook_delivery", delivery)
                .details(serde_json::json!({ "webhook_id": id })),
        )
        .await?;
        let row = webhooks::delivery(uow.tx(), id, delivery)
            .await?
            .ok_or_else(delivery_not_found)?;
        uow.commit().await?;
        Ok(delivery_view(row))
    }
}

/// A URL the guard refused is `webhooks.url_refused` (with every field error); other
/// problems are `validation.failed`.
fn refuse_url(v: Validator) -> AppResult<()> {
    let errors = v.into_errors();
    if errors
        .iter()
        .any(|e| e.field == "url" && e.code == "refused")
    {
        return Err(AppError::new(
            ErrorCode::WebhooksUrlRefused,
            "the webhook's URL may not be called",
        )
        .with_details(serde_json::json!({ "fields": errors })));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::validation(errors))
    }
}

fn types_json(types: &[String]) -> AppResult<String> {
    let unique: BTreeSet<&String> = types.iter().collect();
    serde_json::to_string(&unique).map_err(AppError::internal)
}

fn delivery_not_found() -> AppError {
    AppError::new(
        ErrorCode::WebhooksDeliveryNotFound,
        "no such delivery of this webhook",
    )
}
