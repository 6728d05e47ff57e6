//! Alerts: raised, re-triggered and cleared in the transaction of the stock change that causes
//! them (levels: `low_stock`, `out_of_stock`; batches received or emptied: `expiring`,
//! `expired`), and by the scheduled expiry scan for what time alone changes. People
//! acknowledge and resolve them. The rules are `depot_domain::stock::alert`.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use depot_domain::message::Message;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::stock::alert::{
    LEVEL_KINDS, Transition, batch_condition, expiring_horizon, level_holds, subject, transition,
};
use depot_domain::stock::{AlertFilter, AlertKind, AlertStatus, BatchStatus, Quantity};
use depot_domain::{Actor, AppError, AppResult, ErrorCode};
use depot_store::entity::{alert, batch};
use depot_store::repo::{alerts, stock};
use serde::Serialize;
use uuid::Uuid;

use super::events;
use crate::audit::AuditEntry;
use crate::background::Background;
use crate::catalog::map_page;
use crate::client::ClientInfo;
use crate::uow::{UnitOfWork, Writer};

/// Default cadence of the expiry scan (overridable in `job_schedules`).
pub const EXPIRY_SCAN: &str = "every 1h";
/// Batches the scan handles per unit of work.
const SCAN_CHUNK: u64 = 500;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    pub id: Uuid,
    pub kind: AlertKind,
    pub status: AlertStatus,
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub batch_id: Option<Uuid>,
    pub raised_at: DateTime<Utc>,
    /// When the condition was last seen holding.
    pub last_seen_at: DateTime<Utc>,
    /// How many times the condition was seen (the raise included).
    pub occurrences: i64,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<Uuid>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who resolved it; absent when it resolved itself (`resolved_automatically`).
    pub resolved_by: Option<Uuid>,
    pub resolved_automatically: bool,
}

fn view(a: alert::Model) -> AlertView {
    AlertView {
        id: a.id,
        kind: AlertKind::parse(&a.kind).unwrap_or(AlertKind::LowStock),
        status: AlertStatus::parse(&a.status).unwrap_or(AlertStatus::Open),
        product_id: a.product_id,
        location_id: a.location_id,
        batch_id: a.batch_id,
        raised_at: a.raised_at,
        last_seen_at: a.last_seen_at,
        occurrences: a.occurrences,
        acknowledged_at: a.acknowledged_at,
        acknowledged_by: a.acknowledged_by,
        resolved_at: a.resolved_at,
        resolved_by: a.resolved_by,
        resolved_automatically: a.resolved_automatically,
    }
}

/// A level's on-hand quantity before and after one unit of work.
pub(crate) struct LevelChange {
    pub product: Uuid,
    pub location: Uuid,
    pub before: Quantity,
    pub after: Quantity,
    pub reorder_point: Option<Quantity>,
}

/// Opens an alert for (kind, subject), or re-triggers the unresolved one. Returns the event
/// when one was opened.
async fn raise(
    uow: &UnitOfWork,
    kind: AlertKind,
    product: Uuid,
    location: Uuid,
    batch: Option<Uuid>,
) -> AppResult<Option<Message>> {
    let key = subject(product, location, batch);
    if let Some(open) = alerts::unresolved_of(uow.tx(), kind, &key).await? {
        alerts::retrigger(uow.tx(), open.id, uow.now()).await?;
        return Ok(None);
    }
    open_new(uow, kind, product, location, batch).await
}

