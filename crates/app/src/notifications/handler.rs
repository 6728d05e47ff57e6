//! The `notifications` consumer: turns domain events into notifications — who hears of each
//! event, what it says, on which channels — inside the consumer's transaction, so a
//! redelivered event notifies nobody twice. Email goes through the mail queue in the same
//! transaction; in-app notifications are pushed to the user's sockets after the commit.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use depot_domain::auth::Permission;
use depot_domain::message::Message;
use depot_domain::notify::{Channel, NotificationStatus, NotificationType, is_valid_email};
use depot_domain::stock::AlertKind;
use depot_domain::trade::money;
use depot_domain::{AppError, AppResult, Clock, ErrorCode};
use depot_store::entity::{notification, user};
use depot_store::repo::{locations, notifications, products, roles, sales_orders, users};
use depot_store::{DatabaseTransaction, Db};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::mail::{self, NewEmail};
use crate::messaging::{ConsumerPolicy, Handler};
use crate::realtime::Realtime;

/// The consumer's queue.
pub const QUEUE: &str = "notifications";

pub struct NotificationHandler {
    clock: Arc<dyn Clock>,
    db: Db,
    alert_permission: Permission,
    realtime: Realtime,
}

impl NotificationHandler {
    pub fn new(
        clock: Arc<dyn Clock>,
        db: Db,
        alert_permission: Permission,
        realtime: Realtime,
    ) -> Self {
        Self {
            clock,
            db,
            alert_permission,
            realtime,
        }
    }
}

/// What one event says, and to whom.
struct Draft {
    recipients: BTreeSet<Uuid>,
    title: String,
    body: String,
    payload: Value,
}

fn malformed(err: serde_json::Error) -> AppError {
    AppError::new(
        ErrorCode::NotificationsUnreadableEvent,
        "the event payload is not readable",
    )
    .with_source(err)
}

fn payload<T: for<'de> Deserialize<'de>>(message: &Message) -> AppResult<T> {
    serde_json::from_value(message.payload.clone()).map_err(malformed)
}

#[derive(Deserialize)]
struct AlertEvent {
    kind: AlertKind,
    product_id: Uuid,
    location_id: Uuid,
}

#[derive(Deserialize)]
struct PurchaseOrderEvent {
    purchase_order_id: Uuid,
    action: String,
    to: String,
    created_by: Option<Uuid>,
    total: i64,
    currency: String,
}

#[derive(Deserialize)]
struct SalesOrderEvent {
    sales_order_id: Uuid,
    owner_id: Uuid,
    to: String,
    total: i64,
    amount_paid: i64,
    currency: String,
}

#[derive(Deserialize)]
struct PaymentEvent {
    payment_id: Uuid,
    sales_order_id: Uuid,
    method: String,
    to: String,
    amount: i64,
    currency: String,
}

#[derive(Deserialize)]
struct SecurityEvent {
    user_id: Uuid,
    user_agent: Option<String>,
    ip: Option<String>,
    how: Option<String>,
    enabled: Option<bool>,
}

fn short(id: Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

fn alert_words(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::LowStock => "Low stock",
        AlertKind::OutOfStock => "Out of stock",
        AlertKind::Expiring => "Batch expiring",
        AlertKind::Expired => "Batch expired",
    }
}

