//! Importing stock: opening stock (new batches, `receipt` movements with reason `initial`) and
//! counts (`count` movements with reason `count_correction` for what differs). Both write the
//! ordinary ledger — one movement per batch changed, balances after, levels summed — so `depot
//! verify` holds, and judge alerts on every level they change.
//!
//! Opening stock is refused for a product and location that already hold stock unless
//! `replace` is set: then the file is the whole truth for that level (batches it names are
//! counted, batches it does not name go to zero). A counts file touches only the batches it
//! names (by lot and expiry); a row naming none opens one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use depot_domain::import::{ImportSummary, RowError, parse_date, parse_instant, present};
use depot_domain::stock::{AdjustmentReason, BatchStatus, MovementKind, ProductStatus, Quantity};
use depot_domain::{AppResult, FieldError, Validator};
use depot_store::ConnectionTrait;
use depot_store::entity::{batch, stock_level, stock_movement};
use depot_store::repo::stock::bulk;
use depot_store::repo::{locations, products};
use uuid::Uuid;

use super::csv::CsvFile;
use super::progress::Progress;
use crate::catalog::unit_of;
use crate::stock::alerts::{self, LevelChange, OpenedBatch};
use crate::stock::validate_origin;
use crate::uow::UnitOfWork;

/// How a stock file posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Posting {
    /// New batches for levels without stock.
    Opening,
    /// Count the levels the file names: every batch of each (named or not).
    Replace,
    /// Count the batches the file names.
    Counts,
}

/// One checked row (kept for every row of the file until it is written: compact).
#[derive(Debug, Clone)]
pub(crate) struct StockRow {
    row: u64,
    product: Uuid,
    location: Uuid,
    quantity: i64,
    lot: Option<Box<str>>,
    expiry: Option<NaiveDate>,
    unit_cost: Option<i64>,
    currency: Option<Box<str>>,
    received_at: Option<DateTime<Utc>>,
}

/// A level a file names: what it held when read (locked when applying) and what it holds as
/// the rows are written.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    was: i64,
    now: i64,
    reserved: i64,
}

/// What a checked stock file will write.
pub(crate) struct StockPlan {
    rows: Vec<StockRow>,
    /// Every (product, location) the file names.
    levels: BTreeMap<(Uuid, Uuid), Tally>,
    reorder_points: HashMap<Uuid, Option<Quantity>>,
}

impl StockPlan {
    /// What applying would do, before the batches are read: each row a batch.
    pub fn estimate(&self) -> ImportSummary {
        ImportSummary {
            created: self.rows.len() as u64,
            ..ImportSummary::default()
        }
    }
}

struct ProductInfo {
    id: Uuid,
    unit: depot_domain::stock::Unit,
    tracks_expiry: bool,
    archived: bool,
    reorder_point: Option<Quantity>,
}

