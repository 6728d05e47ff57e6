//! The stock engine of one unit of work: it locks the levels a change touches (in one fixed
//! order, so concurrent changes never deadlock), takes from batches by plan or by name, puts
//! stock into batches, and at the end writes the levels, one movement per batch touched, the
//! alerts the change caused and a `stock.changed` event per level — all in the caller's
//! transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use depot_domain::stock::{
    BatchStatus, BatchStock, DepletionPolicy, MovementKind, ProductStatus, Quantity, ReferenceType,
    Unit, plan_issue,
};
use depot_domain::{Actor, AppError, AppResult, ErrorCode, FieldError};
use depot_store::ConnectionTrait;
use depot_store::entity::{batch, product, stock_level, stock_movement};
use depot_store::repo::stock::bulk;
use depot_store::repo::{categories, locations, products, stock};
use uuid::Uuid;

use super::alerts;
use super::events;
use crate::catalog::{location_not_found, policy, product_not_found, unit_of};
use crate::uow::UnitOfWork;

/// What the engine needs to know of a product.
#[derive(Debug, Clone)]
pub(crate) struct StockProduct {
    pub id: Uuid,
    pub unit: Unit,
    pub tracks_expiry: bool,
    pub archived: bool,
    pub policy: DepletionPolicy,
    pub reorder_point: Option<Quantity>,
}

/// Loads a product with the depletion policy in force for it.
pub(crate) async fn stock_product(
    conn: &impl ConnectionTrait,
    id: Uuid,
    default_policy: DepletionPolicy,
) -> AppResult<Option<StockProduct>> {
    Ok(stock_products(conn, &[id], default_policy)
        .await?
        .remove(&id))
}

fn from_row(
    p: &product::Model,
    category_policy: Option<DepletionPolicy>,
    default_policy: DepletionPolicy,
) -> StockProduct {
    StockProduct {
        id: p.id,
        unit: unit_of(p),
        tracks_expiry: p.tracks_expiry,
        archived: p.status == ProductStatus::Archived.as_str(),
        policy: DepletionPolicy::resolve(
            policy(p.depletion_policy.as_deref()),
            category_policy,
            default_policy,
        ),
        reorder_point: p.reorder_point.map(Quantity::from_thousandths),
    }
}

/// The engine's view of the products with these ids that exist, read with one statement (and
/// one more for the categories whose policy some of them take).
pub(crate) async fn stock_products(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
    default_policy: DepletionPolicy,
) -> AppResult<BTreeMap<Uuid, StockProduct>> {
    let rows = products::by_ids(conn, ids).await?;
    // A category's policy matters only to a product without one of its own.
    let wanted: BTreeSet<Uuid> = rows
        .iter()
        .filter(|p| p.depletion_policy.is_none())
        .filter_map(|p| p.category_id)
        .collect();
    let wanted: Vec<Uuid> = wanted.into_iter().collect();
    let category_policies: HashMap<Uuid, Option<DepletionPolicy>> = if wanted.is_empty() {
        HashMap::new()
    } else {
        categories::by_ids(conn, &wanted)
            .await?
            .into_iter()
            .map(|c| (c.id, policy(c.depletion_policy.as_deref())))
            .collect()
    };
    Ok(rows
        .iter()
        .map(|p| {
            let category_policy = p
                .category_id
                .filter(|_| p.depletion_policy.is_none())
                .and_then(|c| category_policies.get(&c).copied().flatten());
            (p.id, from_row(p, category_policy, default_policy))
        })
        .collect())
}

/// A product named in a request body, or a 404 naming `field`.
pub(crate) async fn product_field(
    conn: &impl ConnectionTrait,
    id: Uuid,
    field: &str,
    default_policy: DepletionPolicy,
) -> AppResult<StockProduct> {
    stock_product(conn, id, default_policy)
        .await?
        .ok_or_else(|| missing_product(field))
}