/// Opens an alert for (kind, subject) where none was unresolved a moment ago.
async fn open_new(
    uow: &UnitOfWork,
    kind: AlertKind,
    product: Uuid,
    location: Uuid,
    batch: Option<Uuid>,
) -> AppResult<Option<Message>> {
    let key = subject(product, location, batch);
    let row = alert::Model {
        id: depot_domain::id::new_id(),
        kind: kind.as_str().to_owned(),
        product_id: product,
        location_id: location,
        batch_id: batch,
        subject: key,
        status: AlertStatus::Open.as_str().to_owned(),
        raised_at: uow.now(),
        last_seen_at: uow.now(),
        occurrences: 1,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        resolved_by: None,
        resolved_automatically: false,
    };
    // A concurrent raiser (the scan, another instance) may have opened it meanwhile: then
    // this is one more occurrence of that one.
    if alerts::insert_unless_open(uow.tx(), row.clone()).await? {
        return Ok(Some(events::alert_raised(&row)));
    }
    if let Some(open) = alerts::unresolved_of(uow.tx(), kind, &row.subject).await? {
        alerts::retrigger(uow.tx(), open.id, uow.now()).await?;
    }
    Ok(None)
}

/// Resolves an alert by itself (its condition cleared).
async fn clear(uow: &UnitOfWork, mut open: alert::Model) -> AppResult<Message> {
    open.status = AlertStatus::Resolved.as_str().to_owned();
    open.resolved_at = Some(uow.now());
    open.resolved_automatically = true;
    let saved = alerts::save(uow.tx(), open).await?;
    Ok(events::alert_resolved(&saved, uow.now()))
}

/// The level alerts a unit of work's changes cause; returns the events to emit. The unresolved
/// alerts of the levels that change state are read (and locked) a chunk at a time, so a unit
/// that changes many levels (an import) does not ask once per level.
pub(crate) async fn on_levels(
    uow: &UnitOfWork,
    changes: &[LevelChange],
) -> AppResult<Vec<Message>> {
    let mut out = Vec::new();
    for chunk in changes.chunks(SCAN_CHUNK as usize) {
        out.extend(on_level_chunk(uow, chunk).await?);
    }
    Ok(out)
}

async fn on_level_chunk(uow: &UnitOfWork, changes: &[LevelChange]) -> AppResult<Vec<Message>> {
    let moves: Vec<(AlertKind, &LevelChange, Transition)> = changes
        .iter()
        .flat_map(|change| {
            LEVEL_KINDS.map(|kind| {
                let before = level_holds(kind, change.before, change.reorder_point);
                let after = level_holds(kind, change.after, change.reorder_point);
                (kind, change, transition(before, after))
            })
        })
        .filter(|(_, _, t)| *t != Transition::Quiet)
        .collect();
    if moves.is_empty() {
        return Ok(Vec::new());
    }
    let mut subjects: Vec<String> = moves
        .iter()
        .map(|(_, c, _)| subject(c.product, c.location, None))
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    let mut open: HashMap<(String, String), alert::Model> =
        alerts::unresolved_of_subjects(uow.tx(), &LEVEL_KINDS, &subjects)
            .await?
            .into_iter()
            .map(|a| ((a.kind.clone(), a.subject.clone()), a))
            .collect();
    let mut out = Vec::new();
    for (kind, change, t) in moves {
        let key = (
            kind.as_str().to_owned(),
            subject(change.product, change.location, None),
        );
        match (t, open.remove(&key)) {
            (Transition::Raise | Transition::Retrigger, Some(unresolved)) => {
                alerts::retrigger(uow.tx(), unresolved.id, uow.now()).await?;
            }
            (Transition::Raise, None) => {
                out.extend(open_new(uow, kind, change.product, change.location, None).await?);
            }
            (Transition::Clear, Some(unresolved)) => out.push(clear(uow, unresolved).await?),
            _ => {}
        }
    }
    Ok(out)
}

/// A batch a unit of work opened, as its expiry alert needs it.
pub(crate) struct OpenedBatch {
    pub id: Uuid,
    pub product: Uuid,
    pub location: Uuid,
    pub expiry: chrono::NaiveDate,
    pub quantity: Quantity,
}