/// Checks a stock file: references, quantities in each product's unit, lot and expiry for
/// products that track expiry, one row per batch key; for opening stock, that the levels hold
/// nothing yet. With `lock` (applying), the levels are created where missing and locked.
pub(crate) async fn check_stock(
    conn: &impl ConnectionTrait,
    file: &CsvFile<'_>,
    posting: Posting,
    lock: Option<DateTime<Utc>>,
    progress: &Progress,
) -> AppResult<(StockPlan, Vec<RowError>)> {
    let h = &file.header;
    let (mut skus, mut codes) = (HashSet::new(), HashSet::new());
    let mut readable = 0usize;
    file.restart();
    let (mut errors, unreadable) = file.rows(|_, cells| {
        readable += 1;
        if let Some(sku) = present(h.cell(cells, "sku"))
            && !skus.contains(sku)
        {
            skus.insert(sku.to_lowercase());
        }
        if let Some(code) = present(h.cell(cells, "location_code"))
            && !codes.contains(code)
        {
            codes.insert(code.to_lowercase());
        }
    });
    file.count_unkept(unreadable - errors.len() as u64);
    let skus: Vec<String> = skus.into_iter().collect();
    let codes: Vec<String> = codes.into_iter().collect();
    // Read a chunk at a time: only what a row needs of its product is kept.
    let mut products: HashMap<String, ProductInfo> = HashMap::with_capacity(skus.len());
    for chunk in skus.chunks(CHUNK_PRODUCTS) {
        products.extend(
            products::by_sku_keys(conn, chunk)
                .await?
                .into_iter()
                .map(|p| {
                    let info = ProductInfo {
                        id: p.id,
                        unit: unit_of(&p),
                        tracks_expiry: p.tracks_expiry,
                        archived: p.status == ProductStatus::Archived.as_str(),
                        reorder_point: p.reorder_point.map(Quantity::from_thousandths),
                    };
                    (p.sku_key, info)
                }),
        );
    }
    let places: HashMap<String, (Uuid, bool)> = locations::by_code_keys(conn, &codes)
        .await?
        .into_iter()
        .map(|l| (l.code_key, (l.id, l.active)))
        .collect();
    drop((skus, codes));

    // The checked rows are kept (without regrowing: the first pass counted them).
    let mut rows = Vec::with_capacity(readable);
    let mut row_problems = Vec::new();
    file.rows(|row, cells| {
        progress.advance(1);
        let mut v = Validator::new();
        let product = match present(h.cell(cells, "sku")) {
            Some(sku) => {
                let found = products.get(&sku.to_lowercase());
                if found.is_none() {
                    v.push(FieldError::new(
                        "sku",
                        "products.not_found",
                        "no product has this SKU",
                    ));
                }
                found
            }
            None => {
                v.push(FieldError::new("sku", "required", "is required"));
                None
            }
        };
        let place = match present(h.cell(cells, "location_code")) {
            Some(code) => {
                let found = places.get(&code.to_lowercase()).copied();
                if found.is_none() {
                    v.push(FieldError::new(
                        "location_code",
                        "locations.not_found",
                        "no location has this code",
                    ));
                }
                found
            }
            None => {
                v.push(FieldError::new("location_code", "required", "is required"));
                None
            }
        };
        let lot = present(h.cell(cells, "lot"));
        let expiry = present(h.cell(cells, "expiry")).and_then(|text| {
            let day = parse_date(text);
            if day.is_none() {
                v.push(FieldError::new(
                    "expiry",
                    "invalid_date",
                    "must be a date, YYYY-MM-DD",
                ));
            }
            day
        });
        let unit_cost = present(h.cell(cells, "unit_cost")).and_then(|text| {
            let cost = text.parse::<i64>().ok();
            if cost.is_none() {
                v.push(FieldError::new(
                    "unit_cost",
                    "invalid",
                    "must be a whole number of minor units (cents)",
                ));
            }
            cost
        });
        let currency = present(h.cell(cells, "currency"));
        validate_origin(&mut v, lot, unit_cost, currency);
        let received_at = present(h.cell(cells, "received_at")).and_then(|text| {
            let at = parse_instant(text);
            if at.is_none() {
                v.push(FieldError::new(
                    "received_at",
                    "invalid_date",
                    "must be an RFC 3339 time or a date",
                ));
            }
            at
        });
        let quantity = product.and_then(|p| {
            let text = h.cell(cells, "quantity").unwrap_or_default().trim();
            match Quantity::parse(text, p.unit) {
                Ok(q) if q.is_negative() => {
                    v.push(FieldError::new(
                        "quantity",
                        "quantity.negative",
                        "must not be negative",
                    ));
                    None
                }
                Ok(q) if q.is_zero() && posting != Posting::Counts => {
                    v.push(FieldError::new(
                        "quantity",
                        "zero",
                        "must be more than zero",
                    ));
                    None
                }
                Ok(q) => Some(q),
                Err(e) => {
                    v.push(FieldError::new(
                        "quantity",
                        "quantity.invalid",
                        format!("{e}"),
                    ));
                    None
                }
            }
        });
        if product.is_some_and(|p| p.tracks_expiry) {
            // A cell that is there but wrong has said so already.
            let expiry_given = present(h.cell(cells, "expiry")).is_some();
            for (column, given) in [("lot", lot.is_some()), ("expiry", expiry_given)] {
                v.check(
                    given,
                    column,
                    "required",
                    "is required: the product tracks expiry",
                );
            }
        }
        if posting != Posting::Counts {
            v.check(
                product.is_none_or(|p| !p.archived),
                "sku",
                "products.archived",
                "the product is archived: it takes no new stock",
            );
            v.check(
                place.is_none_or(|(_, active)| active),
                "location_code",
                "locations.inactive",
                "the location is inactive: it takes no new stock",
            );
        }
        match (v.is_empty(), product, place, quantity) {
            (true, Some(p), Some((location, _)), Some(q)) => rows.push(StockRow {
                row,
                product: p.id,
                location,
                quantity: q.thousandths(),
                lot: lot.map(Box::from),
                expiry,
                unit_cost,
                currency: currency.map(Box::from),
                received_at,
            }),
            _ => file.keep_fields(&mut row_problems, row, v),
        }
    });
    errors.extend(row_problems);
    // One row per batch key: a later row naming the same one is an error.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        batch_key(&rows[a])
            .cmp(&batch_key(&rows[b]))
            .then(rows[a].row.cmp(&rows[b].row))
    });
    for pair in order.windows(2) {
        let (first, again) = (&rows[pair[0]], &rows[pair[1]]);
        if batch_key(first) == batch_key(again) {
            file.keep(
                &mut errors,
                RowError::new(
                    again.row,
                    Some("lot"),
                    "import.duplicate",
                    format!(
                        "the same product, location, lot and expiry are on row {}",
                        first.row
                    ),
                ),
            );
        }
    }
    drop(order);

    let mut levels: BTreeMap<(Uuid, Uuid), Tally> = rows
        .iter()
        .map(|r| ((r.product, r.location), Tally::default()))
        .collect();
    let mut product_ids: Vec<Uuid> = levels.keys().map(|(p, _)| *p).collect();
    product_ids.dedup();
    // Counting reads batches, so every level it names is created and locked first. Opening
    // stock reads none: it locks the levels that exist and adds to each level (new or not) in
    // one upsert at the end, so a level created meanwhile by a stock change keeps what it got;
    // stock imports themselves run one at a time, so the same file applied twice at once is
    // refused the second time.
    if lock.is_some() {
        bulk::lock_stock_imports(conn).await?;
    }
    if let Some(now) = lock.filter(|_| posting != Posting::Opening) {
        let mut keys = levels.keys().copied().peekable();
        while keys.peek().is_some() {
            let chunk: Vec<(Uuid, Uuid)> = keys.by_ref().take(FLUSH_EVERY).collect();
            bulk::ensure_levels(conn, &chunk, now).await?;
        }
    }
    // A chunk of products at a time (in product order, so locks are taken in one order).
    for chunk in product_ids.chunks(CHUNK_PRODUCTS) {
        for l in bulk::levels_of_products(conn, chunk, lock.is_some()).await? {
            if let Some(tally) = levels.get_mut(&(l.product_id, l.location_id)) {
                *tally = Tally {
                    was: l.on_hand,
                    now: l.on_hand,
                    reserved: l.reserved,
                };
            }
        }
    }
    drop(product_ids);
    if posting == Posting::Opening {
        let units: HashMap<Uuid, depot_domain::stock::Unit> =
            products.values().map(|p| (p.id, p.unit)).collect();
        for r in &rows {
            if let Some(level) = levels.get(&(r.product, r.location)).filter(|l| l.was != 0) {
                file.keep(&mut errors, RowError::new(
                    r.row,
                    None,
                    "stock.exists",
                    format!(
                        "the product already has {} {} at this location: import with replace=true to count it instead",
                        Quantity::from_thousandths(level.was),
                        units.get(&r.product).map_or("", |u| u.as_str()),
                    ),
                ));
            }
        }
    }
    let reorder_points = products
        .into_values()
        .map(|p| (p.id, p.reorder_point))
        .collect();
    Ok((
        StockPlan {
            rows,
            levels,
            reorder_points,
        },
        errors,
    ))
}

