//! Stock in bulk, for imports and exports: levels, batches and movements of many products in a
//! few statements (PostgreSQL: `unnest` of one array per column; SQLite: multi-row `INSERT`s
//! chunked to the bind limits), and the joined rows an export streams.

use chrono::{DateTime, NaiveDate, Utc};
use depot_domain::stock::BatchStatus;
use depot_domain::{AppError, AppResult, ErrorCode};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};
use uuid::Uuid;

use super::unnest;
use crate::entity::{batch, location, product, stock_level, stock_movement};
use crate::error::{db_error, is_insufficient_privilege};
use crate::repo::{IN_LIST, insert_all, rows_per_statement, upsert_all};

/// Creates the missing level rows of these (product, location) pairs, at zero.
pub async fn ensure_levels(
    conn: &impl ConnectionTrait,
    pairs: &[(Uuid, Uuid)],
    now: DateTime<Utc>,
) -> AppResult<()> {
    let zero = |&(product_id, location_id): &(Uuid, Uuid)| stock_level::Model {
        product_id,
        location_id,
        on_hand: 0,
        reserved: 0,
        updated_at: now,
    };
    if is_postgres(conn) {
        let rows: Vec<stock_level::Model> = pairs.iter().map(zero).collect();
        return unnest::insert(
            conn,
            "stock_levels",
            LEVEL_COLUMNS,
            &rows,
            "ON CONFLICT (product_id, location_id) DO NOTHING",
        )
        .await;
    }
    let conflict = OnConflict::columns([
        stock_level::Column::ProductId,
        stock_level::Column::LocationId,
    ])
    .do_nothing()
    .to_owned();
    for chunk in pairs.chunks(rows_per_statement::<stock_level::Entity>()) {
        let rows: Vec<stock_level::ActiveModel> = chunk
            .iter()
            .map(|pair| stock_level::ActiveModel::from(zero(pair)))
            .collect();
        upsert_all(conn, rows, Some(conflict.clone())).await?;
    }
    Ok(())
}

fn is_postgres(conn: &impl ConnectionTrait) -> bool {
    conn.get_database_backend() == DbBackend::Postgres
}

const LEVEL_KEYS: &[unnest::Column<stock_level::Model>] = &[
    ("product_id", "uuid", |l| unnest::uuid(Some(l.product_id))),
    ("location_id", "uuid", |l| unnest::uuid(Some(l.location_id))),
];

const LEVEL_VALUES: &[unnest::Column<stock_level::Model>] = &[
    ("on_hand", "bigint", |l| unnest::int(Some(l.on_hand))),
    ("reserved", "bigint", |l| unnest::int(Some(l.reserved))),
    ("updated_at", "timestamptz", |l| {
        unnest::instant(Some(l.updated_at))
    }),
];

const LEVEL_COLUMNS: &[unnest::Column<stock_level::Model>] = &[
    LEVEL_KEYS[0],
    LEVEL_KEYS[1],
    LEVEL_VALUES[0],
    LEVEL_VALUES[1],
    LEVEL_VALUES[2],
];

const BATCH_COLUMNS: &[unnest::Column<batch::Model>] = &[
    ("id", "uuid", |b| unnest::uuid(Some(b.id))),
    ("product_id", "uuid", |b| unnest::uuid(Some(b.product_id))),
    ("location_id", "uuid", |b| unnest::uuid(Some(b.location_id))),
    ("lot", "text", |b| unnest::text(b.lot.as_deref())),
    ("expiry", "date", |b| unnest::day(b.expiry)),
    ("received_at", "timestamptz", |b| {
        unnest::instant(Some(b.received_at))
    }),
    ("unit_cost", "bigint", |b| unnest::int(b.unit_cost)),
    ("currency", "text", |b| unnest::text(b.currency.as_deref())),
    ("quantity", "bigint", |b| unnest::int(Some(b.quantity))),
    ("reserved", "bigint", |b| unnest::int(Some(b.reserved))),
    ("status", "text", |b| unnest::text(Some(&b.status))),
    ("created_at", "timestamptz", |b| {
        unnest::instant(Some(b.created_at))
    }),
    ("updated_at", "timestamptz", |b| {
        unnest::instant(Some(b.updated_at))
    }),
    ("closed_at", "timestamptz", |b| unnest::instant(b.closed_at)),
];