/// 404: the product `field` names does not exist.
pub(crate) fn missing_product(field: &str) -> AppError {
    product_not_found().with_details(serde_json::json!({ "field": field }))
}

/// The engine's view of every product `ids` names, each looked up once; a missing one is a
/// 404 naming `field(i)` for the first position `i` that names it.
pub(crate) async fn products_named(
    conn: &impl ConnectionTrait,
    ids: Vec<Uuid>,
    field: fn(usize) -> String,
    default_policy: DepletionPolicy,
) -> AppResult<BTreeMap<Uuid, StockProduct>> {
    let mut products = BTreeMap::new();
    for (i, id) in ids.into_iter().enumerate() {
        if let std::collections::btree_map::Entry::Vacant(slot) = products.entry(id) {
            slot.insert(product_field(conn, id, &field(i), default_policy).await?);
        }
    }
    Ok(products)
}

/// A location named in a request body (whether it is active), or a 404 naming `field`.
pub(crate) async fn location_field(
    conn: &impl ConnectionTrait,
    id: Uuid,
    field: &str,
) -> AppResult<bool> {
    locations::get(conn, id)
        .await?
        .map(|l| l.active)
        .ok_or_else(|| location_not_found().with_details(serde_json::json!({ "field": field })))
}

/// Why and on whose behalf stock moves: copied onto every movement of the unit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cause {
    pub reason: Option<String>,
    pub note: Option<String>,
    pub reference: Option<(ReferenceType, Uuid)>,
}

/// Where received stock comes from: its lot, expiry, cost and receipt time.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub lot: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub unit_cost: Option<i64>,
    pub currency: Option<String>,
    pub received_at: DateTime<Utc>,
}

impl Origin {
    fn of(b: &batch::Model) -> Self {
        Self {
            lot: b.lot.clone(),
            expiry: b.expiry,
            unit_cost: b.unit_cost,
            currency: b.currency.clone(),
            received_at: b.received_at,
        }
    }
}

/// Which batches an issue may take from.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Eligible<'a> {
    /// Expired batches too (otherwise the planner skips them).
    pub allow_expired: bool,
    /// Only batches of this lot, when given.
    pub lot: Option<&'a str>,
    /// Only batches of this expiry, when given.
    pub expiry: Option<NaiveDate>,
}

impl Eligible<'_> {
    fn admits(&self, b: &batch::Model) -> bool {
        self.lot.is_none_or(|l| b.lot.as_deref() == Some(l))
            && self.expiry.is_none_or(|e| b.expiry == Some(e))
    }
}

/// One batch's part of a change, as taken.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub origin: Origin,
    pub quantity: Quantity,
}

struct Level {
    before: stock_level::Model,
    now: stock_level::Model,
    reorder_point: Option<Quantity>,
    change: i64,
}

/// The working set of one unit of work's stock changes.
pub(crate) struct Ledger {
    kind_cause: Cause,
    /// Who the movements recorded next are for, when not the unit of work's actor and request
    /// (a grouped unit applies several requests).
    on_behalf: Option<(Actor, Option<String>)>,
    levels: BTreeMap<(Uuid, Uuid), Level>,
    batches: HashMap<(Uuid, Uuid), Vec<batch::Model>>,
    /// Batches changed in this unit, written once when it finishes (a group of requests on one
    /// batch updates its row once, not once per request).
    dirty: BTreeMap<Uuid, batch::Model>,
    movements: Vec<stock_movement::Model>,
    /// Batches that reached zero in this unit (their alerts resolve).
    closed: BTreeSet<Uuid>,
    /// Batches that received stock in this unit (their expiry may raise an alert).
    received: BTreeSet<Uuid>,
}

impl Ledger {
    pub fn new(cause: Cause) -> Self {
        Self {
            kind_cause: cause,
            on_behalf: None,
            levels: BTreeMap::new(),
            batches: HashMap::new(),
            dirty: BTreeMap::new(),
            movements: Vec::new(),
            closed: BTreeSet::new(),
            received: BTreeSet::new(),
        }
    }

