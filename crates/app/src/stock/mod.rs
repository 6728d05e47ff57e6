//! Stock: adjustments, transfers and cycle counts that change batches, levels and the ledger
//! in one unit of work each; the reads (levels — now or as of a past instant —, batches,
//! movements, transfers, counts) and the ledger check (`depot verify`).
//!
//! Concurrency: a change locks the levels it touches in one global order before reading any
//! batch (`ledger::Ledger::lock`), so on PostgreSQL concurrent changes of one product queue on
//! its level row instead of overselling or deadlocking; on SQLite the single writer serialises
//! them. A whole unit is rerun after a transient conflict (`retry_transient`).

pub mod alerts;
mod events;
mod grouping;
pub(crate) mod ledger;
pub(crate) mod views;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::stock::{
    AdjustmentReason, BatchFilter, DepletionPolicy, LevelFilter, MovementFilter, MovementKind,
    Quantity, ReferenceType,
};
use depot_domain::trade::contact::validate_currency;
use depot_domain::{Actor, AppError, AppResult, ErrorCode, FieldError, Validator};
use depot_store::entity::{stock_count, stock_count_line, transfer, transfer_line};
use depot_store::repo::stock::verify::{self, Drift, Findings};
use depot_store::repo::{counts, stock, transfers};
use serde::Serialize;
use uuid::Uuid;

use self::ledger::{
    Cause, Eligible, Ledger, Origin, StockProduct, insufficient, location_field, product_field,
};
pub use self::views::{
    AdjustmentView, BatchView, CountLineView, CountView, LevelView, MovementView, TransferLineView,
    TransferView,
};
use crate::catalog::{map_page, quantity_field};
use crate::client::ClientInfo;
use crate::uow::{UnitOfWork, Writer, retry_transient};

/// The cause an adjustment's movements carry.
fn adjustment_cause(input: &Adjustment) -> Cause {
    Cause {
        reason: Some(input.reason.as_str().to_owned()),
        note: input.note.clone(),
        reference: None,
    }
}

/// Most lines one transfer or count may have.
pub const MAX_LINES: usize = 500;
/// Longest note on a movement, transfer or count.
pub const NOTE_MAX: usize = 1_000;
/// Longest lot number.
pub const LOT_MAX: usize = 64;

/// A manual adjustment. `quantity` is a JSON number in the product's unit: positive adds,
/// negative removes.
#[derive(Debug, Clone)]
pub struct Adjustment {
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub quantity: serde_json::Number,
    pub reason: AdjustmentReason,
    pub lot: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub unit_cost: Option<i64>,
    pub currency: Option<String>,
    pub note: Option<String>,
    pub allow_expired: bool,
}

