//! Work that must happen on one instance only: scheduled job periods and leases.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
};

use super::insert_if_absent;
use crate::entity::{lease, scheduled_job};
use crate::error::db_error;

/// Claims the current period of job `name`: true for exactly one caller per period, however
/// many instances ask. The period ends at `next_run_at`.
pub async fn claim_period(
    conn: &impl ConnectionTrait,
    name: &str,
    owner: &str,
    now: DateTime<Utc>,
    next_run_at: DateTime<Utc>,
) -> AppResult<bool> {
    let row = scheduled_job::ActiveModel {
        name: Set(name.to_owned()),
        next_run_at: Set(now),
        last_run_at: Set(None),
        last_owner: Set(None),
    };
    insert_if_absent(conn, row, [scheduled_job::Column::Name]).await?;
    let updated = scheduled_job::Entity::update_many()
        .col_expr(scheduled_job::Column::NextRunAt, Expr::value(next_run_at))
        .col_expr(scheduled_job::Column::LastRunAt, Expr::value(now))
        .col_expr(scheduled_job::Column::LastOwner, Expr::value(owner))
        .filter(scheduled_job::Column::Name.eq(name))
        .filter(scheduled_job::Column::NextRunAt.lte(now))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(updated.rows_affected == 1)
}

/// Takes or renews lease `name` for `holder` until `expires_at`. True if `holder` holds it now.
pub async fn acquire_lease(
    conn: &impl ConnectionTrait,
    name: &str,
    holder: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> AppResult<bool> {
    let row = lease::ActiveModel {
        name: Set(name.to_owned()),
        holder: Set(holder.to_owned()),
        expires_at: Set(expires_at),
    };
    if insert_if_absent(conn, row, [lease::Column::Name]).await? {
        return Ok(true);
    }
    let updated = lease::Entity::update_many()
        .col_expr(lease::Column::Holder, Expr::value(holder))
        .col_expr(lease::Column::ExpiresAt, Expr::value(expires_at))
        .filter(lease::Column::Name.eq(name))
        .filter(
            Condition::any()
                .add(lease::Column::Holder.eq(holder))
                .add(lease::Column::ExpiresAt.lt(now)),
        )
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(updated.rows_affected == 1)
}

/// Gives lease `name` up if `holder` has it.
pub async fn release_lease(conn: &impl ConnectionTrait, name: &str, holder: &str) -> AppResult<()> {
    lease::Entity::delete_many()
        .filter(lease::Column::Name.eq(name))
        .filter(lease::Column::Holder.eq(holder))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}
