//! Sessions (one per signed-in device), their refresh tokens, and the access-token denylist.
//!
//! A session is a refresh-token *family*: each refresh rotates the token, leaving the old one
//! `rotated`. Presenting a rotated token again is reuse — the session and every token of it
//! are revoked.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::state::RefreshTokenStatus;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    Value,
};
use uuid::Uuid;

use super::{delete_where, insert_row};
use crate::entity::{refresh_token, revoked_token, session};
use crate::error::db_error;
use crate::keyset::{Direction, page_after};

pub async fn insert(conn: &impl ConnectionTrait, s: session::Model) -> AppResult<session::Model> {
    s.into_active_model()
        .reset_all()
        .insert(conn)
        .await
        .map_err(db_error)
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<session::Model>> {
    session::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)
}

/// A user's sessions newest first (`None` lists everyone's); revoked ones only with `all`.
pub async fn list(
    conn: &impl ConnectionTrait,
    user_id: Option<Uuid>,
    include_revoked: bool,
    page: &PageRequest,
) -> AppResult<Page<session::Model>> {
    let cursor: Option<(DateTime<Utc>, Uuid)> = page.decode_cursor()?;
    let mut select = session::Entity::find();
    if let Some(user_id) = user_id {
        select = select.filter(session::Column::UserId.eq(user_id));
    }
    if !include_revoked {
        select = select.filter(session::Column::RevokedAt.is_null());
    }
    let rows = page_after(
        select,
        session::Column::CreatedAt,
        session::Column::Id,
        Direction::Desc,
        cursor.map(|(at, id)| (Value::from(at), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    Page::from_overfetch(rows, page, |s| (s.created_at, s.id))
}

/// Records use of the session: last used now, idle expiry pushed out.
pub async fn touch(
    conn: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
    idle_expires_at: DateTime<Utc>,
    ip: Option<String>,
) -> AppResult<()> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::LastUsedAt, Expr::value(now))
        .col_expr(session::Column::IdleExpiresAt, Expr::value(idle_expires_at))
        .filter(session::Column::Id.eq(id));
    if let Some(ip) = ip {
        update = update.col_expr(session::Column::Ip, Expr::value(ip));
    }
    update.exec(conn).await.map_err(db_error)?;
    Ok(())
}

pub async fn set_csrf_nonce(conn: &impl ConnectionTrait, id: Uuid, nonce: &str) -> AppResult<()> {
    session::Entity::update_many()
        .col_expr(session::Column::CsrfNonce, Expr::value(nonce))
        .filter(session::Column::Id.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Revokes the given live sessions and every token of them; returns the ids actually revoked.
async fn revoke_where(
    conn: &impl ConnectionTrait,
    filter: sea_orm::Condition,
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<Vec<Uuid>> {
    let live: Vec<Uuid> = session::Entity::find()
        .filter(filter)
        .filter(session::Column::RevokedAt.is_null())
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|s| s.id)
        .collect();
    if live.is_empty() {
        return Ok(live);
    }
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedReason, Expr::value(reason))
        .filter(session::Column::Id.is_in(live.iter().copied()))
        .filter(session::Column::RevokedAt.is_null())
        .exec(conn)
        .await
        .map_err(db_error)?;
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::Status,
            Expr::value(RefreshTokenStatus::Revoked.as_str()),
        )
        .filter(refresh_token::Column::SessionId.is_in(live.iter().copied()))
        .filter(refresh_token::Column::Status.eq(RefreshTokenStatus::Active.as_str()))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(live)
}

pub async fn revoke(
    conn: &impl ConnectionTrait,
    id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let cond = sea_orm::Condition::all().add(session::Column::Id.eq(id));
    Ok(!revoke_where(conn, cond, reason, now).await?.is_empty())
}

/// Revokes every live session of the user except `keep`.
pub async fn revoke_all_of_user(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<Vec<Uuid>> {
    let mut cond = sea_orm::Condition::all().add(session::Column::UserId.eq(user_id));
    if let Some(keep) = keep {
        cond = cond.add(session::Column::Id.ne(keep));
    }
    revoke_where(conn, cond, reason, now).await
}

pub async fn insert_refresh_token(
    conn: &impl ConnectionTrait,
    token_hash: String,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let row = refresh_token::Model {
        token_hash,
        session_id,
        status: RefreshTokenStatus::Active.as_str().into(),
        created_at: now,
        used_at: None,
    };
    insert_row(conn, row.into_active_model()).await
}

pub async fn find_refresh_token(
    conn: &impl ConnectionTrait,
    token_hash: &str,
) -> AppResult<Option<refresh_token::Model>> {
    refresh_token::Entity::find_by_id(token_hash.to_owned())
        .one(conn)
        .await
        .map_err(db_error)
}

/// Marks an active token rotated. `false` when it was not active any more (a concurrent
/// refresh won, or it was revoked): the caller treats that as reuse.
pub async fn rotate_refresh_token(
    conn: &impl ConnectionTrait,
    token_hash: &str,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let result = refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::Status,
            Expr::value(RefreshTokenStatus::Rotated.as_str()),
        )
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::TokenHash.eq(token_hash))
        .filter(refresh_token::Column::Status.eq(RefreshTokenStatus::Active.as_str()))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected == 1)
}