#[derive(Debug, Clone)]
pub struct TransferLine {
    pub product_id: Uuid,
    pub quantity: serde_json::Number,
    /// Take from this batch rather than by policy.
    pub batch_id: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct NewTransfer {
    pub from_location_id: Uuid,
    pub to_location_id: Uuid,
    pub lines: Vec<TransferLine>,
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CountLine {
    pub batch_id: Uuid,
    pub counted: serde_json::Number,
}

#[derive(Debug, Clone)]
pub struct NewCount {
    pub location_id: Uuid,
    pub lines: Vec<CountLine>,
    pub note: Option<String>,
}

/// Where incoming stock comes from, as a request states it: a lot of 1–64 characters, and a
/// non-negative unit cost (minor units) that goes with an ISO currency.
pub(crate) fn validate_origin(
    v: &mut Validator,
    lot: Option<&str>,
    unit_cost: Option<i64>,
    currency: Option<&str>,
) {
    if let Some(lot) = lot {
        v.line("lot", lot, 1, LOT_MAX);
    }
    v.check(
        unit_cost.is_some() == currency.is_some(),
        if unit_cost.is_some() {
            "currency"
        } else {
            "unit_cost"
        },
        "required",
        "unit_cost and currency go together",
    );
    v.check(
        unit_cost.is_none_or(|c| c >= 0),
        "unit_cost",
        "negative",
        "must not be negative",
    );
    if let Some(currency) = currency {
        validate_currency(v, "currency", currency);
    }
}

/// The ledger check's result: what was checked and each disagreement in words.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub batches: i64,
    pub levels: i64,
    pub movements: i64,
    pub mismatches: Vec<String>,
}

fn describe(d: &Drift) -> String {
    let q = |t: i64| Quantity::from_thousandths(t).to_string();
    match d {
        Drift::Batch {
            batch,
            recorded,
            ledger,
        } => format!(
            "batch {batch}: quantity {} but its movements sum to {}",
            q(*recorded),
            q(*ledger)
        ),
        Drift::Level {
            product,
            location,
            recorded,
            batches,
        } => format!(
            "level {product} @ {location}: on hand {} but its batches sum to {}",
            q(*recorded),
            q(*batches)
        ),
        Drift::NegativeBatch { batch, quantity } => {
            format!("batch {batch}: negative quantity {}", q(*quantity))
        }
        Drift::Reservation {
            product,
            location,
            on_hand,
            reserved,
        } => format!(
            "level {product} @ {location}: on hand {} with {} reserved",
            q(*on_hand),
            q(*reserved)
        ),
        Drift::Status {
            batch,
            status,
            quantity,
        } => format!("batch {batch}: {status} with quantity {}", q(*quantity)),
        Drift::BatchReserved {
            batch,
            quantity,
            reserved,
            reservations,
        } => format!(
            "batch {batch}: {} reserved of {} but its active reservations hold {}",
            q(*reserved),
            q(*quantity),
            q(*reservations)
        ),
        Drift::LevelReserved {
            product,
            location,
            recorded,
            batches,
        } => format!(
            "level {product} @ {location}: {} reserved but its batches reserve {}",
            q(*recorded),
            q(*batches)
        ),
    }
}

fn line_field(i: usize, field: &str) -> String {
    format!("lines[{i}].{field}")
}

fn validate_note(v: &mut Validator, note: Option<&str>) {
    if let Some(note) = note {
        v.text("note", note, NOTE_MAX);
    }
}

#[derive(Clone)]
pub struct StockService {
    writer: Writer,
    default_policy: DepletionPolicy,
    warning_days: u32,
    combiner: std::sync::Arc<grouping::Combiner>,
}

impl StockService {
    pub fn new(writer: Writer, default_policy: DepletionPolicy, warning_days: u32) -> Self {
        Self {
            writer,
            default_policy,
            warning_days,
            combiner: grouping::Combiner::new(1, std::time::Duration::ZERO, 1),
        }
    }

    /// Groups concurrent adjustments of one lane into one unit of work, up to `max_group` at a
    /// time, none waiting longer than `max_wait`, the (product, location) keys spread over
    /// `lanes` lanes (see `grouping`); a maximum of 1 turns grouping off.
    pub fn with_grouping(
        mut self,
        max_group: usize,
        max_wait: std::time::Duration,
        lanes: usize,
    ) -> Self {
        self.combiner = grouping::Combiner::new(max_group, max_wait, lanes);
        self
    }

    /// For commands that only read the database (`depot verify`).
    pub fn standalone(db: depot_store::Db, clock: std::sync::Arc<dyn depot_domain::Clock>) -> Self {
        Self::new(
            Writer::new(db, clock, crate::uow::RelayWaker::default()),
            DepletionPolicy::Fefo,
            0,
        )
    }

    // --- writes ---

    /// Adds or removes stock by hand (see [`Adjustment`]).
    pub async fn adjust(
        &self,
        actor: Actor,
        input: Adjustment,
        client: &ClientInfo,
    ) -> AppResult<AdjustmentView> {
        let mut v = Validator::new();
        validate_origin(
            &mut v,
            input.lot.as_deref(),
            input.unit_cost,
            input.currency.as_deref(),
        );
        validate_note(&mut v, input.note.as_deref());
        v.check(
            input.reason != AdjustmentReason::Other
                || input.note.as_deref().is_some_and(|n| !n.trim().is_empty()),
            "note",
            "required",
            "is required when the reason is other",
        );
        v.finish()?;
        if self.combiner.enabled() {
            let job = grouping::Job {
                actor,
                input,
                client: client.clone(),
            };
            return self.adjust_grouped(&self.combiner.clone(), job).await;
        }
        retry_transient(|| self.adjust_once(actor, &input, client)).await
    }

