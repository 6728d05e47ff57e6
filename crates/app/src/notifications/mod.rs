//! Notifications: what the `notifications` consumer ([`handler`]) wrote for each user, read
//! and marked read through the in-app API, and what each user wants to hear of (preferences
//! per type and channel over the defaults in `depot_domain::notify`).

pub mod handler;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use depot_domain::auth::Permission;
use depot_domain::notify::{
    Channel, NotificationFilter, NotificationStatus, NotificationType, check_preference,
    is_valid_email,
};
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::{AppError, AppResult, Clock, ErrorCode, Validator};
use depot_store::entity::{notification, notification_preference};
use depot_store::repo::{notifications, users};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::auth::principal::Principal;
use crate::background::Background;
use crate::catalog::map_page;
use crate::client::ClientInfo;
use crate::realtime::Realtime;
use crate::uow::Writer;
use handler::NotificationHandler;

/// How long read notifications (and sent emails' records) are kept.
const RETENTION_DAYS: i64 = 90;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    pub user_id: Uuid,
    pub event_type: NotificationType,
    pub channel: Channel,
    pub title: String,
    pub body: String,
    /// What it is about (the event's ids and states), for a client to link to.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub status: NotificationStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
}

pub(crate) fn view(n: notification::Model) -> NotificationView {
    NotificationView {
        id: n.id,
        user_id: n.user_id,
        event_type: NotificationType::parse(&n.event_type).unwrap_or(NotificationType::AlertRaised),
        channel: Channel::parse(&n.channel).unwrap_or(Channel::InApp),
        title: n.title,
        body: n.body,
        payload: serde_json::from_str(&n.payload).unwrap_or(serde_json::Value::Null),
        status: NotificationStatus::parse(&n.status).unwrap_or(NotificationStatus::Pending),
        attempts: n.attempts,
        last_error: n.last_error,
        next_attempt_at: n.next_attempt_at,
        created_at: n.created_at,
        sent_at: n.sent_at,
        read_at: n.read_at,
    }
}

/// Which notifications a list shows.
#[derive(Debug, Clone, Default)]
pub struct NotificationQuery {
    /// Everyone's (needs `notifications.manage_all`), else the caller's own.
    pub all_users: bool,
    /// With `all_users`: only this user's.
    pub user_id: Option<Uuid>,
    pub unread: Option<bool>,
    pub kind: Option<NotificationType>,
    pub status: Option<NotificationStatus>,
    /// Defaults to `in_app` (the inbox); `email` lists the emails sent.
    pub channel: Option<Channel>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnreadCount {
    pub unread: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReadAll {
    /// How many were marked read.
    pub marked: u64,
}

/// One (type, channel) preference as it applies.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreferenceView {
    pub event_type: NotificationType,
    pub channel: Channel,
    pub enabled: bool,
    /// Whether `enabled` is the default (the user never changed it).
    pub default: bool,
    /// Security notifications cannot be switched off.
    pub locked: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreferencesView {
    pub user_id: Uuid,
    /// Every type × channel.
    pub preferences: Vec<PreferenceView>,
}

/// One change of preference.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferenceChange {
    pub event_type: NotificationType,
    pub channel: Channel,
    pub enabled: bool,
}

#[derive(Clone)]
pub struct NotificationService {
    writer: Writer,
    alert_permission: Permission,
    realtime: Realtime,
}

fn not_found() -> AppError {
    AppError::new(ErrorCode::NotificationsNotFound, "no such notification")
}

fn user_not_found() -> AppError {
    AppError::new(ErrorCode::UsersNotFound, "no such user")
}

impl NotificationService {
    pub fn new(writer: Writer, alert_permission: Permission, realtime: Realtime) -> Self {
        Self {
            writer,
            alert_permission,
            realtime,
        }
    }

    /// Registers the consumer and the purge of old notifications.
    pub fn register(&self, background: &mut Background) {
        let clock: Arc<dyn Clock> = self.writer.clock().clone();
        background.consumer(Arc::new(NotificationHandler::new(
            clock,
            self.writer.db().clone(),
            self.alert_permission,
            self.realtime.clone(),
        )));
        let this = self.clone();
        background.periodic("purge_notifications", "every 6h", move || {
            let this = this.clone();
            async move {
                let before = this.writer.now() - chrono::Duration::days(RETENTION_DAYS);
                let tx = this.writer.db().begin().await?;
                let purged = notifications::purge(&*tx, before).await?;
                tx.commit().await?;
                Ok(purged)
            }
        });
    }

    pub async fn list(
        &self,
        principal: &Principal,
        query: NotificationQuery,
        page: &PageRequest,
    ) -> AppResult<Page<NotificationView>> {
        let user_id = if query.all_users {
            principal.require(Permission::NotificationsManageAll)?;
            query.user_id
        } else {
            Some(principal.user_id)
        };
        let filter = NotificationFilter {
            user_id,
            unread: query.unread,
            kind: query.kind,
            status: query.status,
            channel: Some(query.channel.unwrap_or(Channel::InApp)),
        };
        let page = notifications::list(self.writer.db().reader(), &filter, page).await?;
        Ok(map_page(page, view))
    }

