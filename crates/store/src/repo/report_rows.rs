//! The rows reports and the dashboard are made of: keyset pages over the ledger, levels,
//! batches and orders, and the names their ids stand for (looked up a page of ids at a time,
//! so the big reads join nothing). Dialect differences are only in the placeholders
//! ([`Sql::arg`]); every query is plain SQL both databases run as written.

use chrono::{DateTime, NaiveDate, Utc};
use depot_domain::AppResult;
use depot_domain::stock::{AlertStatus, BatchStatus};
use depot_domain::trade::{PoState, SoState};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, StreamTrait, Value};
use uuid::Uuid;

use crate::error::db_error;

/// A statement being built: its text and its values, placeholders numbered as added.
struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    fn new(backend: DbBackend, text: &str) -> Self {
        Self {
            backend,
            text: text.to_owned(),
            values: Vec::new(),
        }
    }

    /// Adds `value`; its placeholder.
    fn arg(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => format!("?{}", self.values.len()),
        }
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push(' ');
        self.text.push_str(text);
        self
    }

    /// ` AND <condition>`, the condition built with this statement's placeholders.
    fn and(&mut self, condition: impl FnOnce(&mut Self) -> String) -> &mut Self {
        let condition = condition(self);
        self.push("AND");
        self.push(&condition)
    }

    async fn all<T: FromQueryResult>(self, conn: &impl ConnectionTrait) -> AppResult<Vec<T>> {
        T::find_by_statement(Statement::from_sql_and_values(
            self.backend,
            self.text,
            self.values,
        ))
        .all(conn)
        .await
        .map_err(db_error)
    }
}

fn list(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The states of an order that counts as sold: confirmed and not cancelled.
pub fn sold_states() -> [SoState; 4] {
    [
        SoState::Confirmed,
        SoState::Paid,
        SoState::Fulfilled,
        SoState::Returned,
    ]
}

/// The states of a purchase order under way: submitted, not yet fully received (a draft is
/// not an order yet).
pub fn open_po_states() -> [PoState; 4] {
    [
        PoState::Submitted,
        PoState::Approved,
        PoState::Sent,
        PoState::PartiallyReceived,
    ]
}

fn states<const N: usize, S: Copy>(states: [S; N], text: fn(S) -> &'static str) -> String {
    list(&states.map(text))
}

/// On hand at one (product, location).
#[derive(Debug, Clone, FromQueryResult)]
pub struct LevelRow {
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub on_hand: i64,
    /// Held for orders (now only; none for a past instant).
    pub reserved: Option<i64>,
}

/// Which levels a stock-on-hand page covers.
#[derive(Debug, Clone, Copy, Default)]
pub struct LevelScope {
    pub location_id: Option<Uuid>,
    pub category_id: Option<Uuid>,
    /// As the ledger had it at this instant (inclusive); now when absent.
    pub as_of: Option<DateTime<Utc>>,
}

/// Levels holding stock in (product, location) order after `after`, `limit` at a time.
pub async fn levels(
    conn: &impl ConnectionTrait,
    scope: LevelScope,
    after: Option<(Uuid, Uuid)>,
    limit: u64,
) -> AppResult<Vec<LevelRow>> {
    let backend = conn.get_database_backend();
    let mut sql = match scope.as_of {
        None => Sql::new(
            backend,
            "SELECT product_id, location_id, on_hand, reserved FROM stock_levels WHERE on_hand > 0",
        ),
        Some(as_of) => {
            let mut sql = Sql::new(
                backend,
                "SELECT product_id, location_id, CAST(SUM(quantity) AS BIGINT) AS on_hand, \
                 CAST(NULL AS BIGINT) AS reserved FROM stock_movements WHERE",
            );
            let at = sql.arg(as_of);
            sql.push(&format!("created_at <= {at}"));
            sql
        }
    };
    if let Some(location) = scope.location_id {
        sql.and(|s| format!("location_id = {}", s.arg(location)));
    }
    if let Some(category) = scope.category_id {
        sql.and(|s| {
            format!(
                "product_id IN (SELECT id FROM products WHERE category_id = {})",
                s.arg(category)
            )
        });
    }
    if let Some((product, location)) = after {
        sql.and(|s| {
            let (p, l) = (s.arg(product), s.arg(location));
            format!("(product_id, location_id) > ({p}, {l})")
        });
    }
    if scope.as_of.is_some() {
        sql.push("GROUP BY product_id, location_id HAVING SUM(quantity) <> 0");
    }
    sql.push(&format!("ORDER BY product_id, location_id LIMIT {limit}"));
    sql.all(conn).await
}

/// A batch as a cost layer: its quantity (now, or as the ledger had it at an instant) and
/// unit cost.
#[derive(Debug, Clone, FromQueryResult)]
pub struct LayerRow {
    pub batch_id: Uuid,
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub unit_cost: Option<i64>,
    pub currency: Option<String>,
    pub quantity: i64,
}

/// Cost layers (batches holding stock now) in batch order after `after`, `limit` at a time.
pub async fn layers(
    conn: &impl ConnectionTrait,
    after: Option<Uuid>,
    limit: u64,
) -> AppResult<Vec<LayerRow>> {
    let mut sql = Sql::new(
        conn.get_database_backend(),
        "SELECT id AS batch_id, product_id, location_id, unit_cost, currency, quantity \
         FROM batches WHERE quantity > 0",
    );
    if let Some(after) = after {
        sql.and(|s| format!("id > {}", s.arg(after)));
    }
    sql.push(&format!("ORDER BY id LIMIT {limit}"));
    sql.all(conn).await
}

/// Every batch as a cost layer at `as_of`, streamed in one statement (an aggregate over the
/// ledger cannot be paged without summing it again per page): what a batch held then is what
/// it holds now less what moved since — one range of the ledger, summed per batch and joined
/// to the batches in one pass. Batches empty then come with quantity 0 or less.
pub async fn layers_as_of<'a, C>(
    conn: &'a C,
    as_of: DateTime<Utc>,
) -> AppResult<impl futures::Stream<Item = AppResult<LayerRow>> + 'a>
where
    C: ConnectionTrait + StreamTrait + Send,
{
    let mut sql = Sql::new(ConnectionTrait::get_database_backend(conn), "");
    let at = sql.arg(as_of);
    sql.push(&format!(
        "SELECT b.id AS batch_id, b.product_id, b.location_id, b.unit_cost, b.currency, \
         b.quantity - CAST(COALESCE(m.moved, 0) AS BIGINT) AS quantity FROM batches b \
         LEFT JOIN (SELECT batch_id, SUM(quantity) AS moved FROM stock_movements \
           WHERE created_at > {at} GROUP BY batch_id) m ON m.batch_id = b.id"
    ));
    let stream = LayerRow::find_by_statement(Statement::from_sql_and_values(
        sql.backend,
        sql.text,
        sql.values,
    ))
    .stream(conn)
    .await
    .map_err(db_error)?;
    Ok(futures::StreamExt::map(stream, |row| row.map_err(db_error)))
}