    async fn adjust_once(
        &self,
        actor: Actor,
        input: &Adjustment,
        client: &ClientInfo,
    ) -> AppResult<AdjustmentView> {
        let mut uow = self.writer.begin(actor, client).await?;
        let product = product_field(
            uow.tx(),
            input.product_id,
            "product_id",
            self.default_policy,
        )
        .await?;
        let mut ledger = Ledger::new(adjustment_cause(input));
        self.apply_adjustment(&uow, &mut ledger, &product, input)
            .await?;
        let (movements, levels) = ledger.finish(&mut uow, self.warning_days).await?;
        uow.commit().await?;
        Ok(AdjustmentView {
            movements: movements.into_iter().map(views::movement).collect(),
            level: levels
                .into_iter()
                .next()
                .map(views::level)
                .ok_or_else(|| AppError::internal("adjustment without a level"))?,
        })
    }

    /// One adjustment inside `ledger`'s unit of work: checks it against the product, then adds
    /// (topping up or opening a batch) or removes by the depletion policy. Every refusal comes
    /// before anything changes, so a refused adjustment leaves the unit as it was.
    pub(crate) async fn apply_adjustment(
        &self,
        uow: &UnitOfWork,
        ledger: &mut Ledger,
        product: &StockProduct,
        input: &Adjustment,
    ) -> AppResult<()> {
        let mut v = Validator::new();
        let quantity = quantity_field(&mut v, "quantity", &input.quantity, product.unit);
        if let Some(q) = quantity {
            v.check(!q.is_zero(), "quantity", "zero", "must not be zero");
            if q.is_positive() && product.tracks_expiry {
                v.check(
                    input.lot.is_some(),
                    "lot",
                    "required",
                    "is required: the product tracks expiry",
                );
                v.check(
                    input.expiry.is_some(),
                    "expiry",
                    "required",
                    "is required: the product tracks expiry",
                );
            }
        }
        v.finish()?;
        let quantity = quantity.unwrap_or(Quantity::ZERO);
        if quantity.is_positive() {
            let active = location_field(uow.tx(), input.location_id, "location_id").await?;
            refuse_new_stock(product.archived, active)?;
            ledger.lock(uow, [(product, input.location_id)]).await?;
            ledger
                .receive(
                    uow,
                    MovementKind::Adjustment,
                    product.id,
                    input.location_id,
                    quantity,
                    Origin {
                        lot: input.lot.clone(),
                        expiry: input.expiry,
                        unit_cost: input.unit_cost,
                        currency: input.currency.clone(),
                        received_at: uow.now(),
                    },
                )
                .await?;
        } else {
            // A removal needs stock, hence a level row (whose location exists); only without
            // one does it look the location up, to tell "no such location" from "none here".
            if !ledger
                .lock_existing(uow, product, input.location_id)
                .await?
            {
                location_field(uow.tx(), input.location_id, "location_id").await?;
                return Err(insufficient(Quantity::ZERO, serde_json::json!({})));
            }
            let eligible = Eligible {
                allow_expired: input.allow_expired,
                lot: input.lot.as_deref(),
                expiry: input.expiry,
            };
            ledger
                .issue(
                    uow,
                    MovementKind::Adjustment,
                    product,
                    input.location_id,
                    quantity.abs(),
                    &eligible,
                )
                .await?
                .map_err(|available| insufficient(available, serde_json::json!({})))?;
        }
        Ok(())
    }

    /// Moves stock between two locations, all lines or none.
    pub async fn transfer(
        &self,
        actor: Actor,
        input: NewTransfer,
        client: &ClientInfo,
    ) -> AppResult<TransferView> {
        let mut v = Validator::new();
        v.check(
            input.from_location_id != input.to_location_id,
            "to_location_id",
            "same_location",
            "must differ from from_location_id",
        );
        v.check(
            (1..=MAX_LINES).contains(&input.lines.len()),
            "lines",
            "count",
            "must have 1 to 500 lines",
        );
        validate_note(&mut v, input.note.as_deref());
        v.finish()?;
        retry_transient(|| self.transfer_once(actor, &input, client)).await
    }