/// What names a batch: (product, location, lot, expiry).
fn batch_key(r: &StockRow) -> (Uuid, Uuid, Option<&str>, Option<NaiveDate>) {
    (r.product, r.location, r.lot.as_deref(), r.expiry)
}

/// Rows of batches and movements gathered before they are written (memory stays bounded
/// whatever the file's size).
const FLUSH_EVERY: usize = 5_000;

/// What one unit's stock writes gather before they go to the database.
struct Writes<'u> {
    uow: &'u UnitOfWork,
    kind: MovementKind,
    reason: AdjustmentReason,
    note: String,
    new_batches: Vec<batch::Model>,
    changed: Vec<batch::Model>,
    movements: Vec<stock_movement::Model>,
    written: u64,
    /// A row did not fit: nothing more is written (the unit will not commit).
    refused: bool,
    closed: BTreeSet<Uuid>,
    /// Existing batches that gained stock (their expiry may raise an alert).
    received: BTreeSet<Uuid>,
    /// Batches opened here with an expiry (judged for alerts without reading them back).
    opened: Vec<OpenedBatch>,
    levels: BTreeMap<(Uuid, Uuid), Tally>,
}

impl Writes<'_> {
    /// Writes what has gathered once there is enough of it (or at the end, `all`): batches
    /// before the movements that name them.
    async fn flush(&mut self, all: bool) -> AppResult<()> {
        if self.refused || (!all && self.movements.len() < FLUSH_EVERY) {
            return Ok(());
        }
        let tx = self.uow.tx();
        bulk::insert_batches(tx, std::mem::take(&mut self.new_batches)).await?;
        bulk::save_batches(tx, std::mem::take(&mut self.changed)).await?;
        let movements = std::mem::take(&mut self.movements);
        self.written += movements.len() as u64;
        bulk::append_movements(tx, movements).await
    }

    fn record(&mut self, b: &batch::Model, signed: i64) {
        self.record_as(b, signed, self.kind, self.reason);
    }

    fn record_as(
        &mut self,
        b: &batch::Model,
        signed: i64,
        kind: MovementKind,
        reason: AdjustmentReason,
    ) {
        let actor = self.uow.actor();
        if let Some(level) = self.levels.get_mut(&(b.product_id, b.location_id)) {
            level.now += signed;
        }
        self.movements.push(stock_movement::Model {
            id: depot_domain::id::new_id(),
            product_id: b.product_id,
            location_id: b.location_id,
            batch_id: b.id,
            kind: kind.as_str().to_owned(),
            quantity: signed,
            balance_after: b.quantity,
            reason: Some(reason.as_str().to_owned()),
            note: Some(self.note.clone()),
            actor_id: actor.user_id(),
            actor_name: actor.system_name().map(str::to_owned),
            reference_type: None,
            reference_id: None,
            request_id: self.uow.client().request_id.clone(),
            created_at: self.uow.now(),
        });
    }

    /// A new batch holding what `r` says, recorded as this unit's kind of movement.
    fn open(&mut self, r: &StockRow) {
        self.open_as(r, self.kind, self.reason);
    }

    /// A new batch holding what `r` says, recorded as `kind` for `reason`.
    fn open_as(&mut self, r: &StockRow, kind: MovementKind, reason: AdjustmentReason) {
        let now = self.uow.now();
        let b = batch::Model {
            id: depot_domain::id::new_id(),
            product_id: r.product,
            location_id: r.location,
            lot: r.lot.as_deref().map(str::to_owned),
            expiry: r.expiry,
            received_at: r.received_at.unwrap_or(now),
            unit_cost: r.unit_cost,
            currency: r.currency.as_deref().map(str::to_owned),
            quantity: r.quantity,
            reserved: 0,
            status: BatchStatus::Open.as_str().to_owned(),
            created_at: now,
            updated_at: now,
            closed_at: None,
        };
        self.record_as(&b, r.quantity, kind, reason);
        if let Some(expiry) = b.expiry {
            self.opened.push(OpenedBatch {
                id: b.id,
                product: b.product_id,
                location: b.location_id,
                expiry,
                quantity: Quantity::from_thousandths(b.quantity),
            });
        }
        self.new_batches.push(b);
    }

    /// Sets an open batch to `counted` (never below what orders hold of it; the caller
    /// checks). Returns whether it changed.
    fn count(&mut self, mut b: batch::Model, counted: i64) -> bool {
        let difference = counted - b.quantity;
        if difference == 0 {
            return false;
        }
        let now = self.uow.now();
        b.quantity = counted;
        b.updated_at = now;
        if counted == 0 {
            b.status = BatchStatus::Closed.as_str().to_owned();
            b.closed_at = Some(now);
            self.closed.insert(b.id);
        } else if difference > 0 {
            self.received.insert(b.id);
        }
        self.record(&b, difference);
        self.changed.push(b);
        true
    }
}