/// One ledger row.
#[derive(Debug, Clone)]
pub struct MovementRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub kind: String,
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub batch_id: Uuid,
    pub quantity: i64,
    pub balance_after: i64,
    pub reason: Option<String>,
    pub reference_type: Option<String>,
    pub reference_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
}

/// Read by position, in the order [`movements`] selects: the export's hottest loop, where a
/// lookup by column name per cell shows.
impl FromQueryResult for MovementRow {
    fn from_query_result(row: &sea_orm::QueryResult, _pre: &str) -> Result<Self, sea_orm::DbErr> {
        Ok(Self {
            id: row.try_get_by_index(0)?,
            created_at: row.try_get_by_index(1)?,
            kind: row.try_get_by_index(2)?,
            product_id: row.try_get_by_index(3)?,
            location_id: row.try_get_by_index(4)?,
            batch_id: row.try_get_by_index(5)?,
            quantity: row.try_get_by_index(6)?,
            balance_after: row.try_get_by_index(7)?,
            reason: row.try_get_by_index(8)?,
            reference_type: row.try_get_by_index(9)?,
            reference_id: row.try_get_by_index(10)?,
            actor_id: row.try_get_by_index(11)?,
        })
    }
}

/// Which ledger rows a movements page covers.
#[derive(Debug, Clone, Copy)]
pub struct MovementScope<'a> {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub product_id: Option<Uuid>,
    pub location_id: Option<Uuid>,
    pub kind: Option<&'a str>,
}