const MOVEMENT_COLUMNS: &[unnest::Column<stock_movement::Model>] = &[
    ("id", "uuid", |m| unnest::uuid(Some(m.id))),
    ("product_id", "uuid", |m| unnest::uuid(Some(m.product_id))),
    ("location_id", "uuid", |m| unnest::uuid(Some(m.location_id))),
    ("batch_id", "uuid", |m| unnest::uuid(Some(m.batch_id))),
    ("kind", "text", |m| unnest::text(Some(&m.kind))),
    ("quantity", "bigint", |m| unnest::int(Some(m.quantity))),
    ("balance_after", "bigint", |m| {
        unnest::int(Some(m.balance_after))
    }),
    ("reason", "text", |m| unnest::text(m.reason.as_deref())),
    ("note", "text", |m| unnest::text(m.note.as_deref())),
    ("actor_id", "uuid", |m| unnest::uuid(m.actor_id)),
    ("actor_name", "text", |m| {
        unnest::text(m.actor_name.as_deref())
    }),
    ("reference_type", "text", |m| {
        unnest::text(m.reference_type.as_deref())
    }),
    ("reference_id", "uuid", |m| unnest::uuid(m.reference_id)),
    ("request_id", "text", |m| {
        unnest::text(m.request_id.as_deref())
    }),
    ("created_at", "timestamptz", |m| {
        unnest::instant(Some(m.created_at))
    }),
];

/// Serialises stock imports with each other until the transaction ends (an advisory lock on
/// PostgreSQL; SQLite's single writer does it already): a second opening-stock import of the
/// same file then sees what the first wrote, and is refused.
pub async fn lock_stock_imports(conn: &impl ConnectionTrait) -> AppResult<()> {
    if is_postgres(conn) {
        conn.execute_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT pg_advisory_xact_lock({STOCK_IMPORTS_LOCK_KEY})"),
        ))
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// Arbitrary but fixed key of the advisory lock taken by [`lock_stock_imports`].
const STOCK_IMPORTS_LOCK_KEY: i64 = 0x6465_706f_7473_746b;

/// How the rows of a bulk write are checked against the rows they name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowChecks {
    /// Each written row, by the database's own foreign-key check (SQLite, or a PostgreSQL
    /// role that may not switch those checks off).
    EachRow,
    /// Once for all of them, by [`hold_references`]: PostgreSQL's per-row checks are off in
    /// this transaction until [`check_each_row`].
    Held,
}

/// Before a bulk write (in a transaction) of levels, batches and movements of `products` at
/// `locations` — movements only of batches the same write inserts, or holds under its level
/// locks:
///
/// - holds every one of those products and locations `FOR KEY SHARE` until the transaction
///   ends — the lock PostgreSQL's foreign-key check takes, there once per written row and
///   key — so none of them can be deleted before the commit; when one does not exist, the
///   write is refused with `db.reference_violation`, as a per-row check would refuse it;
/// - with all of them held, the per-row checks can prove nothing more. Where the connection's
///   role may (a superuser, or `GRANT SET ON PARAMETER session_replication_role`), they are
///   switched off for this transaction with `session_replication_role = replica`, the switch
///   `pg_restore --disable-triggers` uses: on an opening-stock file they are four checks per
///   row, about 60 % of PostgreSQL's time for it. Any other role keeps them ([`RowChecks::EachRow`]).
///
/// The ledger's and the audit log's append-only triggers fire in replica mode too (migration
/// `append_only_always`). SQLite keeps its per-row checks.
pub async fn hold_references(
    conn: &impl ConnectionTrait,
    products: &[Uuid],
    locations: &[Uuid],
) -> AppResult<RowChecks> {
    if !is_postgres(conn) {
        return Ok(RowChecks::EachRow);
    }
    hold(conn, "products", products).await?;
    hold(conn, "locations", locations).await?;
    // A role without the right gets an error, which would abort the whole transaction: the
    // switch is tried in a savepoint of its own.
    run(conn, "SAVEPOINT row_checks").await?;
    match conn
        .execute_unprepared("SET LOCAL session_replication_role = replica")
        .await
    {
        Ok(_) => {
            run(conn, "RELEASE SAVEPOINT row_checks").await?;
            Ok(RowChecks::Held)
        }
        Err(e) if is_insufficient_privilege(&e) => {
            run(conn, "ROLLBACK TO SAVEPOINT row_checks").await?;
            run(conn, "RELEASE SAVEPOINT row_checks").await?;
            tracing::info!(
                "the database role may not set session_replication_role: PostgreSQL checks \
                 each row this bulk write names (slower; docs/operations.md, Database role)"
            );
            Ok(RowChecks::EachRow)
        }
        Err(e) => Err(db_error(e)),
    }
}

