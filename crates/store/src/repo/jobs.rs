//! The database job queue: durable rows per (queue, message), claimed by workers with a
//! visibility timeout so that a crashed worker's job is picked up again.
//!
//! Claiming uses `FOR UPDATE SKIP LOCKED` on PostgreSQL (workers never wait on each other) and
//! the single writer connection on SQLite (claims are serialised).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::id::new_id;
use depot_domain::message::Message;
use depot_domain::state::JobStatus;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use super::outbox::truncate;
use super::{IN_LIST, insert_if_absent, upsert_all};
use crate::entity::job::{ActiveModel, Column, Entity, Model};
use crate::error::db_error;

/// Enqueues `message` on `queue` unless it is already there (deduplicated on the message id).
/// Returns whether a row was inserted.
pub async fn enqueue(
    conn: &impl ConnectionTrait,
    queue: &str,
    message: &Message,
    max_attempts: i32,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let row = job_row(queue, message, max_attempts, now)?;
    insert_if_absent(conn, row, [Column::Queue, Column::DedupeKey]).await
}

/// Enqueues each `(queue, message, max_attempts)`, many rows per statement, skipping those
/// already there (deduplicated on the message id per queue, as [`enqueue`]).
pub async fn enqueue_all(
    conn: &impl ConnectionTrait,
    entries: &[(&str, &Message, i32)],
    now: DateTime<Utc>,
) -> AppResult<()> {
    let rows = entries
        .iter()
        .map(|&(queue, message, max_attempts)| job_row(queue, message, max_attempts, now))
        .collect::<AppResult<Vec<_>>>()?;
    let skip = OnConflict::columns([Column::Queue, Column::DedupeKey])
        .do_nothing()
        .to_owned();
    upsert_all(conn, rows, Some(skip)).await
}

/// The queued job that carries `message` on `queue`, due at `now`.
fn job_row(
    queue: &str,
    message: &Message,
    max_attempts: i32,
    now: DateTime<Utc>,
) -> AppResult<ActiveModel> {
    let payload = serde_json::to_value(message).map_err(depot_domain::AppError::internal)?;
    Ok(ActiveModel {
        id: Set(new_id()),
        queue: Set(queue.to_owned()),
        kind: Set(message.event_type.clone()),
        payload: Set(payload),
        status: Set(JobStatus::Queued.as_str().into()),
        attempts: Set(0),
        max_attempts: Set(max_attempts.max(1)),
        run_at: Set(now),
        locked_until: Set(None),
        locked_by: Set(None),
        last_error: Set(None),
        dedupe_key: Set(Some(message.id.to_string())),
        correlation_id: Set(message.correlation_id.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    })
}

/// Claims up to `limit` due jobs of `queue` for `worker` until `locked_until`, counting an
/// attempt for each. Jobs whose previous claim expired (a crashed worker) are due again.
pub async fn claim(
    conn: &impl ConnectionTrait,
    queue: &str,
    worker: &str,
    limit: u32,
    now: DateTime<Utc>,
    locked_until: DateTime<Utc>,
) -> AppResult<Vec<Model>> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1, \
             locked_until = $2, updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs WHERE queue = $4 AND \
             ((status = 'queued' AND run_at <= $3) OR (status = 'running' AND locked_until < $3)) \
             ORDER BY run_at, id LIMIT $5 FOR UPDATE SKIP LOCKED) RETURNING *"
        }
        _ => {
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = ?1, \
             locked_until = ?2, updated_at = ?3 \
             WHERE id IN (SELECT id FROM jobs WHERE queue = ?4 AND \
             ((status = 'queued' AND run_at <= ?3) OR (status = 'running' AND locked_until < ?3)) \
             ORDER BY run_at, id LIMIT ?5) RETURNING *"
        }
    };
    let stmt = Statement::from_sql_and_values(
        backend,
        sql,
        [
            worker.into(),
            locked_until.into(),
            now.into(),
            queue.into(),
            i64::from(limit).into(),
        ],
    );
    let mut jobs = Model::find_by_statement(stmt)
        .all(conn)
        .await
        .map_err(db_error)?;
    jobs.sort_by_key(|j| (j.run_at, j.id));
    Ok(jobs)
}

/// Marks claimed jobs done in one statement (`IN_LIST` ids at a time). Only the worker
/// holding a job's claim can complete it: a job whose claim `worker` no longer holds is left
/// alone. Returns how many were completed.
pub async fn complete_all(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
    worker: &str,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let mut completed = 0;
    for chunk in ids.chunks(IN_LIST) {
        completed += ended_claims(chunk, worker, JobStatus::Succeeded.as_str(), now)
            .filter(Column::Status.eq(JobStatus::Running.as_str()))
            .exec(conn)
            .await
            .map_err(db_error)?
            .rows_affected;
    }
    Ok(completed)
}