    /// A notification of the caller's (or anyone's, with `notifications.manage_all`).
    pub async fn get(&self, principal: &Principal, id: Uuid) -> AppResult<NotificationView> {
        let row = notifications::get(self.writer.db().reader(), id)
            .await?
            .ok_or_else(not_found)?;
        principal.check_owner(row.user_id, Permission::NotificationsManageAll, not_found())?;
        Ok(view(row))
    }

    /// Marks one of the caller's notifications read (again changes nothing). Someone else's
    /// is not found, whoever asks: reading is the recipient's act.
    pub async fn mark_read(&self, principal: &Principal, id: Uuid) -> AppResult<NotificationView> {
        let tx = self.writer.db().begin().await?;
        let row = notifications::get(&*tx, id)
            .await?
            .filter(|n| n.user_id == principal.user_id)
            .ok_or_else(not_found)?;
        notifications::mark_read(&*tx, row.id, self.writer.now()).await?;
        let row = notifications::get(&*tx, id).await?.ok_or_else(not_found)?;
        tx.commit().await?;
        Ok(view(row))
    }

    pub async fn mark_all_read(&self, principal: &Principal) -> AppResult<ReadAll> {
        let tx = self.writer.db().begin().await?;
        let marked =
            notifications::mark_all_read(&*tx, principal.user_id, self.writer.now()).await?;
        tx.commit().await?;
        Ok(ReadAll { marked })
    }

    pub async fn unread_count(&self, principal: &Principal) -> AppResult<UnreadCount> {
        Ok(UnreadCount {
            unread: notifications::unread_count(self.writer.db().reader(), principal.user_id)
                .await?,
        })
    }

    /// The preferences of an existing user (404 otherwise).
    pub async fn preferences(&self, user_id: Uuid) -> AppResult<PreferencesView> {
        let conn = self.writer.db().reader();
        users::get(conn, user_id)
            .await?
            .ok_or_else(user_not_found)?;
        let stored = notifications::preferences_of(conn, user_id).await?;
        Ok(preferences_view(user_id, &stored))
    }

    /// Changes some preferences of an existing user; every refused change is reported at once
    /// (`preferences[i].enabled`: `locked` for a security type switched off,
    /// `address_required` for email without a valid address) and then nothing changes.
    pub async fn set_preferences(
        &self,
        principal: &Principal,
        user_id: Uuid,
        changes: Vec<PreferenceChange>,
        client: &ClientInfo,
    ) -> AppResult<PreferencesView> {
        let uow = self.writer.begin(principal.actor(), client).await?;
        let user = users::get(uow.tx(), user_id)
            .await?
            .ok_or_else(user_not_found)?;
        let has_email = is_valid_email(&user.email);
        let mut v = Validator::new();
        v.check(
            changes.len() <= NotificationType::ALL.len() * Channel::ALL.len() * 2,
            "preferences",
            "too_many",
            "lists more changes than there are preferences",
        );
        for (i, change) in changes.iter().enumerate() {
            if let Some(error) = check_preference(
                change.event_type,
                change.channel,
                change.enabled,
                has_email,
                &format!("preferences[{i}].enabled"),
            ) {
                v.push(error);
            }
        }
        v.finish()?;
        let now = uow.now();
        // The last change of one (type, channel) wins.
        let rows: HashMap<(NotificationType, Channel), bool> = changes
            .iter()
            .map(|c| ((c.event_type, c.channel), c.enabled))
            .collect();
        notifications::set_preferences(
            uow.tx(),
            rows.iter()
                .map(
                    |((kind, channel), enabled)| notification_preference::Model {
                        user_id,
                        event_type: kind.as_str().to_owned(),
                        channel: channel.as_str().to_owned(),
                        enabled: *enabled,
                        updated_at: now,
                    },
                )
                .collect(),
        )
        .await?;
        uow.audit(
            AuditEntry::new("notification_preferences.changed")
                .target("user", user_id)
                .details(serde_json::json!({
                    "changes": changes.iter().map(|c| serde_json::json!({
                        "event_type": c.event_type, "channel": c.channel, "enabled": c.enabled,
                    })).collect::<Vec<_>>(),
                })),
        )
        .await?;
        let stored = notifications::preferences_of(uow.tx(), user_id).await?;
        uow.commit().await?;
        Ok(preferences_view(user_id, &stored))
    }
}

fn preferences_view(user_id: Uuid, stored: &[notification_preference::Model]) -> PreferencesView {
    let chosen: HashMap<(&str, &str), bool> = stored
        .iter()
        .map(|p| ((p.event_type.as_str(), p.channel.as_str()), p.enabled))
        .collect();
    let mut preferences = Vec::new();
    for kind in NotificationType::ALL {
        for channel in Channel::ALL {
            let default = kind.enabled_by_default(*channel);
            let locked = kind.is_security();
            let enabled = if locked {
                true
            } else {
                chosen
                    .get(&(kind.as_str(), channel.as_str()))
                    .copied()
                    .unwrap_or(default)
            };
            preferences.push(PreferenceView {
                event_type: *kind,
                channel: *channel,
                enabled,
                default: enabled == default,
                locked,
            });
        }
    }
    PreferencesView {
        user_id,
        preferences,
    }
}
