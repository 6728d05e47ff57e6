//! Idempotency records: one row per (scope, key). A caller *claims* a key with an atomic
//! insert, runs the request, then *completes* the row with the response (or *releases* it so a
//! retry can run). A row whose `expires_at` has passed counts as free: a claim replaces it.
//!
//! The request's own unit of work marks the row *committed* in its transaction
//! ([`mark_committed`]): from then on the key is never free again until its retention ends, so
//! a process killed between its commit and storing the response cannot have its request run a
//! second time.

use chrono::{DateTime, SubsecRound, Utc};
use depot_domain::AppResult;
use depot_domain::state::IdempotencyStatus;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement};

use super::delete_where;
use crate::entity::idempotency_key::{Column, Entity, Model};
use crate::error::db_error;

/// `idempotency_keys.status` of a claimed key whose request is still running.
pub const IN_PROGRESS: &str = IdempotencyStatus::InProgress.as_str();
/// `idempotency_keys.status` of a key whose request committed its effect; the response is not
/// stored yet (or never will be: the process died in between).
pub const COMMITTED: &str = IdempotencyStatus::Committed.as_str();
/// `idempotency_keys.status` of a key whose response is stored.
pub const COMPLETED: &str = IdempotencyStatus::Completed.as_str();

/// A claim held by one request. `claimed_at` (the row's `created_at`) tells this claim apart
/// from a later claim of the same key, so only its holder can complete or release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub scope: String,
    pub key: String,
    pub claimed_at: DateTime<Utc>,
    /// How long the row is kept once the request has committed its effect.
    pub keep_until: DateTime<Utc>,
}

/// Claims `(scope, key)` for a request with `fingerprint`, held until `lease_until` unless
/// completed or released before (and kept until `keep_until` once its effect commits). One atomic statement: it inserts the row, or replaces a row
/// that expired by `now`; a live row (someone else's claim or stored response) is left alone
/// and `None` is returned. Concurrent claims serialise on the primary key, so exactly one wins.
pub async fn claim(
    conn: &impl ConnectionTrait,
    scope: &str,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    keep_until: DateTime<Utc>,
) -> AppResult<Option<Claim>> {
    // PostgreSQL keeps microseconds: truncate so the token compares equal to what is stored
    // (and both backends store the same instants).
    let now = now.trunc_subsecs(6);
    let lease_until = lease_until.trunc_subsecs(6);
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO idempotency_keys \
             (scope, \"key\", request_fingerprint, status, response_status, response_body, \
              created_at, expires_at) \
             VALUES ($1, $2, $3, 'in_progress', NULL, NULL, $4, $5) \
             ON CONFLICT (scope, \"key\") DO UPDATE SET \
             request_fingerprint = excluded.request_fingerprint, status = 'in_progress', \
             response_status = NULL, response_body = NULL, created_at = excluded.created_at, \
             expires_at = excluded.expires_at \
             WHERE idempotency_keys.expires_at <= $4"
        }
        _ => {
            "INSERT INTO idempotency_keys \
             (scope, \"key\", request_fingerprint, status, response_status, response_body, \
              created_at, expires_at) \
             VALUES (?1, ?2, ?3, 'in_progress', NULL, NULL, ?4, ?5) \
             ON CONFLICT (scope, \"key\") DO UPDATE SET \
             request_fingerprint = excluded.request_fingerprint, status = 'in_progress', \
             response_status = NULL, response_body = NULL, created_at = excluded.created_at, \
             expires_at = excluded.expires_at \
             WHERE idempotency_keys.expires_at <= ?4"
        }
    };
    let stmt = Statement::from_sql_and_values(
        backend,
        sql,
        [
            scope.into(),
            key.into(),
            fingerprint.into(),
            now.into(),
            lease_until.into(),
        ],
    );
    let result = conn.execute_raw(stmt).await.map_err(db_error)?;
    Ok((result.rows_affected() == 1).then(|| Claim {
        scope: scope.to_owned(),
        key: key.to_owned(),
        claimed_at: now,
        keep_until: keep_until.trunc_subsecs(6),
    }))
}

/// The record of `(scope, key)`, expired or not.
pub async fn get(conn: &impl ConnectionTrait, scope: &str, key: &str) -> AppResult<Option<Model>> {
    Entity::find_by_id((scope.to_owned(), key.to_owned()))
        .one(conn)
        .await
        .map_err(db_error)
}

/// Marks the claimed key's request as having committed its effect, in the transaction that
/// commits it: the row is then kept until the claim's `keep_until` whatever happens to the
/// process. Returns false if the claim is no longer held (its lease ended and another copy of
/// the request took the key): the caller must not commit.
pub async fn mark_committed(conn: &impl ConnectionTrait, claim: &Claim) -> AppResult<bool> {
    let result = Entity::update_many()
        .col_expr(Column::Status, Expr::value(COMMITTED))
        .col_expr(Column::ExpiresAt, Expr::value(claim.keep_until))
        .filter(held(claim, &[IN_PROGRESS, COMMITTED]))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected == 1)
}

/// Stores the response of a claimed key, kept for replay until `expires_at`. Returns false if
/// the claim is no longer held (released, or expired and taken over).
pub async fn complete(
    conn: &impl ConnectionTrait,
    claim: &Claim,
    response_status: i32,
    response_body: Option<serde_json::Value>,
    expires_at: DateTime<Utc>,
) -> AppResult<bool> {
    let result = Entity::update_many()
        .col_expr(Column::Status, Expr::value(COMPLETED))
        .col_expr(Column::ResponseStatus, Expr::value(Some(response_status)))
        .col_expr(
            Column::ResponseBody,
            Expr::value(sea_orm::Value::Json(response_body.map(Box::new))),
        )
        .col_expr(Column::ExpiresAt, Expr::value(expires_at.trunc_subsecs(6)))
        .filter(held(claim, &[IN_PROGRESS, COMMITTED]))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected == 1)
}

/// Deletes a claimed key so that a retry can run. Returns false if the claim is no longer held
/// — or if its request committed an effect, which a retry must never repeat.
pub async fn release(conn: &impl ConnectionTrait, claim: &Claim) -> AppResult<bool> {
    Ok(delete_where::<Entity>(conn, held(claim, &[IN_PROGRESS])).await? == 1)
}

/// The row of `claim`, in one of `statuses`.
fn held(claim: &Claim, statuses: &[&str]) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(Column::Scope.eq(claim.scope.as_str()))
        .add(Column::Key.eq(claim.key.as_str()))
        .add(Column::Status.is_in(statuses.iter().copied()))
        .add(Column::CreatedAt.eq(claim.claimed_at))
}

/// Deletes every record that expired before `now`.
pub async fn delete_expired(conn: &impl ConnectionTrait, now: DateTime<Utc>) -> AppResult<u64> {
    delete_where::<Entity>(conn, Column::ExpiresAt.lt(now)).await
}