    /// Records the movements that follow for `actor`'s request `request_id`, for `cause`
    /// (one request of a grouped unit).
    pub fn act_for(&mut self, actor: Actor, request_id: Option<String>, cause: Cause) {
        self.on_behalf = Some((actor, request_id));
        self.kind_cause = cause;
    }

    /// How many movements the unit has recorded so far.
    pub fn movement_count(&self) -> usize {
        self.movements.len()
    }

    /// The level of (product, location) as this unit has it now (locked by it).
    pub fn level_now(&self, product: Uuid, location: Uuid) -> Option<stock_level::Model> {
        self.levels.get(&(product, location)).map(|l| l.now.clone())
    }

    /// Locks the levels of these (product, location) pairs, creating missing ones, in one
    /// global order (product, then location), so two units never wait on each other in a circle.
    pub async fn lock(
        &mut self,
        uow: &UnitOfWork,
        pairs: impl IntoIterator<Item = (&StockProduct, Uuid)>,
    ) -> AppResult<()> {
        for ((product, location), reorder_point) in self.not_held(pairs) {
            let level = match stock::lock_level(uow.tx(), product, location).await? {
                Some(level) => level,
                None => {
                    stock::ensure_level(uow.tx(), product, location, uow.now()).await?;
                    stock::lock_level(uow.tx(), product, location)
                        .await?
                        .ok_or_else(|| AppError::internal("level row vanished"))?
                }
            };
            self.hold(level, reorder_point);
        }
        Ok(())
    }

    /// The pairs whose levels this unit does not hold yet, in the global lock order, each with
    /// its product's reorder point.
    fn not_held<'p>(
        &self,
        pairs: impl IntoIterator<Item = (&'p StockProduct, Uuid)>,
    ) -> BTreeMap<(Uuid, Uuid), Option<Quantity>> {
        pairs
            .into_iter()
            .map(|(p, l)| ((p.id, l), p.reorder_point))
            .filter(|(key, _)| !self.levels.contains_key(key))
            .collect()
    }

    /// Keeps a level this unit has locked, as it was before any change.
    fn hold(&mut self, level: stock_level::Model, reorder_point: Option<Quantity>) {
        let key = (level.product_id, level.location_id);
        let level = Level {
            before: level.clone(),
            now: level,
            reorder_point,
            change: 0,
        };
        self.levels.insert(key, level);
    }

    /// Locks the level of (product, location) if it exists; returns whether it does (without
    /// one there is no stock to take, and the location may not even exist).
    pub async fn lock_existing(
        &mut self,
        uow: &UnitOfWork,
        product: &StockProduct,
        location: Uuid,
    ) -> AppResult<bool> {
        if self.levels.contains_key(&(product.id, location)) {
            return Ok(true);
        }
        let Some(level) = stock::lock_level(uow.tx(), product.id, location).await? else {
            return Ok(false);
        };
        self.hold(level, product.reorder_point);
        Ok(true)
    }

    /// [`Self::lock_existing`] for many pairs with one statement, in the same global order;
    /// then reads the open batches of every level it holds (but has not read yet) with one
    /// more — after the locks, so they are as the last holder of each level left them.
    pub async fn lock_existing_many(
        &mut self,
        uow: &UnitOfWork,
        pairs: impl IntoIterator<Item = (&StockProduct, Uuid)>,
    ) -> AppResult<()> {
        let wanted = self.not_held(pairs);
        let keys: Vec<(Uuid, Uuid)> = wanted.keys().copied().collect();
        for level in stock::lock_levels(uow.tx(), &keys).await? {
            let reorder_point = wanted
                .get(&(level.product_id, level.location_id))
                .copied()
                .flatten();
            self.hold(level, reorder_point);
        }
        let unread: Vec<(Uuid, Uuid)> = self
            .levels
            .keys()
            .filter(|key| !self.batches.contains_key(key))
            .copied()
            .collect();
        let mut stored: HashMap<(Uuid, Uuid), Vec<batch::Model>> =
            unread.iter().map(|key| (*key, Vec::new())).collect();
        for b in stock::open_batches_of(uow.tx(), &unread).await? {
            if let Some(rows) = stored.get_mut(&(b.product_id, b.location_id)) {
                rows.push(b);
            }
        }
        for (key, rows) in stored {
            self.keep_batches(key, rows);
        }
        Ok(())
    }