/// Writes a checked stock file in `uow` (its levels locked by the check): batches, movements,
/// levels and the alerts the changes cause. Rows that turn out not to fit the batches (a count
/// below what orders hold) are returned instead, and nothing should be committed.
pub(crate) async fn write_stock(
    uow: &mut UnitOfWork,
    plan: StockPlan,
    posting: Posting,
    note: String,
    warning_days: u32,
    progress: &Progress,
) -> AppResult<Result<ImportSummary, Vec<RowError>>> {
    let started = std::time::Instant::now();
    let StockPlan {
        rows,
        levels,
        reorder_points,
    } = plan;
    // Every product and location the rows name, held for the rest of the unit: the levels,
    // batches and movements below need no foreign-key check row by row (see
    // `hold_references`; the check already found each of them).
    let named = |of: fn(&StockRow) -> Uuid| {
        let ids: BTreeSet<Uuid> = rows.iter().map(of).collect();
        ids.into_iter().collect::<Vec<_>>()
    };
    let checks =
        bulk::hold_references(uow.tx(), &named(|r| r.product), &named(|r| r.location)).await?;
    let (kind, reason) = match posting {
        Posting::Opening => (MovementKind::Receipt, AdjustmentReason::Initial),
        Posting::Replace | Posting::Counts => {
            (MovementKind::Count, AdjustmentReason::CountCorrection)
        }
    };
    let mut w = Writes {
        uow,
        kind,
        reason,
        note,
        new_batches: Vec::new(),
        changed: Vec::new(),
        movements: Vec::new(),
        written: 0,
        refused: false,
        closed: BTreeSet::new(),
        received: BTreeSet::new(),
        opened: Vec::new(),
        levels,
    };
    let mut summary = ImportSummary::default();
    let mut errors = Vec::new();
    if posting == Posting::Opening {
        for r in &rows {
            progress.advance(1);
            w.open(r);
            w.flush(false).await?;
        }
        summary.created = rows.len() as u64;
    } else {
        // A chunk of products at a time (rows in product order): their open batches, read
        // under the level locks, then their rows.
        for (products, chunk) in product_chunks(&rows) {
            count_chunk(
                &mut w,
                &products,
                &chunk,
                posting,
                &mut summary,
                &mut errors,
            )
            .await?;
            progress.advance(chunk.len() as u64);
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    w.flush(true).await?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "import: batches and movements written"
    );
    summary.movements = w.written;
    let Writes {
        closed,
        received,
        opened,
        levels,
        ..
    } = w;
    // The levels that changed, a chunk at a time: written, and judged for alerts.
    let now = uow.now();
    let mut raised = Vec::new();
    let mut changed = levels
        .into_iter()
        .filter(|(_, l)| l.now != l.was)
        .peekable();
    while changed.peek().is_some() {
        let mut changes = Vec::with_capacity(FLUSH_EVERY);
        let mut written = Vec::with_capacity(FLUSH_EVERY);
        for ((product_id, location_id), level) in changed.by_ref().take(FLUSH_EVERY) {
            changes.push(LevelChange {
                product: product_id,
                location: location_id,
                before: Quantity::from_thousandths(level.was),
                after: Quantity::from_thousandths(level.now),
                reorder_point: reorder_points.get(&product_id).copied().flatten(),
            });
            written.push(stock_level::Model {
                product_id,
                location_id,
                // Opening stock adds what this unit received (see `check_stock`).
                on_hand: match posting {
                    Posting::Opening => level.now - level.was,
                    Posting::Replace | Posting::Counts => level.now,
                },
                reserved: level.reserved,
                updated_at: now,
            });
        }
        if posting == Posting::Opening {
            bulk::add_to_levels(uow.tx(), written).await?;
        } else {
            bulk::set_levels(uow.tx(), written).await?;
        }
        raised.extend(alerts::on_levels(uow, &changes).await?);
    }
    bulk::check_each_row(uow.tx(), checks).await?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "import: levels written and judged"
    );
    raised.extend(alerts::on_batches(uow, &closed, &received, warning_days).await?);
    raised.extend(alerts::on_opened(uow, &opened, warning_days).await?);
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "import: alerts judged"
    );
    for message in raised {
        uow.emit(&message);
    }
    Ok(Ok(summary))
}

