//! Purchasing: suppliers, purchase orders through their states, and receiving goods against
//! them into batches.
//!
//! Every transition is one unit of work that locks the order's head row, checks the state it
//! starts from (`purchase_order.invalid_state` naming the current one otherwise), writes the
//! change, an audit row and a `purchase_order.transitioned` event. A receipt also goes through
//! the stock engine in the same unit: batches at the line's unit cost, `receipt` movements
//! referencing the order, levels, alerts and `stock.changed`.

mod email;
mod events;
mod receiving;
mod views;

use std::collections::HashMap;

use chrono::NaiveDate;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::stock::DepletionPolicy;
use depot_domain::trade::contact::{validate_contact, validate_currency};
use depot_domain::trade::{PoAction, PoState, PurchaseOrderFilter, SupplierFilter};
use depot_domain::{Actor, AppError, AppResult, ErrorCode, Validator};
use depot_store::entity::{purchase_order, purchase_order_line, supplier};
use depot_store::repo::{products, purchase_orders, suppliers};
use uuid::Uuid;

pub use self::views::{
    PurchaseOrderLineView, PurchaseOrderView, ReceiptLineView, ReceiptView, SupplierView,
};
use crate::audit::{AuditEntry, audit_json};
use crate::catalog::{ADDRESS_MAX, NAME_MAX, map_page};
use crate::client::ClientInfo;
pub use crate::orders::OrderLine;
use crate::orders::{line_field, read_lines, total};
use crate::stock::NOTE_MAX;
use crate::uow::{UnitOfWork, Writer, audited};

/// Longest supplier lead time, in days.
pub const LEAD_TIME_MAX: i32 = 3_650;

#[derive(Debug, Clone)]
pub struct NewSupplier {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub currency: String,
    pub lead_time_days: Option<i32>,
    pub active: bool,
}

/// Changes to a supplier; `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct SupplierPatch {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub address: Option<Option<String>>,
    pub currency: Option<String>,
    pub lead_time_days: Option<Option<i32>>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct NewPurchaseOrder {
    pub supplier_id: Uuid,
    /// Defaults to the supplier's currency.
    pub currency: Option<String>,
    pub expected_at: Option<NaiveDate>,
    pub notes: Option<String>,
    pub lines: Vec<OrderLine>,
}

/// Changes to a draft order; `lines` replaces every line.
#[derive(Debug, Clone, Default)]
pub struct PurchaseOrderPatch {
    pub supplier_id: Option<Uuid>,
    pub currency: Option<String>,
    pub expected_at: Option<Option<NaiveDate>>,
    pub notes: Option<Option<String>>,
    pub lines: Option<Vec<OrderLine>>,
}

#[derive(Debug, Clone)]
pub struct ReceiptLine {
    /// The purchase-order line received against.
    pub line_id: Uuid,
    pub quantity: serde_json::Number,
    /// Required for products that track expiry.
    pub lot: Option<String>,
    pub expiry: Option<NaiveDate>,
}

#[derive(Debug, Clone)]
pub struct NewReceipt {
    pub location_id: Uuid,
    pub lines: Vec<ReceiptLine>,
}

fn supplier_not_found() -> AppError {
    AppError::new(ErrorCode::SuppliersNotFound, "no such supplier")
}

fn order_not_found() -> AppError {
    AppError::new(ErrorCode::PurchaseOrderNotFound, "no such purchase order")
}

fn invalid_state(state: PoState, action: PoAction) -> AppError {
    AppError::new(
        ErrorCode::PurchaseOrderInvalidState,
        format!("a purchase order in state {state} cannot {action}"),
    )
    .with_details(serde_json::json!({ "state": state, "action": action }))
}

fn state_of(head: &purchase_order::Model) -> PoState {
    PoState::parse(&head.state).unwrap_or(PoState::Draft)
}

fn audit_action(to: PoState, action: PoAction) -> &'static str {
    match (action, to) {
        (PoAction::Submit, _) => "purchase_order.submitted",
        (PoAction::Approve, _) => "purchase_order.approved",
        (PoAction::Send, _) => "purchase_order.sent",
        (PoAction::Receive, _) => "purchase_order.received",
        (PoAction::Cancel, _) => "purchase_order.cancelled",
        (PoAction::Close, _) => "purchase_order.closed",
    }
}