    fn level(&mut self, product: Uuid, location: Uuid) -> AppResult<&mut Level> {
        self.levels
            .get_mut(&(product, location))
            .ok_or_else(|| AppError::internal("stock changed without its level locked"))
    }

    async fn batches_of(
        &mut self,
        uow: &UnitOfWork,
        product: Uuid,
        location: Uuid,
    ) -> AppResult<&mut Vec<batch::Model>> {
        let key = (product, location);
        if !self.batches.contains_key(&key) {
            let stored = stock::open_batches(uow.tx(), product, location).await?;
            return Ok(self.keep_batches(key, stored));
        }
        Ok(self.batches.entry(key).or_default())
    }

    /// Keeps the open batches `stored` of `key` as this unit's working copy: what this unit
    /// changed but has not written yet wins over what is stored.
    fn keep_batches(
        &mut self,
        (product, location): (Uuid, Uuid),
        stored: Vec<batch::Model>,
    ) -> &mut Vec<batch::Model> {
        let mut rows: Vec<batch::Model> = stored
            .into_iter()
            .filter(|b| !self.dirty.contains_key(&b.id))
            .collect();
        rows.extend(
            self.dirty
                .values()
                .filter(|b| {
                    b.product_id == product
                        && b.location_id == location
                        && b.status == BatchStatus::Open.as_str()
                })
                .cloned(),
        );
        self.batches.entry((product, location)).or_insert(rows)
    }

    /// Available (on hand − reserved) at a locked level.
    pub fn available(&self, product: Uuid, location: Uuid) -> Quantity {
        self.levels
            .get(&(product, location))
            .map_or(Quantity::ZERO, |l| {
                Quantity::from_thousandths(l.now.on_hand - l.now.reserved)
            })
    }

    /// Takes `wanted` of `product` at `location` by its depletion policy, from the batches
    /// `eligible` admits. Never below what is available; on a shortfall nothing is taken and
    /// the error says how much there is.
    pub async fn issue(
        &mut self,
        uow: &UnitOfWork,
        kind: MovementKind,
        product: &StockProduct,
        location: Uuid,
        wanted: Quantity,
        eligible: &Eligible<'_>,
    ) -> AppResult<Result<Vec<Taken>, Quantity>> {
        let available = self.available(product.id, location);
        let today = uow.now().date_naive();
        let batches = self.batches_of(uow, product.id, location).await?;
        let stock: Vec<BatchStock> = batches
            .iter()
            .filter(|b| eligible.admits(b))
            .map(free_stock)
            .collect();
        let plan = match plan_issue(
            &stock,
            wanted,
            product.policy,
            today,
            eligible.allow_expired,
        ) {
            Ok(plan) if wanted <= available => plan,
            Ok(_) => return Ok(Err(available)),
            Err(short) => return Ok(Err(short.available.min(available))),
        };
        let mut taken = Vec::with_capacity(plan.len());
        for take in plan {
            taken.push(
                self.take_from(uow, kind, product.id, location, take.batch, take.quantity)
                    .await?,
            );
        }
        Ok(Ok(taken))
    }

