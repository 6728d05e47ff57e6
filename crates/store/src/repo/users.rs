//! User accounts.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::auth::UserFilter;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::state::UserStatus;
use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, Value,
};
use uuid::Uuid;

use crate::entity::user::{ActiveModel, Column, Entity, Model};
use crate::error::{Constraint, db_error};

/// One account per email, compared case-insensitively (the normalised form).
pub const EMAIL_UNIQUE: Constraint = Constraint {
    name: "users_email_normalized_key",
    table: "users",
    columns: &["email_normalized"],
};
use crate::keyset::{Direction, page_after};
use crate::search::containing;

pub async fn insert(conn: &impl ConnectionTrait, user: Model) -> AppResult<Model> {
    user.clone()
        .into_active_model()
        .reset_all()
        .insert(conn)
        .await
        .map_err(db_error)
}

/// Writes every column of `user` (the caller changed what it meant to on a loaded row).
pub async fn save(conn: &impl ConnectionTrait, user: Model) -> AppResult<Model> {
    let active: ActiveModel = user.into_active_model().reset_all();
    active.update(conn).await.map_err(db_error)
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Model>> {
    Entity::find_by_id(id).one(conn).await.map_err(db_error)
}

pub async fn by_email(conn: &impl ConnectionTrait, normalized: &str) -> AppResult<Option<Model>> {
    Entity::find()
        .filter(Column::EmailNormalized.eq(normalized))
        .one(conn)
        .await
        .map_err(db_error)
}

/// Users oldest first; the cursor is `(created_at, id)`.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &UserFilter,
    page: &PageRequest,
) -> AppResult<Page<Model>> {
    let cursor: Option<(DateTime<Utc>, Uuid)> = page.decode_cursor()?;
    let mut select = Entity::find();
    if let Some(status) = filter.status {
        select = select.filter(Column::Status.eq(status.as_str()));
    }
    if let Some(search) = &filter.search {
        let pattern = containing(&search.to_lowercase());
        select = select.filter(
            Condition::any()
                .add(Column::EmailNormalized.like(pattern.clone()))
                .add(Expr::expr(Func::lower(Expr::col(Column::DisplayName))).like(pattern)),
        );
    }
    let rows = page_after(
        select,
        Column::CreatedAt,
        Column::Id,
        Direction::Asc,
        cursor.map(|(at, id)| (Value::from(at), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    Page::from_overfetch(rows, page, |u| (u.created_at, u.id))
}

/// Records a failed login: the new failure count and lock. Atomic (`failed_logins + 1`), so
/// concurrent failures all count.
pub async fn record_failed_login(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<i32> {
    Entity::update_many()
        .col_expr(Column::FailedLogins, Expr::col(Column::FailedLogins).add(1))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(get(conn, id).await?.map_or(0, |u| u.failed_logins))
}

/// Sets the account status alone (no read-modify-write of the whole row, so a concurrent sign-in
/// or password change is never overwritten).
pub async fn set_status(
    conn: &impl ConnectionTrait,
    id: Uuid,
    status: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    Entity::update_many()
        .col_expr(Column::Status, Expr::value(status))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn set_lock(
    conn: &impl ConnectionTrait,
    id: Uuid,
    locked_until: Option<DateTime<Utc>>,
) -> AppResult<()> {
    Entity::update_many()
        .col_expr(Column::LockedUntil, Expr::value(locked_until))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Clears the failure count and any lock.
pub async fn reset_failures(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    Entity::update_many()
        .col_expr(Column::FailedLogins, Expr::value(0))
        .col_expr(
            Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Accepts TOTP step `step` for the user only if it is later than every step accepted before:
/// the conditional update makes a replayed code lose even when two requests race.
pub async fn claim_totp_step(conn: &impl ConnectionTrait, id: Uuid, step: i64) -> AppResult<bool> {
    let result = Entity::update_many()
        .col_expr(Column::MfaLastStep, Expr::value(step))
        .filter(Column::Id.eq(id))
        .filter(
            Condition::any()
                .add(Column::MfaLastStep.is_null())
                .add(Column::MfaLastStep.lt(step)),
        )
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected == 1)
}

/// The active users among `ids`, in id order.
pub async fn active_among(conn: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<Model>> {
    let mut found = super::find_in(
        conn,
        || Entity::find().filter(Column::Status.eq(UserStatus::Active.as_str())),
        Column::Id,
        ids,
    )
    .await?;
    found.sort_by_key(|u| u.id);
    Ok(found)
}