/// Ledger rows in `[from, to)` in (time, id) order after `after`, `limit` at a time.
pub async fn movements(
    conn: &impl ConnectionTrait,
    scope: MovementScope<'_>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> AppResult<Vec<MovementRow>> {
    let mut sql = Sql::new(
        conn.get_database_backend(),
        "SELECT id, created_at, kind, product_id, location_id, batch_id, quantity, \
         balance_after, reason, reference_type, reference_id, actor_id FROM stock_movements WHERE",
    );
    let (from, to) = (sql.arg(scope.from), sql.arg(scope.to));
    sql.push(&format!("created_at >= {from} AND created_at < {to}"));
    if let Some(product) = scope.product_id {
        sql.and(|s| format!("product_id = {}", s.arg(product)));
    }
    if let Some(location) = scope.location_id {
        sql.and(|s| format!("location_id = {}", s.arg(location)));
    }
    if let Some(kind) = scope.kind {
        sql.and(|s| format!("kind = {}", s.arg(kind)));
    }
    if let Some((at, id)) = after {
        sql.and(|s| {
            let (at, id) = (s.arg(at), s.arg(id));
            format!("(created_at, id) > ({at}, {id})")
        });
    }
    sql.push(&format!("ORDER BY created_at, id LIMIT {limit}"));
    sql.all(conn).await
}

/// A batch with stock and an expiry date.
#[derive(Debug, Clone, FromQueryResult)]
pub struct ExpiringRow {
    pub id: Uuid,
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub lot: Option<String>,
    pub expiry: NaiveDate,
    pub quantity: i64,
}

/// Open batches with stock expiring on or before `until`, in (expiry, id) order after
/// `after`, `limit` at a time.
pub async fn expiring(
    conn: &impl ConnectionTrait,
    until: NaiveDate,
    after: Option<(NaiveDate, Uuid)>,
    limit: u64,
) -> AppResult<Vec<ExpiringRow>> {
    let mut sql = Sql::new(
        conn.get_database_backend(),
        "SELECT id, product_id, location_id, lot, expiry, quantity FROM batches WHERE",
    );
    let (open, until) = (sql.arg(BatchStatus::Open.as_str()), sql.arg(until));
    sql.push(&format!(
        "status = {open} AND quantity > 0 AND expiry IS NOT NULL AND expiry <= {until}"
    ));
    if let Some((expiry, id)) = after {
        sql.and(|s| {
            let (e, i) = (s.arg(expiry), s.arg(id));
            format!("(expiry, id) > ({e}, {i})")
        });
    }
    sql.push(&format!("ORDER BY expiry, id LIMIT {limit}"));
    sql.all(conn).await
}

/// How many open batches with stock expire on or before `until`.
pub async fn count_expiring(conn: &impl ConnectionTrait, until: NaiveDate) -> AppResult<i64> {
    let mut sql = Sql::new(
        conn.get_database_backend(),
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM batches WHERE",
    );
    let (open, until) = (sql.arg(BatchStatus::Open.as_str()), sql.arg(until));
    sql.push(&format!(
        "status = {open} AND quantity > 0 AND expiry IS NOT NULL AND expiry <= {until}"
    ));
    Ok(sql.all::<Count>(conn).await?.first().map_or(0, |c| c.n))
}

/// How many levels hold stock.
pub async fn count_levels(conn: &impl ConnectionTrait) -> AppResult<u64> {
    Ok(Sql::new(
        conn.get_database_backend(),
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM stock_levels WHERE on_hand > 0",
    )
    .all::<Count>(conn)
    .await?
    .first()
    .map_or(0, |c| u64::try_from(c.n).unwrap_or(0)))
}

#[derive(Debug, Clone, FromQueryResult)]
struct Count {
    n: i64,
}

/// A purchase order with its ordered and received quantities.
#[derive(Debug, Clone, FromQueryResult)]
pub struct PurchaseOrderRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub supplier: String,
    pub state: String,
    pub currency: String,
    pub total: i64,
    pub expected_at: Option<NaiveDate>,
    pub ordered: i64,
    pub received: i64,
}