impl NotificationHandler {
    async fn draft(
        &self,
        tx: &DatabaseTransaction,
        kind: NotificationType,
        message: &Message,
    ) -> AppResult<Draft> {
        use NotificationType as T;
        let draft = match kind {
            T::AlertRaised | T::AlertResolved => {
                let alert: AlertEvent = payload(message)?;
                let product = products::get(tx, alert.product_id).await?;
                let location = locations::get(tx, alert.location_id).await?;
                let what = format!(
                    "{} at {}",
                    product.map_or_else(
                        || short(alert.product_id),
                        |p| format!("{} {}", p.sku, p.name)
                    ),
                    location.map_or_else(|| short(alert.location_id), |l| l.code),
                );
                let holders = roles::active_holders(tx, &[self.alert_permission.code()]).await?;
                let (title, body) = if kind == T::AlertRaised {
                    (
                        format!("{}: {what}", alert_words(alert.kind)),
                        format!("{} was raised for {what}.", alert_words(alert.kind)),
                    )
                } else {
                    (
                        format!(
                            "Resolved — {}: {what}",
                            alert_words(alert.kind).to_lowercase()
                        ),
                        format!(
                            "The {} alert for {what} is resolved.",
                            alert_words(alert.kind).to_lowercase()
                        ),
                    )
                };
                Draft {
                    recipients: holders.into_iter().collect(),
                    title,
                    body,
                    payload: message.payload.clone(),
                }
            }
            T::PurchaseOrderTransitioned => {
                let po: PurchaseOrderEvent = payload(message)?;
                let mut recipients: BTreeSet<Uuid> = po.created_by.into_iter().collect();
                // Waiting for approval: the approvers are asked to act.
                if po.to == "submitted" {
                    recipients.extend(
                        roles::active_holders(tx, &[Permission::PurchaseOrdersApprove.code()])
                            .await?,
                    );
                }
                Draft {
                    recipients,
                    title: format!(
                        "Purchase order {} is {}",
                        short(po.purchase_order_id),
                        po.to.replace('_', " ")
                    ),
                    body: format!(
                        "Purchase order {} ({}) — {}: now {}.",
                        po.purchase_order_id,
                        money::display(po.total, &po.currency),
                        po.action,
                        po.to.replace('_', " "),
                    ),
                    payload: message.payload.clone(),
                }
            }
            T::SalesOrderTransitioned => {
                let so: SalesOrderEvent = payload(message)?;
                Draft {
                    recipients: BTreeSet::from([so.owner_id]),
                    title: format!("Sales order {} is {}", short(so.sales_order_id), so.to),
                    body: format!(
                        "Sales order {} is now {}: {} paid of {}.",
                        so.sales_order_id,
                        so.to,
                        money::display(so.amount_paid, &so.currency),
                        money::display(so.total, &so.currency),
                    ),
                    payload: message.payload.clone(),
                }
            }
            T::PaymentTransitioned => {
                let payment: PaymentEvent = payload(message)?;
                let owner = sales_orders::get(tx, payment.sales_order_id)
                    .await?
                    .map(|(order, _)| order.owner_id);
                Draft {
                    recipients: owner.into_iter().collect(),
                    title: format!(
                        "Payment of {} is {}",
                        money::display(payment.amount, &payment.currency),
                        payment.to
                    ),
                    body: format!(
                        "The {} payment {} of {} for sales order {} is now {}.",
                        payment.method.replace('_', " "),
                        payment.payment_id,
                        money::display(payment.amount, &payment.currency),
                        payment.sales_order_id,
                        payment.to,
                    ),
                    payload: message.payload.clone(),
                }
            }
            T::NewDeviceSignIn | T::PasswordChanged | T::MfaChanged => {
                let event: SecurityEvent = payload(message)?;
                let (title, body) = match kind {
                    T::NewDeviceSignIn => (
                        "New sign-in to your account".to_owned(),
                        format!(
                            "Your account was signed in to from a new device ({}, {}) at {}. \
                             If this was not you, change your password and end that session.",
                            event.user_agent.as_deref().unwrap_or("unknown browser"),
                            event.ip.as_deref().unwrap_or("unknown address"),
                            message.occurred_at.format("%Y-%m-%d %H:%M UTC"),
                        ),
                    ),
                    T::PasswordChanged => (
                        "Your password was changed".to_owned(),
                        format!(
                            "The password of your account was {} at {}. If this was not you, \
                             reset it now and contact your administrator.",
                            if event.how.as_deref() == Some("reset") {
                                "reset"
                            } else {
                                "changed"
                            },
                            message.occurred_at.format("%Y-%m-%d %H:%M UTC"),
                        ),
                    ),
                    _ => {
                        let state = if event.enabled == Some(true) {
                            "enabled"
                        } else {
                            "disabled"
                        };
                        (
                            format!("Two-factor sign-in was {state}"),
                            format!(
                                "Two-factor sign-in for your account was {state}{} at {}. If this \
                                 was not you, contact your administrator.",
                                if event.how.as_deref() == Some("reset") {
                                    " by an administrator"
                                } else {
                                    ""
                                },
                                message.occurred_at.format("%Y-%m-%d %H:%M UTC"),
                            ),
                        )
                    }
                };
                Draft {
                    recipients: BTreeSet::from([event.user_id]),
                    title,
                    body,
                    payload: message.payload.clone(),
                }
            }
        };
        Ok(draft)
    }