/// Denylists an access token id until it would have expired anyway.
pub async fn deny_access_token(
    conn: &impl ConnectionTrait,
    jti: &str,
    expires_at: DateTime<Utc>,
) -> AppResult<()> {
    revoked_token::Entity::insert(
        revoked_token::Model {
            jti: jti.to_owned(),
            expires_at,
        }
        .into_active_model(),
    )
    .on_conflict_do_nothing_on([revoked_token::Column::Jti])
    .exec(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Spends a single-use token (an MFA challenge): true the first time its id is seen, false
/// ever after (until it has expired anyway and housekeeping forgets it).
pub async fn spend_token_once(
    conn: &impl ConnectionTrait,
    jti: &str,
    expires_at: DateTime<Utc>,
) -> AppResult<bool> {
    super::insert_if_absent(
        conn,
        revoked_token::Model {
            jti: jti.to_owned(),
            expires_at,
        }
        .into_active_model(),
        [revoked_token::Column::Jti],
    )
    .await
}

pub async fn is_access_token_denied(conn: &impl ConnectionTrait, jti: &str) -> AppResult<bool> {
    Ok(revoked_token::Entity::find_by_id(jti.to_owned())
        .one(conn)
        .await
        .map_err(db_error)?
        .is_some())
}

/// Forgets denylist entries whose tokens have expired (housekeeping).
pub async fn purge_expired_denials(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    delete_where::<revoked_token::Entity>(conn, revoked_token::Column::ExpiresAt.lt(now)).await
}

/// Whether `user_id` has signed in before, and whether from this device: the same device id
/// when the client names one, else the same user agent.
pub async fn device_history(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    device_id: Option<&str>,
    user_agent: Option<&str>,
) -> AppResult<(bool, bool)> {
    let of_user = || session::Entity::find().filter(session::Column::UserId.eq(user_id));
    let any = of_user().one(conn).await.map_err(db_error)?.is_some();
    if !any {
        return Ok((false, false));
    }
    let same = match (device_id, user_agent) {
        (Some(device), _) => of_user().filter(session::Column::DeviceId.eq(device)),
        (None, Some(agent)) => of_user().filter(session::Column::UserAgent.eq(agent)),
        (None, None) => of_user()
            .filter(session::Column::DeviceId.is_null())
            .filter(session::Column::UserAgent.is_null()),
    };
    Ok((true, same.one(conn).await.map_err(db_error)?.is_some()))
}

/// Of `sessions`, those still live: not revoked, not past their absolute expiry, and their
/// user active. Two queries per thousand sessions, whatever else is cached.
pub async fn live_among(
    conn: &impl ConnectionTrait,
    sessions: &[Uuid],
    now: DateTime<Utc>,
) -> AppResult<std::collections::HashSet<Uuid>> {
    let open = super::find_in(
        conn,
        || {
            session::Entity::find()
                .filter(session::Column::RevokedAt.is_null())
                .filter(session::Column::AbsoluteExpiresAt.gt(now))
        },
        session::Column::Id,
        sessions,
    )
    .await?;
    let users: Vec<Uuid> = open.iter().map(|s| s.user_id).collect();
    let active: std::collections::HashSet<Uuid> = super::users::active_among(conn, &users)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    Ok(open
        .into_iter()
        .filter(|s| active.contains(&s.user_id))
        .map(|s| s.id)
        .collect())
}