/// The expiry alerts of batches this unit opened (no alert can name them yet): judged on what
/// the unit knows of them, with no read.
pub(crate) async fn on_opened(
    uow: &UnitOfWork,
    opened: &[OpenedBatch],
    warning_days: u32,
) -> AppResult<Vec<Message>> {
    let today = uow.now().date_naive();
    let mut out = Vec::new();
    for b in opened {
        if let Some(kind) = batch_condition(Some(b.expiry), b.quantity, today, warning_days) {
            out.extend(open_new(uow, kind, b.product, b.location, Some(b.id)).await?);
        }
    }
    Ok(out)
}

/// The batch alerts a unit of work causes: an emptied batch's alerts resolve; a batch that
/// received stock and expires soon (or has expired) raises one.
pub(crate) async fn on_batches(
    uow: &UnitOfWork,
    closed: &BTreeSet<Uuid>,
    received: &BTreeSet<Uuid>,
    warning_days: u32,
) -> AppResult<Vec<Message>> {
    let mut out = Vec::new();
    for id in closed {
        for open in alerts::unresolved_of_batch(uow.tx(), *id).await? {
            out.push(clear(uow, open).await?);
        }
    }
    let received: Vec<Uuid> = received.difference(closed).copied().collect();
    for chunk in received.chunks(SCAN_CHUNK as usize) {
        let batches = stock::batches_by_ids(uow.tx(), chunk).await?;
        out.extend(on_expiry(uow, &batches, warning_days).await?.0);
    }
    Ok(out)
}

/// The expiry rule for batches with stock, in the unit of work that changed them or in the
/// scan: raise `expiring` or `expired` unless an alert of that kind is unresolved or was
/// resolved by hand (re-trigger only the unresolved one), and resolve `expiring` once
/// `expired` holds. Returns the events and how many alerts were opened.
async fn on_expiry(
    uow: &UnitOfWork,
    batches: &[batch::Model],
    warning_days: u32,
) -> AppResult<(Vec<Message>, u64)> {
    let today = uow.now().date_naive();
    let ids: Vec<Uuid> = batches.iter().map(|b| b.id).collect();
    let known =
        alerts::of_batches(uow.tx(), &[AlertKind::Expiring, AlertKind::Expired], &ids).await?;
    let mut messages = Vec::new();
    let mut raised = 0;
    for b in batches {
        let quantity = Quantity::from_thousandths(b.quantity);
        let Some(kind) = batch_condition(b.expiry, quantity, today, warning_days) else {
            continue;
        };
        let mut seen = false;
        for a in known.iter().filter(|a| a.batch_id == Some(b.id)) {
            let unresolved = a.status != AlertStatus::Resolved.as_str();
            if a.kind == kind.as_str() && (unresolved || !a.resolved_automatically) {
                seen = true;
            }
            if kind == AlertKind::Expired && a.kind == AlertKind::Expiring.as_str() && unresolved {
                messages.push(clear(uow, a.clone()).await?);
            }
        }
        if !seen
            && let Some(message) = raise(uow, kind, b.product_id, b.location_id, Some(b.id)).await?
        {
            messages.push(message);
            raised += 1;
        }
    }
    Ok((messages, raised))
}

#[derive(Clone)]
pub struct AlertService {
    writer: Writer,
    warning_days: u32,
}

impl AlertService {
    pub fn new(writer: Writer, warning_days: u32) -> Self {
        Self {
            writer,
            warning_days,
        }
    }

    /// Registers the expiry scan.
    pub fn register(&self, background: &mut Background) {
        let this = self.clone();
        background.periodic("stock_expiry_scan", EXPIRY_SCAN, move || {
            let this = this.clone();
            async move { this.scan_expiry().await }
        });
    }

    pub async fn list(
        &self,
        filter: AlertFilter,
        page: &PageRequest,
    ) -> AppResult<Page<AlertView>> {
        let page = alerts::list(self.writer.db().reader(), filter, page).await?;
        Ok(map_page(page, view))
    }

