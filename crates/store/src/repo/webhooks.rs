//! Outbound webhooks and their deliveries. A delivery is unique per (webhook, event); the
//! sender claims due ones under a lease, like the mail queue.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::notify::DeliveryStatus;
use depot_domain::pagination::{Page, PageRequest};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::outbox::truncate;
use super::{Lease, claim_leased, find_in, insert_model, save_model};
use crate::entity::webhook::{self, ActiveModel, Column, Entity, Model};
use crate::entity::webhook_delivery as delivery;
use crate::error::db_error;
use crate::keyset::newest_first;

pub async fn insert(conn: &impl ConnectionTrait, row: Model) -> AppResult<Model> {
    insert_model::<ActiveModel>(conn, row).await
}

pub async fn save(conn: &impl ConnectionTrait, row: Model) -> AppResult<Model> {
    save_model::<ActiveModel>(conn, row).await
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Model>> {
    Entity::find_by_id(id).one(conn).await.map_err(db_error)
}

/// Deletes a webhook and its delivery log; returns whether it existed.
pub async fn delete(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<bool> {
    super::delete_where::<delivery::Entity>(conn, delivery::Column::WebhookId.eq(id)).await?;
    Ok(super::delete_where::<webhook::Entity>(conn, Column::Id.eq(id)).await? == 1)
}

/// Webhooks, newest first.
pub async fn list(conn: &impl ConnectionTrait, page: &PageRequest) -> AppResult<Page<Model>> {
    newest_first(
        conn,
        Entity::find(),
        (Column::CreatedAt, Column::Id),
        page,
        |w| (w.created_at, w.id),
    )
    .await
}

/// Every active webhook (the caller matches event types).
pub async fn active(conn: &impl ConnectionTrait) -> AppResult<Vec<Model>> {
    Entity::find()
        .filter(Column::Active.eq(true))
        .order_by_asc(Column::Id)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Queues `row` unless this webhook already has this event. Returns whether it was queued.
pub async fn enqueue(conn: &impl ConnectionTrait, row: delivery::Model) -> AppResult<bool> {
    super::insert_if_absent(
        conn,
        delivery::ActiveModel::from(row),
        [delivery::Column::WebhookId, delivery::Column::EventId],
    )
    .await
}

pub async fn delivery(
    conn: &impl ConnectionTrait,
    webhook: Uuid,
    id: Uuid,
) -> AppResult<Option<delivery::Model>> {
    delivery::Entity::find_by_id(id)
        .filter(delivery::Column::WebhookId.eq(webhook))
        .one(conn)
        .await
        .map_err(db_error)
}

/// A webhook's deliveries, newest first.
pub async fn deliveries(
    conn: &impl ConnectionTrait,
    webhook: Uuid,
    status: Option<DeliveryStatus>,
    page: &PageRequest,
) -> AppResult<Page<delivery::Model>> {
    let mut condition = Condition::all().add(delivery::Column::WebhookId.eq(webhook));
    if let Some(status) = status {
        condition = condition.add(delivery::Column::Status.eq(status.as_str()));
    }
    newest_first(
        conn,
        delivery::Entity::find().filter(condition),
        (delivery::Column::CreatedAt, delivery::Column::Id),
        page,
        |d| (d.created_at, d.id),
    )
    .await
}

/// Claims up to `limit` due deliveries until `locked_until`, counting an attempt for each.
pub async fn claim_due(
    conn: &impl ConnectionTrait,
    limit: u64,
    now: DateTime<Utc>,
    locked_until: DateTime<Utc>,
) -> AppResult<Vec<delivery::Model>> {
    let lease = Lease {
        id: delivery::Column::Id,
        status: delivery::Column::Status,
        next_attempt_at: delivery::Column::NextAttemptAt,
        locked_until: delivery::Column::LockedUntil,
        attempts: delivery::Column::Attempts,
    };
    let ids = claim_leased::<delivery::Entity>(
        conn,
        &lease,
        &[
            DeliveryStatus::Pending.as_str(),
            DeliveryStatus::Failed.as_str(),
        ],
        DeliveryStatus::Delivering.as_str(),
        limit,
        now,
        locked_until,
    )
    .await?;
    let mut claimed = find_in(conn, delivery::Entity::find, delivery::Column::Id, &ids).await?;
    claimed.sort_by_key(|d| (d.next_attempt_at, d.id));
    Ok(claimed)
}

/// What one attempt of a delivery came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: DeliveryStatus,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// When to try again (`failed`), else unchanged.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Records an attempt's outcome and ends the lease — only while the lease taken until
/// `leased_until` is still this sender's (a sender that overran it settles nothing: whoever
/// reclaimed the row decides). Returns whether it settled.
pub async fn settle(
    conn: &impl ConnectionTrait,
    id: Uuid,
    leased_until: DateTime<Utc>,
    attempt: Attempt,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let mut update = delivery::Entity::update_many()
        .col_expr(
            delivery::Column::Status,
            Expr::value(attempt.status.as_str()),
        )
        .col_expr(
            delivery::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            delivery::Column::LastStatusCode,
            Expr::value(attempt.status_code),
        )
        .col_expr(
            delivery::Column::LastError,
            Expr::value(attempt.error.as_deref().map(truncate)),
        )
        .col_expr(
            delivery::Column::DeliveredAt,
            Expr::value(attempt.delivered_at),
        )
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .filter(delivery::Column::Id.eq(id))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Delivering.as_str()))
        .filter(delivery::Column::LockedUntil.eq(leased_until));
    if let Some(at) = attempt.next_attempt_at {
        update = update.col_expr(delivery::Column::NextAttemptAt, Expr::value(at));
    }
    Ok(update.exec(conn).await.map_err(db_error)?.rows_affected == 1)
}

/// Puts a claimed delivery back, untried, until `at` (its webhook is switched off): the
/// claim's attempt is not counted.
pub async fn defer(
    conn: &impl ConnectionTrait,
    id: Uuid,
    leased_until: DateTime<Utc>,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let result = delivery::Entity::update_many()
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Pending.as_str()),
        )
        .col_expr(
            delivery::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            delivery::Column::Attempts,
            Expr::col(delivery::Column::Attempts).sub(1),
        )
        .col_expr(delivery::Column::NextAttemptAt, Expr::value(at))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .filter(delivery::Column::Id.eq(id))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Delivering.as_str()))
        .filter(delivery::Column::LockedUntil.eq(leased_until))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected == 1)
}

/// Queues a delivery again now, with a fresh retry window and backoff schedule (whatever its
/// state, unless it is being delivered this moment). Returns whether it was requeued.
pub async fn redeliver(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let result = delivery::Entity::update_many()
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Pending.as_str()),
        )
        .col_expr(delivery::Column::NextAttemptAt, Expr::value(now))
        .col_expr(delivery::Column::WindowStartedAt, Expr::value(now))
        .col_expr(delivery::Column::Attempts, Expr::value(0))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .filter(delivery::Column::Id.eq(id))
        .filter(delivery::Column::Status.ne(DeliveryStatus::Delivering.as_str()))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected == 1)
}