/// Purchase orders created in `[from, to)` (in one state when given), in (created, id) order
/// after `after`, `limit` at a time.
pub async fn purchase_orders(
    conn: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    state: Option<&str>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> AppResult<Vec<PurchaseOrderRow>> {
    let mut sql = Sql::new(
        conn.get_database_backend(),
        "SELECT po.id, po.created_at, s.name AS supplier, po.state, po.currency, po.total, \
         po.expected_at, \
         CAST(COALESCE((SELECT SUM(l.quantity) FROM purchase_order_lines l \
           WHERE l.purchase_order_id = po.id), 0) AS BIGINT) AS ordered, \
         CAST(COALESCE((SELECT SUM(l.received) FROM purchase_order_lines l \
           WHERE l.purchase_order_id = po.id), 0) AS BIGINT) AS received \
         FROM purchase_orders po JOIN suppliers s ON s.id = po.supplier_id WHERE",
    );
    let (f, t) = (sql.arg(from), sql.arg(to));
    sql.push(&format!("po.created_at >= {f} AND po.created_at < {t}"));
    if let Some(state) = state {
        sql.and(|s| format!("po.state = {}", s.arg(state)));
    }
    if let Some((at, id)) = after {
        sql.and(|s| {
            let (at, id) = (s.arg(at), s.arg(id));
            format!("(po.created_at, po.id) > ({at}, {id})")
        });
    }
    sql.push(&format!("ORDER BY po.created_at, po.id LIMIT {limit}"));
    sql.all(conn).await
}

/// A sold order: when it was confirmed, its total and the quantity of its lines.
#[derive(Debug, Clone, FromQueryResult)]
pub struct SoldOrderRow {
    pub id: Uuid,
    pub confirmed_at: DateTime<Utc>,
    pub currency: String,
    pub total: i64,
    pub quantity: i64,
}

/// Orders confirmed in `[from, to)` and not cancelled, in (confirmed, id) order after `after`,
/// `limit` at a time.
pub async fn sold_orders(
    conn: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> AppResult<Vec<SoldOrderRow>> {
    let mut sql = Sql::new(
        conn.get_database_backend(),
        &format!(
            "SELECT o.id, o.confirmed_at, o.currency, o.total, \
             CAST(COALESCE((SELECT SUM(l.quantity) FROM sales_order_lines l \
               WHERE l.sales_order_id = o.id), 0) AS BIGINT) AS quantity \
             FROM sales_orders o WHERE o.state IN ({}) AND",
            states(sold_states(), SoState::as_str)
        ),
    );
    let (f, t) = (sql.arg(from), sql.arg(to));
    sql.push(&format!("o.confirmed_at >= {f} AND o.confirmed_at < {t}"));
    if let Some((at, id)) = after {
        sql.and(|s| {
            let (at, id) = (s.arg(at), s.arg(id));
            format!("(o.confirmed_at, o.id) > ({at}, {id})")
        });
    }
    sql.push(&format!("ORDER BY o.confirmed_at, o.id LIMIT {limit}"));
    sql.all(conn).await
}

/// What was sold of one product, or to one customer, in one currency.
#[derive(Debug, Clone, FromQueryResult)]
pub struct SalesGroupRow {
    pub key: Uuid,
    pub currency: String,
    pub orders: i64,
    pub quantity: i64,
    pub total: i64,
}

/// Sales confirmed in `[from, to)` summed per product (`by_customer` false) or per customer,
/// and currency, in (key, currency) order after `after`, `limit` at a time. A line's total is
/// its quantity times its price rounded half up, as the order's total was made.
pub async fn sales_by(
    conn: &impl ConnectionTrait,
    by_customer: bool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<(Uuid, String)>,
    limit: u64,
) -> AppResult<Vec<SalesGroupRow>> {
    let key = if by_customer {
        "o.customer_id"
    } else {
        "l.product_id"
    };
    let mut sql = Sql::new(
        conn.get_database_backend(),
        &format!(
            "SELECT {key} AS key, o.currency, CAST(COUNT(DISTINCT o.id) AS BIGINT) AS orders, \
             CAST(SUM(l.quantity) AS BIGINT) AS quantity, \
             CAST(SUM((l.quantity * l.unit_price + 500) / 1000) AS BIGINT) AS total \
             FROM sales_order_lines l JOIN sales_orders o ON o.id = l.sales_order_id \
             WHERE o.state IN ({}) AND",
            states(sold_states(), SoState::as_str)
        ),
    );
    let (f, t) = (sql.arg(from), sql.arg(to));
    sql.push(&format!("o.confirmed_at >= {f} AND o.confirmed_at < {t}"));
    if let Some((id, currency)) = after {
        sql.and(|s| {
            let (id, currency) = (s.arg(id), s.arg(currency));
            format!("({key}, o.currency) > ({id}, {currency})")
        });
    }
    sql.push(&format!(
        "GROUP BY {key}, o.currency ORDER BY {key}, o.currency LIMIT {limit}"
    ));
    sql.all(conn).await
}

/// A product's names, as reports print them.
#[derive(Debug, Clone, FromQueryResult)]
pub struct ProductName {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub unit: String,
    pub category_id: Option<Uuid>,
}

/// A category, location or other record named by one text.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Named {
    pub id: Uuid,
    pub name: String,
}

/// A customer's name and contact data.
#[derive(Debug, Clone, FromQueryResult)]
pub struct CustomerName {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
}

async fn by_ids<T: FromQueryResult>(
    conn: &impl ConnectionTrait,
    select: &str,
    ids: &[Uuid],
) -> AppResult<Vec<T>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(conn.get_database_backend(), select);
    let args: Vec<String> = ids.iter().map(|id| sql.arg(*id)).collect();
    sql.push(&format!("WHERE id IN ({})", args.join(", ")));
    sql.all(conn).await
}

