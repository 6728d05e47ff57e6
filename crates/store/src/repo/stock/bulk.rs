//! Stock in bulk, for imports and exports: levels and batches of many products in a few
//! statements (chunked to the bind limits), and the joined rows an export streams.

use chrono::{DateTime, NaiveDate, Utc};
use depot_domain::AppResult;
use depot_domain::stock::BatchStatus;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::entity::{batch, location, product, stock_level};
use crate::error::db_error;
use crate::repo::{IN_LIST, insert_all, rows_per_statement, upsert_all};

/// Creates the missing level rows of these (product, location) pairs, at zero.
pub async fn ensure_levels(
    conn: &impl ConnectionTrait,
    pairs: &[(Uuid, Uuid)],
    now: DateTime<Utc>,
) -> AppResult<()> {
    let conflict = OnConflict::columns([
        stock_level::Column::ProductId,
        stock_level::Column::LocationId,
    ])
    .do_nothing()
    .to_owned();
    for chunk in pairs.chunks(rows_per_statement::<stock_level::Entity>()) {
        let rows: Vec<stock_level::ActiveModel> = chunk
            .iter()
            .map(|pair| {
                stock_level::ActiveModel::from(stock_level::Model {
                    product_id: pair.0,
                    location_id: pair.1,
                    on_hand: 0,
                    reserved: 0,
                    updated_at: now,
                })
            })
            .collect();
        upsert_all(conn, rows, Some(conflict.clone())).await?;
    }
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
    insert_all(conn, rows.into_iter().map(batch::ActiveModel::from)).await
}

/// Writes changed batches (quantity, state, cost), new ones inserted.
pub async fn save_batches(conn: &impl ConnectionTrait, rows: Vec<batch::Model>) -> AppResult<()> {
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

/// An open batch as an export writes it: with its product's SKU and unit and its location's
/// code.
#[derive(Debug, Clone, FromQueryResult)]
pub struct BatchLine {
    pub id: Uuid,
    pub sku: String,
    pub unit: String,
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
        .column((product::Entity, product::Column::Unit))
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
    pub unit: String,
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
    .column((product::Entity, product::Column::Unit))
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