fn search_text(name: &str, email: Option<&str>) -> String {
    format!("{name}\n{}", email.unwrap_or_default()).to_lowercase()
}

#[derive(Clone)]
pub struct PurchasingService {
    writer: Writer,
    default_policy: DepletionPolicy,
    warning_days: u32,
    tolerance_percent: u32,
}

impl PurchasingService {
    pub fn new(
        writer: Writer,
        default_policy: DepletionPolicy,
        warning_days: u32,
        tolerance_percent: u32,
    ) -> Self {
        Self {
            writer,
            default_policy,
            warning_days,
            tolerance_percent,
        }
    }

    fn reader(&self) -> &depot_store::DatabaseConnection {
        self.writer.db().reader()
    }

    // --- suppliers ---

    pub async fn list_suppliers(
        &self,
        filter: &SupplierFilter,
        page: &PageRequest,
    ) -> AppResult<Page<SupplierView>> {
        let page = suppliers::list(self.reader(), filter, page).await?;
        Ok(map_page(page, views::supplier))
    }

    pub async fn get_supplier(&self, id: Uuid) -> AppResult<SupplierView> {
        suppliers::get(self.reader(), id)
            .await?
            .map(views::supplier)
            .ok_or_else(supplier_not_found)
    }

    pub async fn create_supplier(
        &self,
        actor: Actor,
        new: NewSupplier,
        client: &ClientInfo,
    ) -> AppResult<SupplierView> {
        let mut v = Validator::new();
        validate_supplier(
            &mut v,
            Some(&new.name),
            new.email.as_deref(),
            new.phone.as_deref(),
            new.address.as_deref(),
            Some(&new.currency),
            new.lead_time_days,
        );
        v.finish()?;
        let uow = self.writer.begin(actor, client).await?;
        let row = suppliers::insert(
            uow.tx(),
            supplier::Model {
                id: depot_domain::id::new_id(),
                name_key: new.name.to_lowercase(),
                search: search_text(&new.name, new.email.as_deref()),
                name: new.name,
                email: new.email,
                phone: new.phone,
                address: new.address,
                currency: new.currency,
                lead_time_days: new.lead_time_days,
                active: new.active,
                created_at: uow.now(),
                updated_at: uow.now(),
            },
        )
        .await?;
        let shown = views::supplier(row);
        audited(
            uow,
            "supplier.created",
            ("supplier", shown.id),
            serde_json::Value::Null,
            audit_json(&shown),
        )
        .await?;
        Ok(shown)
    }

    pub async fn update_supplier(
        &self,
        actor: Actor,
        id: Uuid,
        patch: SupplierPatch,
        client: &ClientInfo,
    ) -> AppResult<SupplierView> {
        let mut v = Validator::new();
        validate_supplier(
            &mut v,
            patch.name.as_deref(),
            patch.email.as_ref().and_then(Option::as_deref),
            patch.phone.as_ref().and_then(Option::as_deref),
            patch.address.as_ref().and_then(Option::as_deref),
            patch.currency.as_deref(),
            patch.lead_time_days.flatten(),
        );
        v.finish()?;
        let uow = self.writer.begin(actor, client).await?;
        let mut row = suppliers::lock(uow.tx(), id)
            .await?
            .ok_or_else(supplier_not_found)?;
        let before = views::supplier(row.clone());
        if let Some(name) = patch.name {
            row.name_key = name.to_lowercase();
            row.name = name;
        }
        if let Some(email) = patch.email {
            row.email = email;
        }
        if let Some(phone) = patch.phone {
            row.phone = phone;
        }
        if let Some(address) = patch.address {
            row.address = address;
        }
        if let Some(currency) = patch.currency {
            row.currency = currency;
        }
        if let Some(days) = patch.lead_time_days {
            row.lead_time_days = days;
        }
        if let Some(active) = patch.active {
            row.active = active;
        }
        row.search = search_text(&row.name, row.email.as_deref());
        row.updated_at = uow.now();
        let shown = views::supplier(suppliers::save(uow.tx(), row).await?);
        audited(
            uow,
            "supplier.updated",
            ("supplier", id),
            audit_json(&before),
            audit_json(&shown),
        )
        .await?;
        Ok(shown)
    }