    /// Takes `quantity` from one named batch (checked by the caller to hold enough).
    pub async fn take_from(
        &mut self,
        uow: &UnitOfWork,
        kind: MovementKind,
        product: Uuid,
        location: Uuid,
        batch_id: Uuid,
        quantity: Quantity,
    ) -> AppResult<Taken> {
        let now = uow.now();
        let batches = self.batches_of(uow, product, location).await?;
        let b = batches
            .iter_mut()
            .find(|b| b.id == batch_id)
            .ok_or_else(|| AppError::internal("planned batch is not open here"))?;
        b.quantity -= quantity.thousandths();
        b.updated_at = now;
        if b.quantity == 0 {
            b.status = BatchStatus::Closed.as_str().to_owned();
            b.closed_at = Some(now);
        }
        let saved = b.clone();
        if saved.quantity == 0 {
            // A closed batch is no longer open stock: nothing may plan on or top it up.
            batches.retain(|b| b.id != saved.id);
            self.closed.insert(saved.id);
        }
        let origin = Origin::of(&saved);
        self.dirty.insert(saved.id, saved.clone());
        self.record(uow, kind, &saved, -quantity.thousandths())?;
        Ok(Taken { origin, quantity })
    }

    /// Sets a batch (open or closed, at a locked level) to `counted`; returns what it held.
    pub async fn set_counted(
        &mut self,
        uow: &UnitOfWork,
        mut b: batch::Model,
        counted: Quantity,
    ) -> AppResult<i64> {
        let now = uow.now();
        let expected = b.quantity;
        let difference = counted.thousandths() - expected;
        if difference == 0 {
            return Ok(expected);
        }
        b.quantity = counted.thousandths();
        b.updated_at = now;
        if b.quantity == 0 {
            b.status = BatchStatus::Closed.as_str().to_owned();
            b.closed_at = Some(now);
            self.closed.insert(b.id);
        } else {
            b.status = BatchStatus::Open.as_str().to_owned();
            b.closed_at = None;
            if difference > 0 {
                self.received.insert(b.id);
            }
        }
        let saved = b;
        self.dirty.insert(saved.id, saved.clone());
        // Keep the cache of open batches (if loaded) in step.
        if let Some(cached) = self.batches.get_mut(&(saved.product_id, saved.location_id)) {
            cached.retain(|c| c.id != saved.id);
            if saved.quantity > 0 {
                cached.push(saved.clone());
            }
        }
        self.record(uow, MovementKind::Count, &saved, difference)?;
        Ok(expected)
    }

    /// Puts `quantity` of `product` into `location`: tops up the open batch with the same lot
    /// and expiry (averaging the unit cost), else opens a batch.
    pub async fn receive(
        &mut self,
        uow: &UnitOfWork,
        kind: MovementKind,
        product: Uuid,
        location: Uuid,
        quantity: Quantity,
        origin: Origin,
    ) -> AppResult<batch::Model> {
        let now = uow.now();
        let batches = self.batches_of(uow, product, location).await?;
        let existing = batches
            .iter_mut()
            .filter(|b| b.lot == origin.lot && b.expiry == origin.expiry)
            .min_by_key(|b| b.id);
        let saved = match existing {
            Some(b) => {
                let (cost, currency) = blend_cost(b, quantity, &origin)?;
                b.unit_cost = cost;
                b.currency = currency;
                b.quantity += quantity.thousandths();
                b.updated_at = now;
                let topped = b.clone();
                self.dirty.insert(topped.id, topped.clone());
                topped
            }
            None => {
                let row = stock::insert_batch(
                    uow.tx(),
                    batch::Model {
                        id: depot_domain::id::new_id(),
                        product_id: product,
                        location_id: location,
                        lot: origin.lot,
                        expiry: origin.expiry,
                        received_at: origin.received_at,
                        unit_cost: origin.unit_cost,
                        currency: origin.currency,
                        quantity: quantity.thousandths(),
                        reserved: 0,
                        status: BatchStatus::Open.as_str().to_owned(),
                        created_at: now,
                        updated_at: now,
                        closed_at: None,
                    },
                )
                .await?;
                batches.push(row.clone());
                row
            }
        };
        self.received.insert(saved.id);
        self.record(uow, kind, &saved, quantity.thousandths())?;
        Ok(saved)
    }

