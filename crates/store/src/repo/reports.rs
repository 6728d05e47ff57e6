//! Report jobs. A worker claims a job by one conditional update (queued, or running with its
//! lease over) and every later write of the run is conditional on its claim (running, same
//! attempt): a cancelled job or one taken over answers "not yours" to the run that lost it.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::report::ReportStatus;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    UpdateMany,
};
use uuid::Uuid;

use super::insert_model;
use crate::entity::report_job::{ActiveModel, Column, Entity, Model};
use crate::error::{Constraint, db_error};
use crate::keyset::newest_first;
use crate::migration::REPORT_ACTIVE_REQUEST_IDX;

/// One active job per (owner, identical request).
pub const ACTIVE_REQUEST: Constraint = Constraint {
    name: REPORT_ACTIVE_REQUEST_IDX,
    table: "report_jobs",
    columns: &["owner_id", "fingerprint"],
};

pub async fn insert(conn: &impl ConnectionTrait, row: Model) -> AppResult<Model> {
    insert_model::<ActiveModel>(conn, row).await
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Model>> {
    Entity::find_by_id(id).one(conn).await.map_err(db_error)
}

/// The queued or running job of `owner` for the request `fingerprint`, if any.
pub async fn find_active(
    conn: &impl ConnectionTrait,
    owner: Option<Uuid>,
    fingerprint: &str,
) -> AppResult<Option<Model>> {
    let owner = match owner {
        Some(owner) => Column::OwnerId.eq(owner),
        None => Column::OwnerId.is_null(),
    };
    Entity::find()
        .filter(owner)
        .filter(Column::Fingerprint.eq(fingerprint))
        .filter(Column::Status.is_in(active()))
        .one(conn)
        .await
        .map_err(db_error)
}

fn active() -> [&'static str; 2] {
    [
        ReportStatus::Queued.as_str(),
        ReportStatus::Running.as_str(),
    ]
}

/// Jobs newest first; only `owner`'s when given.
pub async fn list(
    conn: &impl ConnectionTrait,
    owner: Option<Uuid>,
    page: &PageRequest,
) -> AppResult<Page<Model>> {
    let mut select = Entity::find();
    if let Some(owner) = owner {
        select = select.filter(Column::OwnerId.eq(owner));
    }
    newest_first(conn, select, (Column::CreatedAt, Column::Id), page, |row| {
        (row.created_at, row.id)
    })
    .await
}

fn claimable(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(Column::Status.eq(ReportStatus::Queued.as_str()))
        .add(
            Condition::all()
                .add(Column::Status.eq(ReportStatus::Running.as_str()))
                .add(Column::LeaseUntil.lt(now)),
        )
}

/// The oldest job waiting for a worker (or whose worker's lease ran out); only `only` when
/// given. A read: the claim itself is [`claim`].
pub async fn next_claimable(
    conn: &impl ConnectionTrait,
    only: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<Option<Uuid>> {
    let mut select = Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(claimable(now));
    if let Some(id) = only {
        select = select.filter(Column::Id.eq(id));
    }
    select
        .order_by_asc(Column::CreatedAt)
        .limit(1)
        .into_tuple::<Uuid>()
        .one(conn)
        .await
        .map_err(db_error)
}

/// Claims `id` until `lease_until` if it is still claimable; the job as claimed (its
/// `attempts` names this run), or `None` when another caller got it.
pub async fn claim(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> AppResult<Option<Model>> {
    let claimed = Entity::update_many()
        .col_expr(Column::Status, Expr::value(ReportStatus::Running.as_str()))
        .col_expr(Column::LeaseUntil, Expr::value(lease_until))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::Progress, Expr::value(0))
        .col_expr(Column::Rows, Expr::value(0))
        .col_expr(Column::Bytes, Expr::value(0))
        .col_expr(Column::StartedAt, Expr::value(now))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(claimable(now));
    update_one(conn, id, claimed).await
}

/// The run `attempt` of job `id` still holds it.
fn held(id: Uuid, attempt: i64) -> Condition {
    Condition::all()
        .add(Column::Id.eq(id))
        .add(Column::Status.eq(ReportStatus::Running.as_str()))
        .add(Column::Attempts.eq(attempt))
}

/// How far a running job has got.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// 0–100.
    pub percent: u8,
    pub rows: i64,
    pub bytes: i64,
}

/// Records a running job's progress and extends its lease; whether the run still holds it
/// (`false`: cancelled or taken over — stop).
pub async fn heartbeat(
    conn: &impl ConnectionTrait,
    (id, attempt): (Uuid, i64),
    progress: Progress,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> AppResult<bool> {
    let updated = Entity::update_many()
        .col_expr(Column::Progress, Expr::value(i16::from(progress.percent)))
        .col_expr(Column::Rows, Expr::value(progress.rows))
        .col_expr(Column::Bytes, Expr::value(progress.bytes))
        .col_expr(Column::LeaseUntil, Expr::value(lease_until))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(held(id, attempt))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(updated.rows_affected == 1)
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Ending {
    pub status: ReportStatus,
    pub rows: i64,
    pub bytes: i64,
    pub object_key: Option<String>,
    pub error: Option<(String, String)>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Ends the run `attempt` of job `id`; the job as it ended, or `None` when the run no longer
/// held it (then nothing is written).
pub async fn finish(
    conn: &impl ConnectionTrait,
    id: Uuid,
    attempt: i64,
    ending: Ending,
    now: DateTime<Utc>,
) -> AppResult<Option<Model>> {
    let (code, message) = ending.error.unzip();
    let progress = if ending.status == ReportStatus::Succeeded {
        100
    } else {
        0
    };
    let mut update = Entity::update_many()
        .col_expr(Column::Status, Expr::value(ending.status.as_str()))
        .col_expr(Column::Rows, Expr::value(ending.rows))
        .col_expr(Column::Bytes, Expr::value(ending.bytes))
        .col_expr(Column::ObjectKey, Expr::value(ending.object_key))
        .col_expr(Column::ErrorCode, Expr::value(code))
        .col_expr(Column::ErrorMessage, Expr::value(message))
        .col_expr(Column::ExpiresAt, Expr::value(ending.expires_at))
        .col_expr(Column::UpdatedAt, Expr::value(now));
    if ending.status == ReportStatus::Succeeded {
        update = update.col_expr(Column::Progress, Expr::value(progress));
    }
    update = if ending.status == ReportStatus::Queued {
        // Given back for another attempt: not finished, claimable at once.
        update.col_expr(Column::LeaseUntil, Expr::value(Some(now)))
    } else {
        update
            .col_expr(
                Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(Column::FinishedAt, Expr::value(now))
    };
    update_one(conn, id, update.filter(held(id, attempt))).await
}

/// Cancels a queued or running job; the job as cancelled, or `None` when it was not active.
pub async fn cancel(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Option<Model>> {
    let update = Entity::update_many()
        .col_expr(
            Column::Status,
            Expr::value(ReportStatus::Cancelled.as_str()),
        )
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::FinishedAt, Expr::value(now))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Status.is_in(active()));
    update_one(conn, id, update).await
}

/// Runs a conditional update of job `id`; the job after it, or `None` when the condition
/// held for no row.
async fn update_one(
    conn: &impl ConnectionTrait,
    id: Uuid,
    update: UpdateMany<Entity>,
) -> AppResult<Option<Model>> {
    let updated = update
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    if updated.rows_affected != 1 {
        return Ok(None);
    }
    get(conn, id).await
}

/// Succeeded jobs whose export is due for deletion (oldest first), at most `limit`.
pub async fn due_to_expire(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> AppResult<Vec<Model>> {
    Entity::find()
        .filter(Column::Status.eq(ReportStatus::Succeeded.as_str()))
        .filter(Column::ExpiresAt.lte(now))
        .order_by_asc(Column::ExpiresAt)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Marks a succeeded job expired (its export deleted); whether it was.
pub async fn expire(conn: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> AppResult<bool> {
    let updated = Entity::update_many()
        .col_expr(Column::Status, Expr::value(ReportStatus::Expired.as_str()))
        .col_expr(Column::ObjectKey, Expr::value(Option::<String>::None))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(ReportStatus::Succeeded.as_str()))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(updated.rows_affected == 1)
}
