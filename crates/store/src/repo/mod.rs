//! Repositories: one module per aggregate. Functions take any connection (`&DatabaseTransaction`
//! inside a unit of work, or the reader) and return application errors.

pub mod alerts;
pub mod audit;
pub mod categories;
pub mod counts;
pub mod credentials;
pub mod customers;
pub mod emails;
pub mod idempotency;
pub mod imports;
pub mod jobs;
pub mod locations;
pub mod notifications;
pub mod outbox;
pub mod payments;
pub mod processed;
pub mod products;
pub mod purchase_orders;
pub mod report_rows;
pub mod reports;
pub mod roles;
pub mod sales_orders;
pub mod schedule;
pub mod sessions;
pub mod stock;
pub mod suppliers;
pub mod transfers;
pub mod users;
pub mod webhooks;
pub mod ws_tickets;

use depot_domain::AppResult;
use sea_orm::sea_query::{IntoCondition, IntoIden, OnConflict};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter,
};

use crate::error::db_error;

/// Inserts `row` unless one with the same `unique` columns exists. Returns whether it was
/// inserted.
pub(crate) async fn insert_if_absent<A, C>(
    conn: &impl ConnectionTrait,
    row: A,
    unique: impl IntoIterator<Item = C>,
) -> AppResult<bool>
where
    A: ActiveModelTrait,
    C: IntoIden,
{
    let inserted = A::Entity::insert(row)
        .on_conflict(OnConflict::columns(unique).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(inserted == 1)
}

/// Inserts `row` (no returning clause: the caller already knows its key).
pub(crate) async fn insert_row<A: ActiveModelTrait>(
    conn: &impl ConnectionTrait,
    row: A,
) -> AppResult<()> {
    A::Entity::insert(row)
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Replaces the rows matching `of` with `rows`: deletes them, then inserts the new set.
pub(crate) async fn replace_rows<A>(
    conn: &impl ConnectionTrait,
    of: impl IntoCondition,
    rows: impl IntoIterator<Item = A>,
) -> AppResult<()>
where
    A: ActiveModelTrait,
{
    A::Entity::delete_many()
        .filter(of)
        .exec(conn)
        .await
        .map_err(db_error)?;
    let rows: Vec<A> = rows.into_iter().collect();
    if rows.is_empty() {
        return Ok(());
    }
    A::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Deletes the rows of `E` matching `filter`. Returns how many.
pub(crate) async fn delete_where<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    filter: impl IntoCondition,
) -> AppResult<u64> {
    Ok(E::delete_many()
        .filter(filter)
        .exec(conn)
        .await
        .map_err(db_error)?
        .rows_affected)
}

/// Inserts a whole row; returns it as stored.
pub(crate) async fn insert_model<A>(
    conn: &impl ConnectionTrait,
    row: <A::Entity as EntityTrait>::Model,
) -> AppResult<<A::Entity as EntityTrait>::Model>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
{
    row.into_active_model()
        .reset_all()
        .insert(conn)
        .await
        .map_err(db_error)
}

/// Writes every column of an existing row (found by its primary key); returns it as stored.
pub(crate) async fn save_model<A>(
    conn: &impl ConnectionTrait,
    row: <A::Entity as EntityTrait>::Model,
) -> AppResult<<A::Entity as EntityTrait>::Model>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
{
    row.into_active_model()
        .reset_all()
        .update(conn)
        .await
        .map_err(db_error)
}

/// Pairs each head row with its lines (already in line order), keeping the heads' order.
pub(crate) fn attach<H, L>(
    heads: Vec<H>,
    lines: Vec<L>,
    head_id: impl Fn(&H) -> uuid::Uuid,
    parent: impl Fn(&L) -> uuid::Uuid,
) -> Vec<(H, Vec<L>)> {
    let mut by_parent: std::collections::HashMap<uuid::Uuid, Vec<L>> =
        std::collections::HashMap::new();
    for line in lines {
        by_parent.entry(parent(&line)).or_default().push(line);
    }
    heads
        .into_iter()
        .map(|head| {
            let mine = by_parent.remove(&head_id(&head)).unwrap_or_default();
            (head, mine)
        })
        .collect()
}

/// Most bound values one statement carries (SQLite allows 32,766, PostgreSQL 65,535).
const MAX_BIND_VALUES: usize = 30_000;

/// How many rows of `E` one multi-row statement may carry.
pub(crate) fn rows_per_statement<E: EntityTrait>() -> usize {
    use sea_orm::Iterable;
    (MAX_BIND_VALUES / E::Column::iter().count().max(1)).clamp(1, 1_000)
}

/// Inserts many rows in as few statements as the bind limits allow (rows are converted as each
/// statement is built, never all at once).
pub(crate) async fn insert_all<A>(
    conn: &impl ConnectionTrait,
    rows: impl IntoIterator<Item = A>,
) -> AppResult<()>
where
    A: ActiveModelTrait,
{
    upsert_all(conn, rows, None).await
}

/// Inserts many rows; with `on_conflict`, a row whose key exists updates (or skips) as it says.
pub(crate) async fn upsert_all<A>(
    conn: &impl ConnectionTrait,
    rows: impl IntoIterator<Item = A>,
    on_conflict: Option<OnConflict>,
) -> AppResult<()>
where
    A: ActiveModelTrait,
{
    let per = rows_per_statement::<A::Entity>();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per).collect();
        let mut insert = A::Entity::insert_many(chunk);
        if let Some(conflict) = &on_conflict {
            insert = insert.on_conflict(conflict.clone());
        }
        insert
            .exec_without_returning(conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Writes rows by their key `id`: new ones inserted, existing ones get the `update` columns.
pub(crate) async fn upsert_by_id<A, C>(
    conn: &impl ConnectionTrait,
    rows: impl IntoIterator<Item = A>,
    id: C,
    update: &[C],
) -> AppResult<()>
where
    A: ActiveModelTrait,
    C: IntoIden + Copy,
{
    let conflict = OnConflict::column(id)
        .update_columns(update.iter().copied())
        .to_owned();
    upsert_all(conn, rows, Some(conflict)).await
}

/// Most values one `IN (…)` list of a lookup carries.
pub(crate) const IN_LIST: usize = 1_000;

/// The rows `select` finds whose `column` is one of `values`, looked up `IN_LIST` at a time.
pub(crate) async fn find_in<E, V>(
    conn: &impl ConnectionTrait,
    select: impl Fn() -> sea_orm::Select<E>,
    column: E::Column,
    values: &[V],
) -> AppResult<Vec<E::Model>>
where
    E: EntityTrait,
    V: Into<sea_orm::Value> + Clone,
{
    use sea_orm::ColumnTrait;
    let mut found = Vec::new();
    for chunk in values.chunks(IN_LIST) {
        found.extend(
            select()
                .filter(column.is_in(chunk.iter().cloned()))
                .all(conn)
                .await
                .map_err(db_error)?,
        );
    }
    Ok(found)
}

/// Rows of `E` after `after` in `key` order (a unique column), `limit` at a time: the pages of
/// an export.
pub(crate) async fn page_by_key<E, V>(
    conn: &impl ConnectionTrait,
    key: E::Column,
    after: Option<V>,
    limit: u64,
) -> AppResult<Vec<E::Model>>
where
    E: EntityTrait,
    V: Into<sea_orm::Value>,
{
    use sea_orm::{ColumnTrait, QueryOrder, QuerySelect};
    let mut select = E::find();
    if let Some(after) = after {
        select = select.filter(key.gt(after));
    }
    select
        .order_by_asc(key)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}

/// The columns of a table whose rows are work claimed under a lease (emails to send, webhook
/// deliveries to make).
pub(crate) struct Lease<C> {
    pub id: C,
    pub status: C,
    pub next_attempt_at: C,
    pub locked_until: C,
    pub attempts: C,
}

/// Claims up to `limit` due rows — in a `waiting` status and due, or `working` with a lease
/// that expired (its worker crashed) — for one worker until `locked_until`, counting an
/// attempt for each. A conditional update per row decides, so with several workers on
/// PostgreSQL each row goes to one. Returns the claimed ids, oldest due first.
pub(crate) async fn claim_leased<E>(
    conn: &impl ConnectionTrait,
    lease: &Lease<E::Column>,
    waiting: &[&str],
    working: &str,
    limit: u64,
    now: chrono::DateTime<chrono::Utc>,
    locked_until: chrono::DateTime<chrono::Utc>,
) -> AppResult<Vec<uuid::Uuid>>
where
    E: EntityTrait,
    E::Model: sea_orm::ModelTrait<Entity = E>,
{
    use sea_orm::sea_query::{Expr, ExprTrait};
    use sea_orm::{ColumnTrait, Condition, QueryOrder, QuerySelect};
    let due = Condition::any()
        .add(
            Condition::all()
                .add(lease.status.is_in(waiting.iter().copied()))
                .add(lease.next_attempt_at.lte(now)),
        )
        .add(
            Condition::all()
                .add(lease.status.eq(working))
                .add(lease.locked_until.lt(now)),
        );
    let candidates: Vec<uuid::Uuid> = E::find()
        .select_only()
        .column(lease.id)
        .filter(due.clone())
        .order_by_asc(lease.next_attempt_at)
        .order_by_asc(lease.id)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await
        .map_err(db_error)?;
    let mut claimed = Vec::with_capacity(candidates.len());
    for id in candidates {
        let result = E::update_many()
            .col_expr(lease.status, Expr::value(working))
            .col_expr(lease.locked_until, Expr::value(locked_until))
            .col_expr(lease.attempts, Expr::col(lease.attempts).add(1))
            .filter(lease.id.eq(id))
            .filter(due.clone())
            .exec(conn)
            .await
            .map_err(db_error)?;
        if result.rows_affected == 1 {
            claimed.push(id);
        }
    }
    Ok(claimed)
}