/// The rows of a checked file a chunk of products at a time, in (product, location, row)
/// order: the products of each chunk and their rows.
fn product_chunks(rows: &[StockRow]) -> Vec<(Vec<Uuid>, Vec<&StockRow>)> {
    let mut order: Vec<&StockRow> = rows.iter().collect();
    order.sort_by_key(|r| (r.product, r.location, r.row));
    let mut chunks: Vec<(Vec<Uuid>, Vec<&StockRow>)> = Vec::new();
    for r in order {
        let fits = chunks.last().is_some_and(|(products, _)| {
            products.last() == Some(&r.product) || products.len() < CHUNK_PRODUCTS
        });
        if !fits {
            chunks.push((Vec::new(), Vec::new()));
        }
        if let Some((products, chunk)) = chunks.last_mut() {
            if products.last() != Some(&r.product) {
                products.push(r.product);
            }
            chunk.push(r);
        }
    }
    chunks
}

/// The open batches of the levels `rows` name, by level (when applying, read after the levels
/// were locked, by a statement of its own).
async fn open_batches(
    conn: &impl ConnectionTrait,
    products: &[Uuid],
    rows: &[&StockRow],
) -> AppResult<BTreeMap<(Uuid, Uuid), Vec<batch::Model>>> {
    let named: BTreeSet<(Uuid, Uuid)> = rows.iter().map(|r| (r.product, r.location)).collect();
    let mut open: BTreeMap<(Uuid, Uuid), Vec<batch::Model>> = BTreeMap::new();
    for b in bulk::open_batches_of_products(conn, products).await? {
        let key = (b.product_id, b.location_id);
        if named.contains(&key) {
            open.entry(key).or_default().push(b);
        }
    }
    Ok(open)
}