    /// Deletes a supplier no purchase order names.
    pub async fn delete_supplier(
        &self,
        actor: Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let uow = self.writer.begin(actor, client).await?;
        let row = suppliers::get(uow.tx(), id)
            .await?
            .ok_or_else(supplier_not_found)?;
        if suppliers::has_orders(uow.tx(), id).await? {
            return Err(AppError::new(
                ErrorCode::SuppliersInUse,
                "the supplier has purchase orders: deactivate it instead",
            ));
        }
        suppliers::delete(uow.tx(), id).await?;
        audited(
            uow,
            "supplier.deleted",
            ("supplier", id),
            audit_json(&views::supplier(row)),
            serde_json::Value::Null,
        )
        .await
    }

    // --- purchase orders ---

    pub async fn list_orders(
        &self,
        filter: &PurchaseOrderFilter,
        page: &PageRequest,
    ) -> AppResult<Page<PurchaseOrderView>> {
        let page = purchase_orders::list(self.reader(), filter, page).await?;
        Ok(map_page(page, views::order))
    }

    pub async fn get_order(&self, id: Uuid) -> AppResult<PurchaseOrderView> {
        purchase_orders::get(self.reader(), id)
            .await?
            .map(views::order)
            .ok_or_else(order_not_found)
    }

    pub async fn receipts(&self, id: Uuid) -> AppResult<Vec<ReceiptView>> {
        if purchase_orders::get(self.reader(), id).await?.is_none() {
            return Err(order_not_found());
        }
        Ok(views::receipts(
            purchase_orders::receipts_of(self.reader(), id).await?,
        ))
    }

    pub async fn create_order(
        &self,
        actor: Actor,
        new: NewPurchaseOrder,
        client: &ClientInfo,
    ) -> AppResult<PurchaseOrderView> {
        let mut v = Validator::new();
        if let Some(currency) = &new.currency {
            validate_currency(&mut v, "currency", currency);
        }
        if let Some(notes) = &new.notes {
            v.text("notes", notes, NOTE_MAX);
        }
        v.finish()?;
        let uow = self.writer.begin(actor, client).await?;
        let supplier = active_supplier(&uow, new.supplier_id).await?;
        let id = depot_domain::id::new_id();
        let lines = self.order_lines(&uow, id, &new.lines).await?;
        let head = purchase_order::Model {
            id,
            supplier_id: supplier.id,
            currency: new.currency.unwrap_or(supplier.currency),
            state: PoState::Draft.as_str().to_owned(),
            expected_at: new.expected_at,
            notes: new.notes,
            total: total_of(&lines)?,
            created_by: actor.user_id(),
            submitted_at: None,
            approved_by: None,
            approved_at: None,
            sent_at: None,
            closed_at: None,
            cancelled_at: None,
            created_at: uow.now(),
            updated_at: uow.now(),
        };
        purchase_orders::insert(uow.tx(), head.clone(), lines.clone()).await?;
        let shown = views::order((head, lines));
        audited(
            uow,
            "purchase_order.created",
            ("purchase_order", id),
            serde_json::Value::Null,
            audit_json(&shown),
        )
        .await?;
        Ok(shown)
    }

    /// Edits a draft order (its head and, when given, all its lines).
    pub async fn update_order(
        &self,
        actor: Actor,
        id: Uuid,
        patch: PurchaseOrderPatch,
        client: &ClientInfo,
    ) -> AppResult<PurchaseOrderView> {
        let mut v = Validator::new();
        if let Some(currency) = &patch.currency {
            validate_currency(&mut v, "currency", currency);
        }
        if let Some(Some(notes)) = &patch.notes {
            v.text("notes", notes, NOTE_MAX);
        }
        v.finish()?;
        let uow = self.writer.begin(actor, client).await?;
        let (mut head, mut lines) = purchase_orders::lock(uow.tx(), id)
            .await?
            .ok_or_else(order_not_found)?;
        let state = state_of(&head);
        if !state.editable() {
            return Err(AppError::new(
                ErrorCode::PurchaseOrderInvalidState,
                format!("a purchase order in state {state} cannot be edited"),
            )
            .with_details(serde_json::json!({ "state": state })));
        }
        let before = views::order((head.clone(), lines.clone()));
        if let Some(supplier) = patch.supplier_id {
            head.supplier_id = active_supplier(&uow, supplier).await?.id;
        }
        if let Some(currency) = patch.currency {
            head.currency = currency;
        }
        if let Some(expected) = patch.expected_at {
            head.expected_at = expected;
        }
        if let Some(notes) = patch.notes {
            head.notes = notes;
        }
        if let Some(new_lines) = &patch.lines {
            lines = self.order_lines(&uow, id, new_lines).await?;
            purchase_orders::replace_lines(uow.tx(), id, lines.clone()).await?;
            head.total = total_of(&lines)?;
        }
        head.updated_at = uow.now();
        let head = purchase_orders::save(uow.tx(), head).await?;
        let shown = views::order((head, lines));
        audited(
            uow,
            "purchase_order.updated",
            ("purchase_order", id),
            audit_json(&before),
            audit_json(&shown),
        )
        .await?;
        Ok(shown)
    }