    async fn transfer_once(
        &self,
        actor: Actor,
        input: &NewTransfer,
        client: &ClientInfo,
    ) -> AppResult<TransferView> {
        let mut uow = self.writer.begin(actor, client).await?;
        let (from, to) = (input.from_location_id, input.to_location_id);
        location_field(uow.tx(), from, "from_location_id").await?;
        let to_active = location_field(uow.tx(), to, "to_location_id").await?;
        // Read and check every line before anything moves.
        let mut products = BTreeMap::new();
        let mut lines = Vec::with_capacity(input.lines.len());
        let mut v = Validator::new();
        for (i, line) in input.lines.iter().enumerate() {
            let field = line_field(i, "product_id");
            if let std::collections::btree_map::Entry::Vacant(slot) =
                products.entry(line.product_id)
            {
                slot.insert(
                    product_field(uow.tx(), line.product_id, &field, self.default_policy).await?,
                );
            }
            let product = &products[&line.product_id];
            let quantity = quantity_field(
                &mut v,
                &line_field(i, "quantity"),
                &line.quantity,
                product.unit,
            );
            if let Some(q) = quantity {
                v.check(
                    q.is_positive(),
                    &line_field(i, "quantity"),
                    "not_positive",
                    "must be greater than 0",
                );
            }
            lines.push((line, quantity.unwrap_or(Quantity::ZERO)));
        }
        v.finish()?;
        if !to_active {
            return Err(inactive());
        }
        let id = depot_domain::id::new_id();
        let mut ledger = Ledger::new(Cause {
            reason: None,
            note: input.note.clone(),
            reference: Some((ReferenceType::Transfer, id)),
        });
        ledger
            .lock(&uow, products.values().flat_map(|p| [(p, from), (p, to)]))
            .await?;
        let mut rows = Vec::with_capacity(lines.len());
        for (i, (line, quantity)) in lines.into_iter().enumerate() {
            let product = &products[&line.product_id];
            let short = |available: Quantity| {
                insufficient(
                    available,
                    serde_json::json!({ "line": i, "product_id": product.id }),
                )
            };
            let taken = match line.batch_id {
                Some(batch_id) => {
                    let batch = ledger
                        .current_batch(&uow, batch_id)
                        .await?
                        .filter(|b| b.product_id == product.id && b.location_id == from)
                        .ok_or_else(|| {
                            AppError::validation(vec![FieldError::new(
                                line_field(i, "batch_id"),
                                "not_found",
                                "no such batch of this product at from_location_id",
                            )])
                        })?;
                    let held = Quantity::from_thousandths(batch.quantity - batch.reserved);
                    let available = held.min(ledger.available(product.id, from));
                    if quantity > available {
                        return Err(short(available));
                    }
                    vec![
                        ledger
                            .take_from(
                                &uow,
                                MovementKind::TransferOut,
                                product.id,
                                from,
                                batch_id,
                                quantity,
                            )
                            .await?,
                    ]
                }
                None => ledger
                    .issue(
                        &uow,
                        MovementKind::TransferOut,
                        product,
                        from,
                        quantity,
                        &Eligible::default(),
                    )
                    .await?
                    .map_err(short)?,
            };
            for part in taken {
                ledger
                    .receive(
                        &uow,
                        MovementKind::TransferIn,
                        product.id,
                        to,
                        part.quantity,
                        part.origin,
                    )
                    .await?;
            }
            rows.push(transfer_line::Model {
                id: depot_domain::id::new_id(),
                transfer_id: id,
                line_no: i32::try_from(i).unwrap_or(i32::MAX),
                product_id: product.id,
                batch_id: line.batch_id,
                quantity: quantity.thousandths(),
            });
        }
        let actor = uow.actor();
        let head = transfer::Model {
            id,
            from_location_id: from,
            to_location_id: to,
            note: input.note.clone(),
            actor_id: actor.user_id(),
            actor_name: actor.system_name().map(str::to_owned),
            created_at: uow.now(),
        };
        transfers::insert(uow.tx(), head.clone(), rows.clone()).await?;
        let (movements, _) = ledger.finish(&mut uow, self.warning_days).await?;
        let summary: Vec<(Uuid, i64)> = rows.iter().map(|l| (l.product_id, l.quantity)).collect();
        let now = uow.now();
        uow.emit(&events::transfer_completed(id, from, to, &summary, now));
        uow.commit().await?;
        Ok(views::transfer((head, rows), movements))
    }