/// Turns PostgreSQL's per-row foreign-key checks back on after a write [`hold_references`]
/// held (what the transaction writes next is checked row by row again).
pub async fn check_each_row(conn: &impl ConnectionTrait, checks: RowChecks) -> AppResult<()> {
    match checks {
        RowChecks::EachRow => Ok(()),
        RowChecks::Held => run(conn, "SET LOCAL session_replication_role TO DEFAULT").await,
    }
}

/// Rows held by one statement of [`hold`].
const HOLD_CHUNK: usize = 5_000;

/// Locks the rows of `table` with these ids `FOR KEY SHARE`, in id order; fails when one does
/// not exist.
async fn hold(conn: &impl ConnectionTrait, table: &'static str, ids: &[Uuid]) -> AppResult<()> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let sql = format!(
        "SELECT count(*) AS held FROM \
         (SELECT id FROM {table} WHERE id = ANY($1) ORDER BY id FOR KEY SHARE) AS h"
    );
    for chunk in sorted.chunks(HOLD_CHUNK) {
        let ids: Vec<Value> = chunk.iter().map(|id| Value::Uuid(Some(*id))).collect();
        let ids = Value::Array(Value::Uuid(None).array_type(), Some(Box::new(ids)));
        let row = conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql.as_str(),
                [ids],
            ))
            .await
            .map_err(db_error)?;
        let held: i64 = match row {
            Some(row) => row.try_get("", "held").map_err(db_error)?,
            None => 0,
        };
        if usize::try_from(held).ok() != Some(chunk.len()) {
            return Err(AppError::new(
                ErrorCode::DbReferenceViolation,
                "a referenced record does not exist or is still in use",
            )
            .with_details(serde_json::json!({ "table": table })));
        }
    }
    Ok(())
}

async fn run(conn: &impl ConnectionTrait, sql: &str) -> AppResult<()> {
    conn.execute_unprepared(sql).await.map_err(db_error)?;
    Ok(())
}

/// The level rows of these products (at every location) in (product, location) order; with
/// `lock`, locked until the transaction ends — in that order, the one every stock change
/// locks in, so an import and a change never wait on each other in a circle.
pub async fn levels_of_products(
    conn: &impl ConnectionTrait,
    products: &[Uuid],
    lock: bool,
) -> AppResult<Vec<stock_level::Model>> {
    let mut sorted = products.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut found = Vec::new();
    for chunk in sorted.chunks(IN_LIST) {
        let mut select = stock_level::Entity::find()
            .filter(stock_level::Column::ProductId.is_in(chunk.iter().copied()))
            .order_by_asc(stock_level::Column::ProductId)
            .order_by_asc(stock_level::Column::LocationId);
        if lock {
            select = select.lock_exclusive();
        }
        found.extend(select.all(conn).await.map_err(db_error)?);
    }
    Ok(found)
}

/// Writes these levels' quantities (the rows exist).
pub async fn set_levels(
    conn: &impl ConnectionTrait,
    rows: Vec<stock_level::Model>,
) -> AppResult<()> {
    if is_postgres(conn) {
        return unnest::update(conn, "stock_levels", LEVEL_KEYS, LEVEL_VALUES, &rows).await;
    }
    let conflict = OnConflict::columns([
        stock_level::Column::ProductId,
        stock_level::Column::LocationId,
    ])
    .update_columns([
        stock_level::Column::OnHand,
        stock_level::Column::Reserved,
        stock_level::Column::UpdatedAt,
    ])
    .to_owned();
    upsert_all(
        conn,
        rows.into_iter().map(stock_level::ActiveModel::from),
        Some(conflict),
    )
    .await
}