    pub async fn get(&self, id: Uuid) -> AppResult<AlertView> {
        alerts::get(self.writer.db().reader(), id)
            .await?
            .map(view)
            .ok_or_else(not_found)
    }

    /// Someone is on it: records who and when (once; acknowledging again changes nothing).
    pub async fn acknowledge(
        &self,
        actor: Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<AlertView> {
        let uow = self.writer.begin(actor, client).await?;
        let mut row = alerts::get_locked(uow.tx(), id)
            .await?
            .ok_or_else(not_found)?;
        match AlertStatus::parse(&row.status) {
            Some(AlertStatus::Resolved) => return Err(resolved()),
            Some(AlertStatus::Acknowledged) => {
                uow.commit().await?;
                return Ok(view(row));
            }
            _ => {}
        }
        row.status = AlertStatus::Acknowledged.as_str().to_owned();
        row.acknowledged_at = Some(uow.now());
        row.acknowledged_by = actor.user_id();
        let saved = alerts::save(uow.tx(), row).await?;
        uow.audit(AuditEntry::new("alert.acknowledged").target("alert", id))
            .await?;
        uow.commit().await?;
        Ok(view(saved))
    }

    /// Resolves an alert by hand, recording who and when.
    pub async fn resolve(
        &self,
        actor: Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<AlertView> {
        let mut uow = self.writer.begin(actor, client).await?;
        let mut row = alerts::get_locked(uow.tx(), id)
            .await?
            .ok_or_else(not_found)?;
        if row.status == AlertStatus::Resolved.as_str() {
            return Err(resolved());
        }
        row.status = AlertStatus::Resolved.as_str().to_owned();
        row.resolved_at = Some(uow.now());
        row.resolved_by = actor.user_id();
        let saved = alerts::save(uow.tx(), row).await?;
        uow.audit(AuditEntry::new("alert.resolved").target("alert", id))
            .await?;
        let now = uow.now();
        uow.emit(&events::alert_resolved(&saved, now));
        uow.commit().await?;
        Ok(view(saved))
    }

    /// Raises `expiring` and `expired` alerts for open batches with stock, as time passes: at
    /// most one per batch and kind, however often it runs (an alert resolved by hand is not
    /// raised again); an `expiring` alert resolves when its batch's `expired` one opens.
    /// Returns how many alerts it raised.
    pub async fn scan_expiry(&self) -> AppResult<u64> {
        let today = self.writer.now().date_naive();
        let horizon = expiring_horizon(today, self.warning_days);
        let mut after = None;
        let mut raised = 0;
        loop {
            let chunk =
                stock::expiring_batches(self.writer.db().reader(), horizon, after, SCAN_CHUNK)
                    .await?;
            let Some(last) = chunk.last() else { break };
            after = Some(last.id);
            raised += self.scan_chunk(&chunk).await?;
        }
        Ok(raised)
    }

    async fn scan_chunk(&self, chunk: &[batch::Model]) -> AppResult<u64> {
        let mut uow = self
            .writer
            .begin(Actor::System("stock_expiry_scan"), &ClientInfo::local())
            .await?;
        // As they are now, locked: a change may have emptied one since the chunk was read.
        let ids: Vec<Uuid> = chunk.iter().map(|b| b.id).collect();
        let current: Vec<batch::Model> = stock::lock_batches(uow.tx(), &ids)
            .await?
            .into_iter()
            .filter(|b| b.status == BatchStatus::Open.as_str() && b.quantity > 0)
            .collect();
        let (messages, raised) = on_expiry(&uow, &current, self.warning_days).await?;
        for message in &messages {
            uow.emit(message);
        }
        uow.commit().await?;
        Ok(raised)
    }
}

fn not_found() -> AppError {
    AppError::new(ErrorCode::AlertsNotFound, "no such alert")
}

fn resolved() -> AppError {
    AppError::new(ErrorCode::AlertsResolved, "the alert is already resolved")
}
