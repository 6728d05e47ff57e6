//! Outbound email rows: queued in the caller's transaction, claimed by the sender with a lease,
//! settled as sent, rescheduled or dead.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::id::new_id;
use depot_domain::state::EmailStatus;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::outbox::truncate;
use crate::entity::outbound_email::{ActiveModel, Column, Entity, Model};
use crate::error::db_error;

/// A message to send.
#[derive(Debug, Clone)]
pub struct NewEmail {
    pub to: String,
    pub subject: String,
    pub body: String,
    pub correlation_id: Option<String>,
    /// Text attachments as a JSON array of `{filename, content_type, content}`.
    pub attachments: Option<String>,
}

pub async fn enqueue(
    conn: &impl ConnectionTrait,
    email: NewEmail,
    max_attempts: i32,
    now: DateTime<Utc>,
) -> AppResult<Uuid> {
    let id = new_id();
    Entity::insert(ActiveModel {
        id: Set(id),
        to_address: Set(email.to),
        subject: Set(email.subject),
        body: Set(email.body),
        status: Set(EmailStatus::Pending.as_str().into()),
        attempts: Set(0),
        max_attempts: Set(Ord::max(max_attempts, 1)),
        last_error: Set(None),
        next_attempt_at: Set(now),
        locked_until: Set(None),
        correlation_id: Set(email.correlation_id),
        attachments: Set(email.attachments),
        created_at: Set(now),
        sent_at: Set(None),
    })
    .exec_without_returning(conn)
    .await
    .map_err(db_error)?;
    Ok(id)
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Model>> {
    Entity::find_by_id(id).one(conn).await.map_err(db_error)
}

/// Claims up to `limit` due messages (pending and due, or `sending` with an expired lease after
/// a crash) until `locked_until`, counting an attempt for each.
pub async fn claim_due(
    conn: &impl ConnectionTrait,
    limit: u64,
    now: DateTime<Utc>,
    locked_until: DateTime<Utc>,
) -> AppResult<Vec<Model>> {
    let lease = super::Lease {
        id: Column::Id,
        status: Column::Status,
        next_attempt_at: Column::NextAttemptAt,
        locked_until: Column::LockedUntil,
        attempts: Column::Attempts,
    };
    let ids = super::claim_leased::<Entity>(
        conn,
        &lease,
        &[EmailStatus::Pending.as_str()],
        EmailStatus::Sending.as_str(),
        limit,
        now,
        locked_until,
    )
    .await?;
    let mut claimed = super::find_in(conn, Entity::find, Column::Id, &ids).await?;
    claimed.sort_by_key(|m| (m.next_attempt_at, m.id));
    Ok(claimed)
}

/// Records a message sent — only while the claim taken until `leased_until` is still this
/// sender's. Returns whether it was recorded.
pub async fn mark_sent(
    conn: &impl ConnectionTrait,
    id: Uuid,
    leased_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let sent = EmailStatus::Sent.as_str();
    settle(conn, (id, leased_until), sent, None, now, Some(now)).await
}

/// Records a failure: back to `pending` at `retry_at`, or `dead` when `retry_at` is `None` —
/// only while the claim is still this sender's.
pub async fn mark_failed(
    conn: &impl ConnectionTrait,
    id: Uuid,
    leased_until: DateTime<Utc>,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let claim = (id, leased_until);
    match retry_at {
        Some(at) => {
            settle(
                conn,
                claim,
                EmailStatus::Pending.as_str(),
                Some(error),
                at,
                None,
            )
            .await
        }
        None => {
            settle(
                conn,
                claim,
                EmailStatus::Dead.as_str(),
                Some(error),
                now,
                None,
            )
            .await
        }
    }
}

async fn settle(
    conn: &impl ConnectionTrait,
    (id, leased_until): (Uuid, DateTime<Utc>),
    status: &str,
    error: Option<&str>,
    next_attempt_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
) -> AppResult<bool> {
    let mut update = Entity::update_many()
        .col_expr(Column::Status, Expr::value(status))
        .col_expr(Column::NextAttemptAt, Expr::value(next_attempt_at))
        .col_expr(
            Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::SentAt, Expr::value(sent_at))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(EmailStatus::Sending.as_str()))
        .filter(Column::LockedUntil.eq(leased_until));
    if let Some(error) = error {
        update = update.col_expr(Column::LastError, Expr::value(truncate(error)));
    }
    Ok(update.exec(conn).await.map_err(db_error)?.rows_affected == 1)
}