/// Adds each row's `on_hand` to its level, creating the level where there is none (a level
/// created meanwhile by someone else keeps what it holds).
pub async fn add_to_levels(
    conn: &impl ConnectionTrait,
    rows: Vec<stock_level::Model>,
) -> AppResult<()> {
    const ADD: &str = "ON CONFLICT (product_id, location_id) DO UPDATE SET \
        on_hand = stock_levels.on_hand + excluded.on_hand, updated_at = excluded.updated_at";
    if is_postgres(conn) {
        return unnest::insert(conn, "stock_levels", LEVEL_COLUMNS, &rows, ADD).await;
    }
    let conflict = OnConflict::columns([
        stock_level::Column::ProductId,
        stock_level::Column::LocationId,
    ])
    .value(
        stock_level::Column::OnHand,
        Expr::cust("stock_levels.on_hand + excluded.on_hand"),
    )
    .update_column(stock_level::Column::UpdatedAt)
    .to_owned();
    upsert_all(
        conn,
        rows.into_iter().map(stock_level::ActiveModel::from),
        Some(conflict),
    )
    .await
}

/// The open batches of these products (at every location). Read after their levels were
/// locked, by a statement of its own.
pub async fn open_batches_of_products(
    conn: &impl ConnectionTrait,
    products: &[Uuid],
) -> AppResult<Vec<batch::Model>> {
    let mut found = Vec::new();
    for chunk in products.chunks(IN_LIST) {
        found.extend(
            batch::Entity::find()
                .filter(batch::Column::ProductId.is_in(chunk.iter().copied()))
                .filter(batch::Column::Status.eq(BatchStatus::Open.as_str()))
                .order_by_asc(batch::Column::Id)
                .all(conn)
                .await
                .map_err(db_error)?,
        );
    }
    Ok(found)
}

/// Which of these products have (or had) any batch.
pub async fn products_with_batches(
    conn: &impl ConnectionTrait,
    products: &[Uuid],
) -> AppResult<Vec<Uuid>> {
    let mut found = Vec::new();
    for chunk in products.chunks(IN_LIST) {
        found.extend(
            batch::Entity::find()
                .select_only()
                .column(batch::Column::ProductId)
                .distinct()
                .filter(batch::Column::ProductId.is_in(chunk.iter().copied()))
                .into_tuple::<Uuid>()
                .all(conn)
                .await
                .map_err(db_error)?,
        );
    }
    Ok(found)
}

/// Inserts new batches.
pub async fn insert_batches(conn: &impl ConnectionTrait, rows: Vec<batch::Model>) -> AppResult<()> {
    if is_postgres(conn) {
        return unnest::insert(conn, "batches", BATCH_COLUMNS, &rows, "").await;
    }
    insert_all(conn, rows.into_iter().map(batch::ActiveModel::from)).await
}

/// Writes changed batches (quantity, state, cost), new ones inserted.
pub async fn save_batches(conn: &impl ConnectionTrait, rows: Vec<batch::Model>) -> AppResult<()> {
    const CHANGED: &str = "ON CONFLICT (id) DO UPDATE SET quantity = excluded.quantity, \
        reserved = excluded.reserved, status = excluded.status, unit_cost = excluded.unit_cost, \
        currency = excluded.currency, closed_at = excluded.closed_at, \
        updated_at = excluded.updated_at";
    if is_postgres(conn) {
        return unnest::insert(conn, "batches", BATCH_COLUMNS, &rows, CHANGED).await;
    }
    let conflict = OnConflict::column(batch::Column::Id)
        .update_columns([
            batch::Column::Quantity,
            batch::Column::Reserved,
            batch::Column::Status,
            batch::Column::UnitCost,
            batch::Column::Currency,
            batch::Column::ClosedAt,
            batch::Column::UpdatedAt,
        ])
        .to_owned();
    upsert_all(
        conn,
        rows.into_iter().map(batch::ActiveModel::from),
        Some(conflict),
    )
    .await
}

/// Appends movements, many per statement.
pub async fn append_movements(
    conn: &impl ConnectionTrait,
    rows: Vec<stock_movement::Model>,
) -> AppResult<()> {
    if is_postgres(conn) {
        return unnest::insert(conn, "stock_movements", MOVEMENT_COLUMNS, &rows, "").await;
    }
    super::ledger::append(conn, rows).await
}