    /// Holds `wanted` of `product` at `location` for an order, from the batches its depletion
    /// policy takes first (never expired ones), without moving anything. Returns the batches
    /// and how much of each, or on a shortfall (holding nothing) how much is available.
    pub async fn reserve(
        &mut self,
        uow: &UnitOfWork,
        product: &StockProduct,
        location: Uuid,
        wanted: Quantity,
    ) -> AppResult<Result<Vec<(Uuid, Quantity)>, Quantity>> {
        let available = self.available(product.id, location);
        let today = uow.now().date_naive();
        let batches = self.batches_of(uow, product.id, location).await?;
        let stock: Vec<BatchStock> = batches.iter().map(free_stock).collect();
        let plan = match plan_issue(&stock, wanted, product.policy, today, false) {
            Ok(plan) if wanted <= available => plan,
            Ok(_) => return Ok(Err(available)),
            Err(short) => return Ok(Err(short.available.min(available))),
        };
        let mut held = Vec::with_capacity(plan.len());
        for take in plan {
            self.change_reserved(
                uow,
                product.id,
                location,
                take.batch,
                take.quantity.thousandths(),
            )
            .await?;
            held.push((take.batch, take.quantity));
        }
        Ok(Ok(held))
    }

    /// Lets go of `quantity` held from one batch (the level must be locked).
    pub async fn release(
        &mut self,
        uow: &UnitOfWork,
        product: Uuid,
        location: Uuid,
        batch_id: Uuid,
        quantity: Quantity,
    ) -> AppResult<()> {
        self.change_reserved(uow, product, location, batch_id, -quantity.thousandths())
            .await
    }

    async fn change_reserved(
        &mut self,
        uow: &UnitOfWork,
        product: Uuid,
        location: Uuid,
        batch_id: Uuid,
        by: i64,
    ) -> AppResult<()> {
        let now = uow.now();
        let batches = self.batches_of(uow, product, location).await?;
        let b = batches
            .iter_mut()
            .find(|b| b.id == batch_id)
            .ok_or_else(|| AppError::internal("reserved batch is not open here"))?;
        b.reserved += by;
        if b.reserved < 0 || b.reserved > b.quantity {
            return Err(AppError::internal(
                "a batch would reserve what it does not hold",
            ));
        }
        b.updated_at = now;
        let saved = b.clone();
        self.dirty.insert(saved.id, saved);
        self.level(product, location)?.now.reserved += by;
        Ok(())
    }

    /// Issues what an order held from one batch: releases the hold and takes the stock out.
    pub async fn take_reserved(
        &mut self,
        uow: &UnitOfWork,
        kind: MovementKind,
        product: Uuid,
        location: Uuid,
        batch_id: Uuid,
        quantity: Quantity,
    ) -> AppResult<Taken> {
        self.release(uow, product, location, batch_id, quantity)
            .await?;
        self.take_from(uow, kind, product, location, batch_id, quantity)
            .await
    }

    /// A batch as this unit has it: changed here (not yet written), else as stored.
    pub async fn current_batch(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
    ) -> AppResult<Option<batch::Model>> {
        match self.dirty.get(&id) {
            Some(changed) => Ok(Some(changed.clone())),
            None => stock::get_batch(uow.tx(), id).await,
        }
    }