/// Puts a claimed job back to run again at `run_at`, recording why it failed.
pub async fn retry(
    conn: &impl ConnectionTrait,
    id: Uuid,
    worker: &str,
    run_at: DateTime<Utc>,
    error: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    release(
        conn,
        id,
        worker,
        JobStatus::Queued.as_str(),
        run_at,
        error,
        now,
    )
    .await
}

/// Parks a claimed job in the dead-letter state with the reason.
pub async fn bury(
    conn: &impl ConnectionTrait,
    id: Uuid,
    worker: &str,
    error: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    release(conn, id, worker, JobStatus::Dead.as_str(), now, error, now).await
}

async fn release(
    conn: &impl ConnectionTrait,
    id: Uuid,
    worker: &str,
    status: &str,
    run_at: DateTime<Utc>,
    error: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    ended_claims(&[id], worker, status, now)
        .col_expr(Column::RunAt, Expr::value(run_at))
        .col_expr(Column::LastError, Expr::value(truncate(error)))
        .col_expr(Column::LockedBy, Expr::value(Option::<String>::None))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The update that ends `worker`'s claims on jobs `ids` with `status`.
fn ended_claims(
    ids: &[Uuid],
    worker: &str,
    status: &str,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<Entity> {
    Entity::update_many()
        .col_expr(Column::Status, Expr::value(status))
        .col_expr(
            Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.is_in(ids.iter().copied()))
        .filter(Column::LockedBy.eq(worker))
}

/// Dead jobs, oldest first, optionally of one queue.
pub async fn dead(
    conn: &impl ConnectionTrait,
    queue: Option<&str>,
    limit: u64,
) -> AppResult<Vec<Model>> {
    let mut select = Entity::find().filter(Column::Status.eq(JobStatus::Dead.as_str()));
    if let Some(queue) = queue {
        select = select.filter(Column::Queue.eq(queue));
    }
    select
        .order_by_asc(Column::UpdatedAt)
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Re-queues dead jobs (one by id, or all of a queue, or all) with a fresh attempt budget.
/// Returns how many.
pub async fn replay(
    conn: &impl ConnectionTrait,
    id: Option<Uuid>,
    queue: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let mut update = Entity::update_many()
        .col_expr(Column::Status, Expr::value(JobStatus::Queued.as_str()))
        .col_expr(Column::Attempts, Expr::value(0))
        .col_expr(Column::RunAt, Expr::value(now))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Status.eq(JobStatus::Dead.as_str()));
    if let Some(id) = id {
        update = update.filter(Column::Id.eq(id));
    }
    if let Some(queue) = queue {
        update = update.filter(Column::Queue.eq(queue));
    }
    Ok(update.exec(conn).await.map_err(db_error)?.rows_affected)
}

/// Deletes dead jobs (one by id, or all of a queue, or all). Returns how many.
pub async fn purge(
    conn: &impl ConnectionTrait,
    id: Option<Uuid>,
    queue: Option<&str>,
) -> AppResult<u64> {
    let mut delete = Entity::delete_many().filter(Column::Status.eq(JobStatus::Dead.as_str()));
    if let Some(id) = id {
        delete = delete.filter(Column::Id.eq(id));
    }
    if let Some(queue) = queue {
        delete = delete.filter(Column::Queue.eq(queue));
    }
    Ok(delete.exec(conn).await.map_err(db_error)?.rows_affected)
}

/// Jobs per (queue, status), for the queue-depth metric.
pub async fn depth(conn: &impl ConnectionTrait) -> AppResult<BTreeMap<(String, String), i64>> {
    #[derive(FromQueryResult)]
    struct Row {
        queue: String,
        status: String,
        n: i64,
    }
    let rows = Entity::find()
        .select_only()
        .column(Column::Queue)
        .column(Column::Status)
        .column_as(Column::Id.count(), "n")
        .filter(Column::Status.is_in([
            JobStatus::Queued.as_str(),
            JobStatus::Running.as_str(),
            JobStatus::Dead.as_str(),
        ]))
        .group_by(Column::Queue)
        .group_by(Column::Status)
        .into_model::<Row>()
        .all(conn)
        .await
        .map_err(db_error)?;
    Ok(rows
        .into_iter()
        .map(|r| ((r.queue, r.status), r.n))
        .collect())
}

/// Decodes the message a job carries.
pub fn message_of(job: &Model) -> AppResult<Message> {
    serde_json::from_value(job.payload.clone()).map_err(depot_domain::AppError::internal)
}