pub async fn products(conn: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<ProductName>> {
    by_ids(
        conn,
        "SELECT id, sku, name, unit, category_id FROM products",
        ids,
    )
    .await
}

/// Every product that has a category, with it.
pub async fn product_categories(conn: &impl ConnectionTrait) -> AppResult<Vec<(Uuid, Uuid)>> {
    #[derive(FromQueryResult)]
    struct Pair {
        id: Uuid,
        category_id: Uuid,
    }
    let pairs: Vec<Pair> = Sql::new(
        conn.get_database_backend(),
        "SELECT id, category_id FROM products WHERE category_id IS NOT NULL",
    )
    .all(conn)
    .await?;
    Ok(pairs.into_iter().map(|p| (p.id, p.category_id)).collect())
}

pub async fn categories(conn: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<Named>> {
    by_ids(conn, "SELECT id, name FROM categories", ids).await
}

/// Locations by their codes.
pub async fn locations(conn: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<Named>> {
    by_ids(conn, "SELECT id, code AS name FROM locations", ids).await
}

pub async fn customers(conn: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<CustomerName>> {
    by_ids(
        conn,
        "SELECT id, name, email, phone, address FROM customers",
        ids,
    )
    .await
}

/// An amount per currency (and how many records made it).
#[derive(Debug, Clone, FromQueryResult)]
pub struct CurrencyTotal {
    pub currency: String,
    pub count: i64,
    pub total: i64,
}

/// The value of the stock on hand per currency: every costed layer's quantity × unit cost,
/// rounded half up per layer (`count`: the layers).
pub async fn stock_value(conn: &impl ConnectionTrait) -> AppResult<Vec<CurrencyTotal>> {
    Sql::new(
        conn.get_database_backend(),
        "SELECT currency, CAST(COUNT(*) AS BIGINT) AS count, \
         CAST(SUM((quantity * unit_cost + 500) / 1000) AS BIGINT) AS total FROM batches \
         WHERE quantity > 0 AND unit_cost IS NOT NULL AND currency IS NOT NULL \
         GROUP BY currency ORDER BY currency",
    )
    .all(conn)
    .await
}

/// Orders confirmed from `from` on and not cancelled, per currency (`count`: the orders).
pub async fn sales_since(
    conn: &impl ConnectionTrait,
    from: DateTime<Utc>,
) -> AppResult<Vec<CurrencyTotal>> {
    let mut sql = Sql::new(
        conn.get_database_backend(),
        &format!(
            "SELECT currency, CAST(COUNT(*) AS BIGINT) AS count, \
             CAST(COALESCE(SUM(total), 0) AS BIGINT) AS total FROM sales_orders \
             WHERE state IN ({}) AND",
            states(sold_states(), SoState::as_str)
        ),
    );
    let from = sql.arg(from);
    sql.push(&format!(
        "confirmed_at >= {from} GROUP BY currency ORDER BY currency"
    ));
    sql.all(conn).await
}

/// A count per state or kind.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Tally {
    pub key: String,
    pub count: i64,
}

/// Purchase orders still under way, per state.
pub async fn open_purchase_orders(conn: &impl ConnectionTrait) -> AppResult<Vec<Tally>> {
    Sql::new(
        conn.get_database_backend(),
        &format!(
            "SELECT state AS key, CAST(COUNT(*) AS BIGINT) AS count FROM purchase_orders \
             WHERE state IN ({}) GROUP BY state ORDER BY state",
            states(open_po_states(), PoState::as_str)
        ),
    )
    .all(conn)
    .await
}

/// Alerts not yet resolved, per kind.
pub async fn unresolved_alerts(conn: &impl ConnectionTrait) -> AppResult<Vec<Tally>> {
    Sql::new(
        conn.get_database_backend(),
        &format!(
            "SELECT kind AS key, CAST(COUNT(*) AS BIGINT) AS count FROM alerts \
             WHERE status IN ({}) GROUP BY kind ORDER BY kind",
            list(&[
                AlertStatus::Open.as_str(),
                AlertStatus::Acknowledged.as_str()
            ])
        ),
    )
    .all(conn)
    .await
}