    /// Puts `quantity` back into the batch it once came from (reopening it if it had closed),
    /// at a locked level.
    pub async fn put_back(
        &mut self,
        uow: &UnitOfWork,
        kind: MovementKind,
        batch_id: Uuid,
        quantity: Quantity,
    ) -> AppResult<batch::Model> {
        let now = uow.now();
        let mut b = self
            .current_batch(uow, batch_id)
            .await?
            .ok_or_else(|| AppError::internal("returned batch vanished"))?;
        b.quantity += quantity.thousandths();
        b.status = BatchStatus::Open.as_str().to_owned();
        b.closed_at = None;
        b.updated_at = now;
        let saved = b;
        self.dirty.insert(saved.id, saved.clone());
        if let Some(cached) = self.batches.get_mut(&(saved.product_id, saved.location_id)) {
            cached.retain(|c| c.id != saved.id);
            cached.push(saved.clone());
        }
        self.closed.remove(&saved.id);
        self.received.insert(saved.id);
        self.record(uow, kind, &saved, quantity.thousandths())?;
        Ok(saved)
    }

    fn record(
        &mut self,
        uow: &UnitOfWork,
        kind: MovementKind,
        b: &batch::Model,
        signed: i64,
    ) -> AppResult<()> {
        let level = self.level(b.product_id, b.location_id)?;
        level.now.on_hand += signed;
        level.change += signed;
        let (actor, request_id) = match &self.on_behalf {
            Some((actor, request_id)) => (*actor, request_id.clone()),
            None => (uow.actor(), uow.client().request_id.clone()),
        };
        let cause = &self.kind_cause;
        self.movements.push(stock_movement::Model {
            id: depot_domain::id::new_id(),
            product_id: b.product_id,
            location_id: b.location_id,
            batch_id: b.id,
            kind: kind.as_str().to_owned(),
            quantity: signed,
            balance_after: b.quantity,
            reason: cause.reason.clone(),
            note: cause.note.clone(),
            actor_id: actor.user_id(),
            actor_name: actor.system_name().map(str::to_owned),
            reference_type: cause.reference.map(|(t, _)| t.as_str().to_owned()),
            reference_id: cause.reference.map(|(_, id)| id),
            request_id,
            created_at: uow.now(),
        });
        Ok(())
    }

    /// Writes the levels and the ledger, evaluates alerts and emits the events. Returns the
    /// movements written and the levels as they now are.
    pub async fn finish(
        self,
        uow: &mut UnitOfWork,
        expiry_warning_days: u32,
    ) -> AppResult<(Vec<stock_movement::Model>, Vec<stock_level::Model>)> {
        self.write(uow, expiry_warning_days, true).await
    }

    /// [`Self::finish`] without the `stock.changed` events: the caller emits its own (one per
    /// request of a grouped unit).
    pub async fn finish_quietly(
        self,
        uow: &mut UnitOfWork,
        expiry_warning_days: u32,
    ) -> AppResult<(Vec<stock_movement::Model>, Vec<stock_level::Model>)> {
        self.write(uow, expiry_warning_days, false).await
    }