    /// The channels `user` receives `kind` on: security types on every channel; others as the
    /// user chose, else by default. Email only to an address that is one.
    fn channels(
        kind: NotificationType,
        user: &user::Model,
        chosen: &HashMap<(Uuid, Channel), bool>,
    ) -> Vec<Channel> {
        Channel::ALL
            .iter()
            .copied()
            .filter(|channel| {
                kind.is_security()
                    || chosen
                        .get(&(user.id, *channel))
                        .copied()
                        .unwrap_or_else(|| kind.enabled_by_default(*channel))
            })
            .filter(|channel| *channel != Channel::Email || is_valid_email(&user.email))
            .collect()
    }
}

#[async_trait]
impl Handler for NotificationHandler {
    fn queue(&self) -> &'static str {
        QUEUE
    }

    fn bindings(&self) -> Vec<String> {
        NotificationType::VALUES
            .iter()
            .map(|t| (*t).to_owned())
            .collect()
    }

    fn policy(&self) -> ConsumerPolicy {
        ConsumerPolicy {
            concurrency: 4,
            ..ConsumerPolicy::default()
        }
    }

    async fn handle(&self, tx: &DatabaseTransaction, message: &Message) -> AppResult<()> {
        let Some(kind) = NotificationType::parse(&message.event_type) else {
            return Ok(());
        };
        let draft = self.draft(tx, kind, message).await?;
        let ids: Vec<Uuid> = draft.recipients.iter().copied().collect();
        let chosen: HashMap<(Uuid, Channel), bool> = notifications::preferences_for(tx, &ids, kind)
            .await?
            .into_iter()
            .filter_map(|p| Some(((p.user_id, Channel::parse(&p.channel)?), p.enabled)))
            .collect();
        let now = self.clock.now();
        let payload = serde_json::to_string(&draft.payload).map_err(AppError::internal)?;
        for user in users::active_among(tx, &ids).await? {
            for channel in Self::channels(kind, &user, &chosen) {
                let (status, sent_at) = match channel {
                    Channel::Email => (NotificationStatus::Pending, None),
                    Channel::InApp => (NotificationStatus::Sent, Some(now)),
                };
                let id = depot_domain::id::new_id();
                let written = notifications::insert_if_absent(
                    tx,
                    notification::Model {
                        id,
                        user_id: user.id,
                        event_type: kind.as_str().to_owned(),
                        channel: channel.as_str().to_owned(),
                        title: draft.title.clone(),
                        body: draft.body.clone(),
                        payload: payload.clone(),
                        status: status.as_str().to_owned(),
                        attempts: 0,
                        last_error: None,
                        next_attempt_at: (channel == Channel::Email).then_some(now),
                        email_id: None,
                        event_id: message.id,
                        created_at: now,
                        sent_at,
                        read_at: None,
                    },
                )
                .await?;
                // Written before: its email was queued then, not again.
                if !written {
                    continue;
                }
                if channel == Channel::Email {
                    let email = mail::queue(
                        tx,
                        NewEmail {
                            to: user.email.clone(),
                            subject: draft.title.clone(),
                            body: format!("{}\n\n— Depot", draft.body),
                            correlation_id: message.correlation_id.clone(),
                            attachments: None,
                        },
                        now,
                    )
                    .await?;
                    notifications::attach_email(tx, id, email).await?;
                }
                metrics::counter!(
                    "notifications_created_total",
                    "type" => kind.as_str(),
                    "channel" => channel.as_str()
                )
                .increment(1);
            }
        }
        Ok(())
    }

    async fn committed(&self, message: &Message) {
        let rows = match notifications::of_event(self.db.reader(), message.id, Channel::InApp).await
        {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(error = ?err, message_id = %message.id, "cannot read the notifications to push");
                return;
            }
        };
        for row in rows {
            let user = row.user_id;
            self.realtime
                .push(user, "notification", &super::view(row))
                .await;
        }
    }
}