/// Takes the open batches of `r`'s lot (and expiry) out of its level's in `open`.
fn take_lot(
    open: &mut BTreeMap<(Uuid, Uuid), Vec<batch::Model>>,
    r: &StockRow,
) -> Vec<batch::Model> {
    let batches = open.entry((r.product, r.location)).or_default();
    let (matching, rest): (Vec<_>, Vec<_>) = std::mem::take(batches)
        .into_iter()
        .partition(|b| b.lot.as_deref() == r.lot.as_deref() && b.expiry == r.expiry);
    *batches = rest;
    matching
}

/// Why `r` cannot count its lot: orders hold more of it than the row says is there.
fn lot_refusal(r: &StockRow, matching: &[batch::Model]) -> Option<RowError> {
    let held_total: i64 = matching.iter().map(|b| b.reserved).sum();
    (r.quantity < held_total).then(|| held(r.row, r.lot.as_deref(), held_total))
}

/// Why a batch a replacing file does not name cannot go to zero: orders hold some of it.
fn leftover_refusal(
    first_row: &BTreeMap<(Uuid, Uuid), u64>,
    key: (Uuid, Uuid),
    b: &batch::Model,
) -> Option<RowError> {
    (b.reserved > 0).then(|| {
        held(
            first_row.get(&key).copied().unwrap_or(1),
            b.lot.as_deref(),
            b.reserved,
        )
    })
}