    /// Posts a cycle count: each counted batch is set to what was counted, the differences
    /// written as `count` movements, in one unit of work.
    pub async fn count(
        &self,
        actor: Actor,
        input: NewCount,
        client: &ClientInfo,
    ) -> AppResult<CountView> {
        let mut v = Validator::new();
        v.check(
            (1..=MAX_LINES).contains(&input.lines.len()),
            "lines",
            "count",
            "must have 1 to 500 lines",
        );
        let mut seen = BTreeSet::new();
        for (i, line) in input.lines.iter().enumerate() {
            v.check(
                seen.insert(line.batch_id),
                &line_field(i, "batch_id"),
                "duplicate",
                "is counted twice in this count",
            );
        }
        validate_note(&mut v, input.note.as_deref());
        v.finish()?;
        retry_transient(|| self.count_once(actor, &input, client)).await
    }

    async fn count_once(
        &self,
        actor: Actor,
        input: &NewCount,
        client: &ClientInfo,
    ) -> AppResult<CountView> {
        let mut uow = self.writer.begin(actor, client).await?;
        let location = input.location_id;
        location_field(uow.tx(), location, "location_id").await?;
        let ids: Vec<Uuid> = input.lines.iter().map(|l| l.batch_id).collect();
        let found: BTreeMap<Uuid, _> = stock::batches_by_ids(uow.tx(), &ids)
            .await?
            .into_iter()
            .map(|b| (b.id, b))
            .collect();
        let mut v = Validator::new();
        let mut products = BTreeMap::new();
        let mut lines = Vec::with_capacity(input.lines.len());
        for (i, line) in input.lines.iter().enumerate() {
            let Some(batch) = found
                .get(&line.batch_id)
                .filter(|b| b.location_id == location)
            else {
                v.push(FieldError::new(
                    line_field(i, "batch_id"),
                    "not_found",
                    "no such batch at this location",
                ));
                continue;
            };
            if let std::collections::btree_map::Entry::Vacant(slot) =
                products.entry(batch.product_id)
            {
                slot.insert(
                    product_field(uow.tx(), batch.product_id, "lines", self.default_policy).await?,
                );
            }
            let unit = products[&batch.product_id].unit;
            let field = line_field(i, "counted");
            if let Some(counted) = quantity_field(&mut v, &field, &line.counted, unit) {
                v.check(
                    !counted.is_negative(),
                    &field,
                    "negative",
                    "must not be negative",
                );
                lines.push((batch.id, batch.product_id, counted));
            }
        }
        v.finish()?;
        let id = depot_domain::id::new_id();
        let mut ledger = Ledger::new(Cause {
            reason: None,
            note: input.note.clone(),
            reference: Some((ReferenceType::Count, id)),
        });
        ledger
            .lock(&uow, products.values().map(|p| (p, location)))
            .await?;
        // Re-read under the level locks, in one query: the batches may have changed since the
        // check above.
        let mut current: BTreeMap<Uuid, _> = stock::batches_by_ids(uow.tx(), &ids)
            .await?
            .into_iter()
            .map(|b| (b.id, b))
            .collect();
        let mut rows = Vec::with_capacity(lines.len());
        for (i, (batch_id, product_id, counted)) in lines.into_iter().enumerate() {
            let batch = current
                .remove(&batch_id)
                .ok_or_else(|| AppError::internal("counted batch vanished"))?;
            if counted.thousandths() < batch.reserved {
                return Err(insufficient(
                    Quantity::from_thousandths(batch.quantity - batch.reserved),
                    serde_json::json!({
                        "line": i,
                        "batch_id": batch_id,
                        "reserved": Quantity::from_thousandths(batch.reserved).to_json(),
                        "reason": "the count leaves the batch with less than orders reserve from it",
                    }),
                ));
            }
            let expected = ledger.set_counted(&uow, batch, counted).await?;
            rows.push(stock_count_line::Model {
                id: depot_domain::id::new_id(),
                count_id: id,
                line_no: i32::try_from(i).unwrap_or(i32::MAX),
                batch_id,
                product_id,
                expected,
                counted: counted.thousandths(),
                difference: counted.thousandths() - expected,
            });
        }
        // Judged on the whole count: a later line may restore what an earlier one took.
        for product in products.keys() {
            if ledger.available(*product, location).is_negative() {
                return Err(insufficient(
                    Quantity::ZERO,
                    serde_json::json!({
                        "product_id": product,
                        "reason": "the count leaves less than is reserved",
                    }),
                ));
            }
        }
        let actor = uow.actor();
        let head = stock_count::Model {
            id,
            location_id: location,
            note: input.note.clone(),
            actor_id: actor.user_id(),
            actor_name: actor.system_name().map(str::to_owned),
            created_at: uow.now(),
        };
        counts::insert(uow.tx(), head.clone(), rows.clone()).await?;
        let (movements, _) = ledger.finish(&mut uow, self.warning_days).await?;
        let summary: Vec<(Uuid, Uuid, i64)> = rows
            .iter()
            .map(|l| (l.batch_id, l.product_id, l.difference))
            .collect();
        let now = uow.now();
        uow.emit(&events::count_posted(id, location, &summary, now));
        uow.commit().await?;
        Ok(views::count((head, rows), movements))
    }

