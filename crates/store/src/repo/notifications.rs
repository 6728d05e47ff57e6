//! Notifications and notification preferences. A notification is unique per (event, user,
//! channel), so however often its event is delivered it is written once; an email one mirrors
//! the state of the queued email that carries it.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::notify::{Channel, NotificationFilter, NotificationStatus, NotificationType};
use depot_domain::pagination::{Page, PageRequest};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::outbox::truncate;
use crate::entity::notification::{self, ActiveModel, Column, Entity, Model};
use crate::entity::notification_preference as pref;
use crate::error::db_error;
use crate::keyset::newest_first;

/// Writes `row` unless this event already notified this user on this channel. Returns
/// whether it was written.
pub async fn insert_if_absent(conn: &impl ConnectionTrait, row: Model) -> AppResult<bool> {
    super::insert_if_absent(
        conn,
        ActiveModel::from(row),
        [Column::EventId, Column::UserId, Column::Channel],
    )
    .await
}

/// Links a notification to the queued email that carries it.
pub async fn attach_email(conn: &impl ConnectionTrait, id: Uuid, email: Uuid) -> AppResult<()> {
    Entity::update_many()
        .col_expr(Column::EmailId, Expr::value(email))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Model>> {
    Entity::find_by_id(id).one(conn).await.map_err(db_error)
}

/// The notifications one event caused on `channel`.
pub async fn of_event(
    conn: &impl ConnectionTrait,
    event_id: Uuid,
    channel: Channel,
) -> AppResult<Vec<Model>> {
    Entity::find()
        .filter(Column::EventId.eq(event_id))
        .filter(Column::Channel.eq(channel.as_str()))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Notifications, newest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &NotificationFilter,
    page: &PageRequest,
) -> AppResult<Page<Model>> {
    let mut condition = Condition::all();
    if let Some(user) = filter.user_id {
        condition = condition.add(Column::UserId.eq(user));
    }
    if let Some(unread) = filter.unread {
        condition = condition.add(if unread {
            Column::ReadAt.is_null()
        } else {
            Column::ReadAt.is_not_null()
        });
    }
    if let Some(kind) = filter.kind {
        condition = condition.add(Column::EventType.eq(kind.as_str()));
    }
    if let Some(status) = filter.status {
        condition = condition.add(Column::Status.eq(status.as_str()));
    }
    if let Some(channel) = filter.channel {
        condition = condition.add(Column::Channel.eq(channel.as_str()));
    }
    newest_first(
        conn,
        Entity::find().filter(condition),
        (Column::CreatedAt, Column::Id),
        page,
        |n| (n.created_at, n.id),
    )
    .await
}

/// Marks one notification read (the first reading counts).
pub async fn mark_read(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> AppResult<()> {
    Entity::update_many()
        .col_expr(Column::ReadAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::ReadAt.is_null())
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Marks every unread in-app notification of `user` read; returns how many.
pub async fn mark_all_read(
    conn: &impl ConnectionTrait,
    user: Uuid,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    Ok(Entity::update_many()
        .col_expr(Column::ReadAt, Expr::value(now))
        .filter(unread_in_app(user))
        .exec(conn)
        .await
        .map_err(db_error)?
        .rows_affected)
}

/// How many in-app notifications `user` has not read.
pub async fn unread_count(conn: &impl ConnectionTrait, user: Uuid) -> AppResult<u64> {
    Entity::find()
        .filter(unread_in_app(user))
        .count(conn)
        .await
        .map_err(db_error)
}

fn unread_in_app(user: Uuid) -> Condition {
    Condition::all()
        .add(Column::UserId.eq(user))
        .add(Column::Channel.eq(Channel::InApp.as_str()))
        .add(Column::ReadAt.is_null())
}

/// What happened to the email carrying a notification.
#[derive(Debug, Clone)]
pub struct EmailOutcome {
    pub status: NotificationStatus,
    pub attempts: i32,
    pub error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Copies the outcome of sending email `email_id` onto the notification it carries (if any).
pub async fn mirror_email(
    conn: &impl ConnectionTrait,
    email_id: Uuid,
    outcome: EmailOutcome,
) -> AppResult<()> {
    let mut update = Entity::update_many()
        .col_expr(Column::Status, Expr::value(outcome.status.as_str()))
        .col_expr(Column::Attempts, Expr::value(outcome.attempts))
        .col_expr(Column::NextAttemptAt, Expr::value(outcome.next_attempt_at))
        .col_expr(Column::SentAt, Expr::value(outcome.sent_at))
        .filter(Column::EmailId.eq(email_id));
    if let Some(error) = outcome.error.as_deref() {
        update = update.col_expr(Column::LastError, Expr::value(truncate(error)));
    }
    update.exec(conn).await.map_err(db_error)?;
    Ok(())
}

/// The preferences `users` changed from the defaults for `kind`.
pub async fn preferences_for(
    conn: &impl ConnectionTrait,
    users: &[Uuid],
    kind: NotificationType,
) -> AppResult<Vec<pref::Model>> {
    super::find_in(
        conn,
        || pref::Entity::find().filter(pref::Column::EventType.eq(kind.as_str())),
        pref::Column::UserId,
        users,
    )
    .await
}

/// Every preference `user` changed from the defaults.
pub async fn preferences_of(
    conn: &impl ConnectionTrait,
    user: Uuid,
) -> AppResult<Vec<pref::Model>> {
    pref::Entity::find()
        .filter(pref::Column::UserId.eq(user))
        .all(conn)
        .await
        .map_err(db_error)
}

/// Stores preferences (replacing what each (user, type, channel) said before).
pub async fn set_preferences(conn: &impl ConnectionTrait, rows: Vec<pref::Model>) -> AppResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    pref::Entity::insert_many(rows.into_iter().map(|r| pref::ActiveModel {
        user_id: Set(r.user_id),
        event_type: Set(r.event_type),
        channel: Set(r.channel),
        enabled: Set(r.enabled),
        updated_at: Set(r.updated_at),
    }))
    .on_conflict(
        OnConflict::columns([
            pref::Column::UserId,
            pref::Column::EventType,
            pref::Column::Channel,
        ])
        .update_columns([pref::Column::Enabled, pref::Column::UpdatedAt])
        .to_owned(),
    )
    .exec_without_returning(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Deletes notifications older than `before` that nobody needs any more (read, or never to
/// be read: email); returns how many.
pub async fn purge(conn: &impl ConnectionTrait, before: DateTime<Utc>) -> AppResult<u64> {
    super::delete_where::<notification::Entity>(
        conn,
        Condition::all()
            .add(Column::CreatedAt.lt(before))
            .add(
                Condition::any()
                    .add(Column::ReadAt.is_not_null())
                    .add(Column::Channel.eq(Channel::Email.as_str())),
            )
            .add(Column::Status.ne(NotificationStatus::Pending.as_str())),
    )
    .await
}