/// What only the batches can say of a counting file (validating: nothing is written): counts
/// below what orders hold.
pub(crate) async fn check_holds(
    conn: &impl ConnectionTrait,
    plan: &StockPlan,
    posting: Posting,
) -> AppResult<Vec<RowError>> {
    let mut errors = Vec::new();
    if posting == Posting::Opening {
        return Ok(errors);
    }
    for (products, rows) in product_chunks(&plan.rows) {
        let mut open = open_batches(conn, &products, &rows).await?;
        let mut first_row: BTreeMap<(Uuid, Uuid), u64> = BTreeMap::new();
        for r in &rows {
            first_row.entry((r.product, r.location)).or_insert(r.row);
            errors.extend(lot_refusal(r, &take_lot(&mut open, r)));
        }
        if posting == Posting::Replace {
            for (key, rest) in open {
                errors.extend(
                    rest.iter()
                        .filter_map(|b| leftover_refusal(&first_row, key, b)),
                );
            }
        }
    }
    Ok(errors)
}

/// Products whose rows a counting import handles together.
const CHUNK_PRODUCTS: usize = 1_000;

/// Counts the rows of a chunk of products (in product, location order): each row sets the
/// batch of its lot and expiry (or opens one); with `Replace`, batches of a level its rows do
/// not name go to zero.
async fn count_chunk(
    w: &mut Writes<'_>,
    products: &[Uuid],
    rows: &[&StockRow],
    posting: Posting,
    summary: &mut ImportSummary,
    errors: &mut Vec<RowError>,
) -> AppResult<()> {
    let mut open = open_batches(w.uow.tx(), products, rows).await?;
    // Opening stock with `replace`: a level that held nothing gets its first stock as a
    // receipt, as without `replace` — there is nothing to correct.
    let empty: BTreeSet<(Uuid, Uuid)> = rows
        .iter()
        .map(|r| (r.product, r.location))
        .filter(|key| open.get(key).is_none_or(Vec::is_empty))
        .collect();
    let mut first_row: BTreeMap<(Uuid, Uuid), u64> = BTreeMap::new();
    for r in rows {
        let key = (r.product, r.location);
        first_row.entry(key).or_insert(r.row);
        let matching = take_lot(&mut open, r);
        if matching.is_empty() {
            if r.quantity > 0 && posting == Posting::Replace && empty.contains(&key) {
                w.open_as(r, MovementKind::Receipt, AdjustmentReason::Initial);
                summary.created += 1;
            } else if r.quantity > 0 {
                w.open(r);
                summary.created += 1;
            } else {
                summary.unchanged += 1;
            }
            continue;
        }
        // The lot as a whole is counted (it may sit in more than one batch): what is found
        // beyond it goes into its first batch; what is missing comes out of its batches in
        // order, never below what orders hold of each.
        if let Some(refusal) = lot_refusal(r, &matching) {
            errors.push(refusal);
            w.refused = true;
            continue;
        }
        let total: i64 = matching.iter().map(|b| b.quantity).sum();
        let mut difference = r.quantity - total;
        let mut changed = false;
        for b in matching {
            let counted = if difference >= 0 {
                b.quantity + std::mem::take(&mut difference)
            } else {
                let out = (b.quantity - b.reserved).min(-difference);
                difference += out;
                b.quantity - out
            };
            changed |= w.count(b, counted);
        }
        if changed {
            summary.updated += 1;
        } else {
            summary.unchanged += 1;
        }
    }
    if posting == Posting::Replace {
        // What the file does not name is not there.
        for (key, rest) in open {
            for b in rest {
                if let Some(refusal) = leftover_refusal(&first_row, key, &b) {
                    errors.push(refusal);
                    w.refused = true;
                    continue;
                }
                w.count(b, 0);
                summary.updated += 1;
            }
        }
    }
    w.flush(false).await
}

/// A count that would leave a batch with less than orders hold of it.
fn held(row: u64, lot: Option<&str>, reserved: i64) -> RowError {
    RowError::new(
        row,
        Some("quantity"),
        "stock.reserved",
        format!(
            "orders hold {} of lot {}: it cannot be counted below that",
            Quantity::from_thousandths(reserved),
            lot.unwrap_or("(none)"),
        ),
    )
}