    /// Reads and checks the lines of an order being drafted.
    async fn order_lines(
        &self,
        uow: &UnitOfWork,
        order: Uuid,
        input: &[OrderLine],
    ) -> AppResult<Vec<purchase_order_line::Model>> {
        let lines = read_lines(uow.tx(), input, "unit_cost", self.default_policy).await?;
        let mut rows = Vec::with_capacity(lines.len());
        for (i, line) in lines.into_iter().enumerate() {
            if line.product.archived {
                return Err(AppError::new(
                    ErrorCode::ProductsArchived,
                    "the product is archived: it takes no new stock",
                )
                .with_details(serde_json::json!({ "field": line_field(i, "product_id") })));
            }
            rows.push(purchase_order_line::Model {
                id: depot_domain::id::new_id(),
                purchase_order_id: order,
                line_no: i32::try_from(i).unwrap_or(i32::MAX),
                product_id: line.product.id,
                quantity: line.quantity.thousandths(),
                unit_cost: line.price,
                received: 0,
            });
        }
        Ok(rows)
    }

    /// Locks the order and checks `action` may start from its state.
    async fn begin_transition(
        &self,
        uow: &UnitOfWork,
        id: Uuid,
        action: PoAction,
    ) -> AppResult<(
        purchase_order::Model,
        Vec<purchase_order_line::Model>,
        PoState,
    )> {
        let (head, lines) = purchase_orders::lock(uow.tx(), id)
            .await?
            .ok_or_else(order_not_found)?;
        let state = state_of(&head);
        if !state.allows(action) {
            return Err(invalid_state(state, action));
        }
        Ok((head, lines, state))
    }

    /// Saves the head in its new state, audits and emits the transition, and commits.
    async fn finish_transition(
        &self,
        mut uow: UnitOfWork,
        (mut head, lines): (purchase_order::Model, Vec<purchase_order_line::Model>),
        action: PoAction,
        from: PoState,
        to: PoState,
    ) -> AppResult<PurchaseOrderView> {
        let now = uow.now();
        head.state = to.as_str().to_owned();
        head.updated_at = now;
        let head = purchase_orders::save(uow.tx(), head).await?;
        let actor = uow.actor().user_id();
        uow.emit(&events::transitioned(&head, action, from, to, actor, now));
        uow.audit(
            AuditEntry::new(audit_action(to, action))
                .target("purchase_order", head.id)
                .change(
                    serde_json::json!({ "state": from }),
                    serde_json::json!({ "state": to }),
                ),
        )
        .await?;
        uow.commit().await?;
        Ok(views::order((head, lines)))
    }