/// An open batch as an export writes it: with its product's SKU and unit and its location's
/// code.
#[derive(Debug, Clone, FromQueryResult)]
pub struct BatchLine {
    pub id: Uuid,
    pub sku: String,
    pub location_code: String,
    pub lot: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub quantity: i64,
    pub unit_cost: Option<i64>,
    pub currency: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// Open batches in id order after `after`, `limit` at a time.
pub async fn batch_lines(
    conn: &impl ConnectionTrait,
    after: Option<Uuid>,
    limit: u64,
) -> AppResult<Vec<BatchLine>> {
    let mut q = Query::select();
    q.column((batch::Entity, batch::Column::Id))
        .column((product::Entity, product::Column::Sku))
        .expr_as(
            Expr::col((location::Entity, location::Column::Code)),
            "location_code",
        )
        .columns([
            (batch::Entity, batch::Column::Lot),
            (batch::Entity, batch::Column::Expiry),
            (batch::Entity, batch::Column::Quantity),
            (batch::Entity, batch::Column::UnitCost),
            (batch::Entity, batch::Column::Currency),
            (batch::Entity, batch::Column::ReceivedAt),
        ])
        .from(batch::Entity)
        .inner_join(
            product::Entity,
            Expr::col((product::Entity, product::Column::Id))
                .equals((batch::Entity, batch::Column::ProductId)),
        )
        .inner_join(
            location::Entity,
            Expr::col((location::Entity, location::Column::Id))
                .equals((batch::Entity, batch::Column::LocationId)),
        )
        .and_where(Expr::col((batch::Entity, batch::Column::Status)).eq(BatchStatus::Open.as_str()))
        .order_by((batch::Entity, batch::Column::Id), sea_orm::Order::Asc)
        .limit(limit);
    if let Some(after) = after {
        q.and_where(Expr::col((batch::Entity, batch::Column::Id)).gt(after));
    }
    let statement = conn.get_database_backend().build(&q);
    BatchLine::find_by_statement(statement)
        .all(conn)
        .await
        .map_err(db_error)
}

/// A level as an export writes it.
#[derive(Debug, Clone, FromQueryResult)]
pub struct LevelLine {
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub sku: String,
    pub location_code: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub reorder_point: Option<i64>,
}

/// Levels in (product, location) order after `after`, `limit` at a time.
pub async fn level_lines(
    conn: &impl ConnectionTrait,
    after: Option<(Uuid, Uuid)>,
    limit: u64,
) -> AppResult<Vec<LevelLine>> {
    use stock_level::Column as L;
    let mut q = Query::select();
    q.columns([
        (stock_level::Entity, L::ProductId),
        (stock_level::Entity, L::LocationId),
        (stock_level::Entity, L::OnHand),
        (stock_level::Entity, L::Reserved),
    ])
    .column((product::Entity, product::Column::Sku))
    .column((product::Entity, product::Column::ReorderPoint))
    .expr_as(
        Expr::col((location::Entity, location::Column::Code)),
        "location_code",
    )
    .from(stock_level::Entity)
    .inner_join(
        product::Entity,
        Expr::col((product::Entity, product::Column::Id))
            .equals((stock_level::Entity, L::ProductId)),
    )
    .inner_join(
        location::Entity,
        Expr::col((location::Entity, location::Column::Id))
            .equals((stock_level::Entity, L::LocationId)),
    )
    .order_by((stock_level::Entity, L::ProductId), sea_orm::Order::Asc)
    .order_by((stock_level::Entity, L::LocationId), sea_orm::Order::Asc)
    .limit(limit);
    if let Some((product, location)) = after {
        q.cond_where(
            Condition::any()
                .add(Expr::col((stock_level::Entity, L::ProductId)).gt(product))
                .add(
                    Expr::col((stock_level::Entity, L::ProductId))
                        .eq(product)
                        .and(Expr::col((stock_level::Entity, L::LocationId)).gt(location)),
                ),
        );
    }
    let statement = conn.get_database_backend().build(&q);
    LevelLine::find_by_statement(statement)
        .all(conn)
        .await
        .map_err(db_error)
}