    async fn write(
        self,
        uow: &mut UnitOfWork,
        expiry_warning_days: u32,
        level_events: bool,
    ) -> AppResult<(Vec<stock_movement::Model>, Vec<stock_level::Model>)> {
        let now = uow.now();
        // One statement for the batches and one for the levels, however many (a grouped unit
        // changes several); a single row takes the plain UPDATE.
        let mut dirty: Vec<batch::Model> = self.dirty.into_values().collect();
        match dirty.len() {
            0 => {}
            1 => {
                stock::save_batch(uow.tx(), dirty.remove(0)).await?;
            }
            _ => bulk::save_batches(uow.tx(), dirty).await?,
        }
        let mut written = Vec::new();
        let mut levels = Vec::with_capacity(self.levels.len());
        let mut changes = Vec::new();
        let reserved_changed: BTreeSet<(Uuid, Uuid)> = self
            .levels
            .iter()
            .filter(|(_, l)| l.now.reserved != l.before.reserved)
            .map(|(key, _)| *key)
            .collect();
        for level in self.levels.into_values() {
            if level.now.on_hand < 0 || level.now.reserved > level.now.on_hand {
                return Err(AppError::internal(
                    "a level would go below what it must hold",
                ));
            }
            if level.change != 0 || level.now.reserved != level.before.reserved {
                let mut row = level.now.clone();
                row.updated_at = now;
                written.push(row.clone());
                changes.push(alerts::LevelChange {
                    product: row.product_id,
                    location: row.location_id,
                    before: Quantity::from_thousandths(level.before.on_hand),
                    after: Quantity::from_thousandths(row.on_hand),
                    reorder_point: level.reorder_point,
                });
                levels.push((row, level.change));
            } else {
                levels.push((level.now, 0));
            }
        }
        match written.as_slice() {
            [] => {}
            [only] => stock::set_level(uow.tx(), only).await?,
            _ => bulk::set_levels(uow.tx(), written).await?,
        }
        stock::ledger::append(uow.tx(), self.movements.clone()).await?;
        let mut raised = alerts::on_levels(uow, &changes).await?;
        raised.extend(
            alerts::on_batches(uow, &self.closed, &self.received, expiry_warning_days).await?,
        );
        let reference = self.kind_cause.reference;
        for (level, change) in levels.iter().filter(|_| level_events) {
            if *change != 0 || reserved_changed.contains(&(level.product_id, level.location_id)) {
                let kinds: BTreeSet<&str> = self
                    .movements
                    .iter()
                    .filter(|m| {
                        m.product_id == level.product_id && m.location_id == level.location_id
                    })
                    .map(|m| m.kind.as_str())
                    .collect();
                uow.emit(&events::stock_changed(
                    level, *change, &kinds, reference, now,
                ));
            }
        }
        for message in raised {
            uow.emit(&message);
        }
        Ok((self.movements, levels.into_iter().map(|(l, _)| l).collect()))
    }
}

/// A batch as the planner sees it: what is not held for orders.
fn free_stock(b: &batch::Model) -> BatchStock {
    BatchStock {
        id: b.id,
        expiry: b.expiry,
        received_at: b.received_at,
        quantity: Quantity::from_thousandths(b.quantity - b.reserved),
    }
}

/// The unit cost of a batch topped up with `quantity` from `origin`: the quantity-weighted
/// average (rounded half up) when both have a cost in the same currency.
fn blend_cost(
    b: &batch::Model,
    quantity: Quantity,
    origin: &Origin,
) -> AppResult<(Option<i64>, Option<String>)> {
    match (b.unit_cost, origin.unit_cost) {
        (_, None) => Ok((b.unit_cost, b.currency.clone())),
        (None, Some(_)) => Ok((origin.unit_cost, origin.currency.clone())),
        (Some(old), Some(new)) => {
            if b.currency != origin.currency {
                return Err(AppError::validation(vec![FieldError::new(
                    "currency",
                    "currency.mismatch",
                    format!(
                        "differs from the batch's currency {}",
                        b.currency.as_deref().unwrap_or("")
                    ),
                )]));
            }
            let (old_q, new_q) = (i128::from(b.quantity), i128::from(quantity.thousandths()));
            let total = old_q + new_q;
            if total == 0 {
                return Ok((Some(new), origin.currency.clone()));
            }
            let weighted = i128::from(old) * old_q + i128::from(new) * new_q;
            let average = (weighted * 2 + total) / (total * 2);
            Ok((
                Some(i64::try_from(average).unwrap_or(i64::MAX)),
                origin.currency.clone(),
            ))
        }
    }
}

/// 409 `stock.insufficient` with how much is available (and extra details).
pub(crate) fn insufficient(available: Quantity, extra: serde_json::Value) -> AppError {
    let mut details = serde_json::json!({ "available": available.to_json() });
    if let (Some(d), serde_json::Value::Object(more)) = (details.as_object_mut(), extra) {
        d.extend(more);
    }
    AppError::new(ErrorCode::StockInsufficient, "not enough stock").with_details(details)
}