    pub async fn submit(
        &self,
        actor: Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<PurchaseOrderView> {
        let uow = self.writer.begin(actor, client).await?;
        let (mut head, lines, from) = self.begin_transition(&uow, id, PoAction::Submit).await?;
        head.submitted_at = Some(uow.now());
        self.finish_transition(
            uow,
            (head, lines),
            PoAction::Submit,
            from,
            PoState::Submitted,
        )
        .await
    }

    /// Approves a submitted order; never by its creator.
    pub async fn approve(
        &self,
        actor: Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<PurchaseOrderView> {
        let uow = self.writer.begin(actor, client).await?;
        let (mut head, lines, from) = self.begin_transition(&uow, id, PoAction::Approve).await?;
        if head.created_by.is_some() && head.created_by == actor.user_id() {
            return Err(AppError::new(
                ErrorCode::PurchaseOrderSelfApproval,
                "the creator of a purchase order may not approve it",
            ));
        }
        head.approved_by = actor.user_id();
        head.approved_at = Some(uow.now());
        self.finish_transition(
            uow,
            (head, lines),
            PoAction::Approve,
            from,
            PoState::Approved,
        )
        .await
    }

    /// Sends an approved order: queues an email to the supplier with the lines in the body and
    /// as a CSV attachment (sent by the mail worker once this commits).
    pub async fn send(
        &self,
        actor: Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<PurchaseOrderView> {
        let uow = self.writer.begin(actor, client).await?;
        let (mut head, lines, from) = self.begin_transition(&uow, id, PoAction::Send).await?;
        let supplier = suppliers::get(uow.tx(), head.supplier_id)
            .await?
            .ok_or_else(supplier_not_found)?;
        let Some(to) = supplier.email.clone() else {
            return Err(AppError::new(
                ErrorCode::PurchaseOrderNoSupplierEmail,
                "the supplier has no email address to send the order to",
            ));
        };
        let ids: Vec<Uuid> = lines.iter().map(|l| l.product_id).collect();
        let names: HashMap<Uuid, (String, String)> = products::by_ids(uow.tx(), &ids)
            .await?
            .into_iter()
            .map(|p| (p.id, (p.sku, p.name)))
            .collect();
        let email = email::order_email(
            &head,
            &lines,
            &supplier,
            &names,
            to,
            uow.client().request_id.clone(),
        );
        crate::mail::queue(uow.tx(), email, uow.now()).await?;
        head.sent_at = Some(uow.now());
        self.finish_transition(uow, (head, lines), PoAction::Send, from, PoState::Sent)
            .await
    }

    pub async fn cancel(
        &self,
        actor: Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<PurchaseOrderView> {
        let uow = self.writer.begin(actor, client).await?;
        let (mut head, lines, from) = self.begin_transition(&uow, id, PoAction::Cancel).await?;
        head.cancelled_at = Some(uow.now());
        self.finish_transition(
            uow,
            (head, lines),
            PoAction::Cancel,
            from,
            PoState::Cancelled,
        )
        .await
    }

    /// Closes a received (or short-received) order: nothing more will come.
    pub async fn close(
        &self,
        actor: Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<PurchaseOrderView> {
        let uow = self.writer.begin(actor, client).await?;
        let (mut head, lines, from) = self.begin_transition(&uow, id, PoAction::Close).await?;
        head.closed_at = Some(uow.now());
        self.finish_transition(uow, (head, lines), PoAction::Close, from, PoState::Closed)
            .await
    }
}

async fn active_supplier(uow: &UnitOfWork, id: Uuid) -> AppResult<supplier::Model> {
    let supplier = suppliers::get(uow.tx(), id).await?.ok_or_else(|| {
        supplier_not_found().with_details(serde_json::json!({ "field": "supplier_id" }))
    })?;
    if !supplier.active {
        return Err(AppError::new(
            ErrorCode::SuppliersInactive,
            "the supplier is inactive: no new purchase orders",
        ));
    }
    Ok(supplier)
}

fn total_of(lines: &[purchase_order_line::Model]) -> AppResult<i64> {
    total(lines.iter().map(|l| (l.quantity, l.unit_cost)))
}

fn validate_supplier(
    v: &mut Validator,
    name: Option<&str>,
    email: Option<&str>,
    phone: Option<&str>,
    address: Option<&str>,
    currency: Option<&str>,
    lead_time_days: Option<i32>,
) {
    if let Some(name) = name {
        v.line("name", name, 1, NAME_MAX);
    }
    validate_contact(v, email, phone);
    if let Some(address) = address {
        v.text("address", address, ADDRESS_MAX);
    }
    if let Some(currency) = currency {
        validate_currency(v, "currency", currency);
    }
    v.check(
        lead_time_days.is_none_or(|d| (0..=LEAD_TIME_MAX).contains(&d)),
        "lead_time_days",
        "out_of_range",
        "must be between 0 and 3650",
    );
}