    // --- reads ---

    fn reader(&self) -> &depot_store::DatabaseConnection {
        self.writer.db().reader()
    }

    /// Levels now, or (with `as_of`) on hand as the ledger had it then.
    pub async fn levels(
        &self,
        filter: LevelFilter,
        as_of: Option<DateTime<Utc>>,
        page: &PageRequest,
    ) -> AppResult<Page<LevelView>> {
        match as_of {
            None => Ok(map_page(
                stock::list_levels(self.reader(), filter, page).await?,
                views::level,
            )),
            Some(at) => Ok(map_page(
                stock::ledger::on_hand_as_of(self.reader(), filter, at, page).await?,
                views::level_as_of,
            )),
        }
    }

    pub async fn batches(
        &self,
        filter: BatchFilter,
        page: &PageRequest,
    ) -> AppResult<Page<BatchView>> {
        Ok(map_page(
            stock::list_batches(self.reader(), filter, page).await?,
            views::batch,
        ))
    }

    pub async fn movements(
        &self,
        filter: &MovementFilter,
        page: &PageRequest,
    ) -> AppResult<Page<MovementView>> {
        Ok(map_page(
            stock::ledger::list(self.reader(), filter, page).await?,
            views::movement,
        ))
    }

    pub async fn transfers(&self, page: &PageRequest) -> AppResult<Page<TransferView>> {
        Ok(map_page(transfers::list(self.reader(), page).await?, |t| {
            views::transfer(t, Vec::new())
        }))
    }

    pub async fn get_transfer(&self, id: Uuid) -> AppResult<TransferView> {
        let found = transfers::get(self.reader(), id)
            .await?
            .ok_or_else(|| AppError::new(ErrorCode::TransfersNotFound, "no such transfer"))?;
        let movements =
            stock::ledger::of_reference(self.reader(), ReferenceType::Transfer, id).await?;
        Ok(views::transfer(found, movements))
    }

    pub async fn counts(&self, page: &PageRequest) -> AppResult<Page<CountView>> {
        Ok(map_page(counts::list(self.reader(), page).await?, |c| {
            views::count(c, Vec::new())
        }))
    }

    pub async fn get_count(&self, id: Uuid) -> AppResult<CountView> {
        let found = counts::get(self.reader(), id)
            .await?
            .ok_or_else(|| AppError::new(ErrorCode::CountsNotFound, "no such count"))?;
        let movements =
            stock::ledger::of_reference(self.reader(), ReferenceType::Count, id).await?;
        Ok(views::count(found, movements))
    }

    /// Recomputes every batch and level from the ledger in one consistent snapshot.
    pub async fn verify(&self) -> AppResult<VerifyReport> {
        let snapshot = self.writer.db().snapshot().await?;
        let Findings {
            batches,
            levels,
            movements,
            drifts,
        } = verify::check(&snapshot).await?;
        Ok(VerifyReport {
            batches,
            levels,
            movements,
            mismatches: drifts.iter().map(describe).collect(),
        })
    }
}

fn inactive() -> AppError {
    AppError::new(
        ErrorCode::LocationsInactive,
        "the location is inactive: it takes no new stock",
    )
}

/// New stock may come in only for an active product at an active location.
pub(crate) fn refuse_new_stock(archived: bool, location_active: bool) -> AppResult<()> {
    if archived {
        return Err(AppError::new(
            ErrorCode::ProductsArchived,
            "the product is archived: it takes no new stock",
        ));
    }
    if !location_active {
        return Err(inactive());
    }
    Ok(())
}
