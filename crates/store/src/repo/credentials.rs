//! Single-use secrets: password-reset tokens and MFA recovery codes, stored as hashes.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::id::new_id;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter};
use uuid::Uuid;

use super::{delete_where, insert_row, replace_rows};
use crate::entity::{password_reset, recovery_code};
use crate::error::db_error;

pub async fn insert_password_reset(
    conn: &impl ConnectionTrait,
    token_hash: String,
    user_id: Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> AppResult<()> {
    let row = password_reset::Model {
        token_hash,
        user_id,
        created_at: now,
        expires_at,
        used_at: None,
    };
    insert_row(conn, row.into_active_model()).await
}

/// The user a reset token belongs to while it is unused and unexpired (a read; the token is
/// used by [`consume_password_reset`]).
pub async fn password_reset_holder(
    conn: &impl ConnectionTrait,
    token_hash: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<Uuid>> {
    Ok(password_reset::Entity::find_by_id(token_hash.to_owned())
        .filter(password_reset::Column::UsedAt.is_null())
        .filter(password_reset::Column::ExpiresAt.gt(now))
        .one(conn)
        .await
        .map_err(db_error)?
        .map(|row| row.user_id))
}

/// Uses a reset token: the user it belongs to when it exists, is unused and unexpired. The
/// conditional update makes it single-use even under concurrent attempts.
pub async fn consume_password_reset(
    conn: &impl ConnectionTrait,
    token_hash: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<Uuid>> {
    let Some(row) = password_reset::Entity::find_by_id(token_hash.to_owned())
        .one(conn)
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let result = password_reset::Entity::update_many()
        .col_expr(password_reset::Column::UsedAt, Expr::value(now))
        .filter(password_reset::Column::TokenHash.eq(token_hash))
        .filter(password_reset::Column::UsedAt.is_null())
        .filter(password_reset::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok((result.rows_affected == 1).then_some(row.user_id))
}

/// Retires every unused reset token of the user (after a successful reset or change).
pub async fn retire_password_resets(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    password_reset::Entity::update_many()
        .col_expr(password_reset::Column::UsedAt, Expr::value(now))
        .filter(password_reset::Column::UserId.eq(user_id))
        .filter(password_reset::Column::UsedAt.is_null())
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Replaces the user's recovery codes with `hashes`.
pub async fn replace_recovery_codes(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    hashes: Vec<String>,
) -> AppResult<()> {
    let rows = hashes.into_iter().map(|code_hash| {
        recovery_code::Model {
            id: new_id(),
            user_id,
            code_hash,
            used_at: None,
        }
        .into_active_model()
    });
    replace_rows(conn, recovery_code::Column::UserId.eq(user_id), rows).await
}

/// Uses one recovery code; `false` if it is unknown or already used.
pub async fn consume_recovery_code(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    code_hash: &str,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let result = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::UsedAt, Expr::value(now))
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::CodeHash.eq(code_hash))
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected == 1)
}

pub async fn unused_recovery_codes(conn: &impl ConnectionTrait, user_id: Uuid) -> AppResult<u64> {
    use sea_orm::PaginatorTrait;
    recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .count(conn)
        .await
        .map_err(db_error)
}

/// Deletes reset tokens that expired before `before` (housekeeping).
pub async fn purge_password_resets(
    conn: &impl ConnectionTrait,
    before: DateTime<Utc>,
) -> AppResult<u64> {
    delete_where::<password_reset::Entity>(conn, password_reset::Column::ExpiresAt.lt(before)).await
}
