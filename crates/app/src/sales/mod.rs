//! Sales: orders for customers, confirmed by reserving stock, paid (manual payments here; the
//! gateway arrives with the payments capability), fulfilled by issuing exactly the reserved
//! batches, cancelled (releasing them) and returned (into the batch the goods came from).
//!
//! Every transition is one unit of work that locks the order's head row, checks the state it
//! starts from (`sales_order.invalid_state` naming the current one otherwise), and then the
//! stock levels it touches in the engine's global order, so concurrent confirmations of one
//! product queue on its level row: none oversells, none deadlocks. Each writes an audit row
//! and a `sales_order.transitioned` event.

pub(crate) mod events;
pub(crate) mod payments;
mod returns;
pub(crate) mod views;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use depot_domain::pagination::{Page, PageRequest};
use depot_domain::stock::{DepletionPolicy, MovementKind, Quantity, ReferenceType};
use depot_domain::trade::contact::validate_currency;
use depot_domain::trade::sales::ReservationStatus;
use depot_domain::trade::{PaymentMethod, SalesOrderFilter, SoAction, SoState};
use depot_domain::{Actor, AppError, AppResult, ErrorCode, Validator};
use depot_store::entity::{customer, reservation, sales_order, sales_order_line};
use depot_store::repo::sales_orders;
use uuid::Uuid;

pub use self::views::{
    PaymentView, ReservationView, ReturnLineView, ReturnView, SalesOrderLineView, SalesOrderView,
};
use crate::audit::{AuditEntry, audit_json};
use crate::auth::principal::Principal;
use crate::background::Background;
use crate::catalog::map_page;
use crate::client::ClientInfo;
use crate::crm::CustomerService;
pub use crate::orders::OrderLine;
use crate::orders::{read_lines, total};
use crate::stock::ledger::{
    Cause, Ledger, StockProduct, insufficient, location_field, products_named,
};
use crate::stock::{NOTE_MAX, views as stock_views};
use crate::uow::{UnitOfWork, Writer, retry_transient};
use depot_domain::auth::Permission;

/// Longest payment reference and return reason.
pub const REFERENCE_MAX: usize = 200;
pub const REASON_MAX: usize = 500;
/// How often the reservation expiry runs by default.
const EXPIRY_SWEEP: &str = "every 1m";
/// Orders one sweep releases at most.
const EXPIRY_BATCH: u64 = 200;

#[derive(Debug, Clone)]
pub struct NewSalesOrder {
    pub customer_id: Uuid,
    pub location_id: Uuid,
    pub currency: String,
    pub notes: Option<String>,
    pub lines: Vec<OrderLine>,
}

/// Changes to a draft order; `lines` replaces every line.
#[derive(Debug, Clone, Default)]
pub struct SalesOrderPatch {
    pub customer_id: Option<Uuid>,
    pub location_id: Option<Uuid>,
    pub currency: Option<String>,
    pub notes: Option<Option<String>>,
    pub lines: Option<Vec<OrderLine>>,
}

#[derive(Debug, Clone)]
pub struct NewPayment {
    pub method: PaymentMethod,
    /// Minor units of the order's currency.
    pub amount: i64,
    pub reference: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReturnLine {
    pub line_id: Uuid,
    pub quantity: serde_json::Number,
    /// Back into the batch it came from; otherwise written off (nothing re-enters stock).
    pub restock: bool,
    pub reason: String,
}

fn order_not_found() -> AppError {
    AppError::new(ErrorCode::SalesOrderNotFound, "no such sales order")
}

fn invalid_state(state: SoState, action: SoAction) -> AppError {
    AppError::new(
        ErrorCode::SalesOrderInvalidState,
        format!("a sales order in state {state} cannot {action}"),
    )
    .with_details(serde_json::json!({ "state": state, "action": action }))
}

fn state_of(head: &sales_order::Model) -> SoState {
    SoState::parse(&head.state).unwrap_or(SoState::Draft)
}

fn audit_action(action: SoAction) -> &'static str {
    match action {
        SoAction::Confirm => "sales_order.confirmed",
        SoAction::Pay => "sales_order.payment_recorded",
        SoAction::Fulfil => "sales_order.fulfilled",
        SoAction::Return => "sales_order.returned",
        SoAction::Cancel => "sales_order.cancelled",
        SoAction::Expire => "sales_order.reservation_expired",
    }
}

fn q(thousandths: i64) -> serde_json::Value {
    Quantity::from_thousandths(thousandths).to_json()
}

type Order = (sales_order::Model, Vec<sales_order_line::Model>);

/// Who acts on orders, and whose orders they may touch: a sales user (customer permissions
/// without `customers.manage_all`) only the orders of their own customers, everyone else
/// (managers, warehouse and finance staff) every order. Anyone else's order is a 404.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Acting {
    actor: Actor,
    only_owner: Option<Uuid>,
}

impl Acting {
    pub(crate) fn of(principal: &Principal) -> Self {
        let sells =
            principal.has(Permission::CustomersRead) || principal.has(Permission::CustomersManage);
        let sees_all = principal.has(Permission::CustomersManageAll);
        Self {
            actor: principal.actor(),
            only_owner: (sells && !sees_all).then_some(principal.user_id),
        }
    }

    /// A background job: every order.
    pub(crate) fn system(name: &'static str) -> Self {
        Self {
            actor: Actor::System(name),
            only_owner: None,
        }
    }

    pub(crate) fn actor(&self) -> Actor {
        self.actor
    }

    /// The only owner whose orders this caller may touch, if limited.
    pub(crate) fn only_owner(&self) -> Option<Uuid> {
        self.only_owner
    }

    pub(crate) fn check(&self, order: &sales_order::Model) -> AppResult<()> {
        match self.only_owner {
            Some(owner) if owner != order.owner_id => Err(order_not_found()),
            _ => Ok(()),
        }
    }
}

#[derive(Clone)]
pub struct SalesService {
    writer: Writer,
    default_policy: DepletionPolicy,
    warning_days: u32,
    reservation_ttl: Option<Duration>,
}

impl SalesService {
    pub fn new(
        writer: Writer,
        default_policy: DepletionPolicy,
        warning_days: u32,
        reservation_ttl: Option<Duration>,
    ) -> Self {
        Self {
            writer,
            default_policy,
            warning_days,
            reservation_ttl,
        }
    }

    /// Registers the sweep that releases lapsed reservations.
    pub fn register(&self, background: &mut Background) {
        let this = self.clone();
        background.periodic("sales_reservation_expiry", EXPIRY_SWEEP, move || {
            let this = this.clone();
            async move { this.expire_reservations().await }
        });
    }

    fn reader(&self) -> &depot_store::DatabaseConnection {
        self.writer.db().reader()
    }

    // --- reads ---

    pub async fn list(
        &self,
        principal: &Principal,
        filter: &SalesOrderFilter,
        page: &PageRequest,
    ) -> AppResult<Page<SalesOrderView>> {
        let mut filter = *filter;
        if let Some(me) = Acting::of(principal).only_owner {
            if filter.owner_id.is_some_and(|owner| owner != me) {
                return Ok(Page {
                    data: Vec::new(),
                    next_cursor: None,
                });
            }
            filter.owner_id = Some(me);
        }
        let page = sales_orders::list(self.reader(), &filter, page).await?;
        Ok(map_page(page, views::order))
    }

    pub async fn get(&self, principal: &Principal, id: Uuid) -> AppResult<SalesOrderView> {
        let order = self.visible(principal, id).await?;
        self.shown(self.reader(), order).await
    }

    /// The order, if `principal` may see it.
    async fn visible(&self, principal: &Principal, id: Uuid) -> AppResult<Order> {
        let order = sales_orders::get(self.reader(), id)
            .await?
            .ok_or_else(order_not_found)?;
        Acting::of(principal).check(&order.0)?;
        Ok(order)
    }

    /// The order with every reservation it made.
    async fn shown(
        &self,
        conn: &impl depot_store::ConnectionTrait,
        order: Order,
    ) -> AppResult<SalesOrderView> {
        let id = order.0.id;
        let rows = sales_orders::reservations_of(conn, id, None).await?;
        let mut shown = views::order(order);
        shown.reservations = Some(rows.into_iter().map(views::reservation).collect());
        Ok(shown)
    }

    pub async fn payments(&self, principal: &Principal, id: Uuid) -> AppResult<Vec<PaymentView>> {
        self.visible(principal, id).await?;
        Ok(sales_orders::payments_of(self.reader(), id)
            .await?
            .into_iter()
            .map(views::payment)
            .collect())
    }

    pub async fn returns(&self, principal: &Principal, id: Uuid) -> AppResult<Vec<ReturnView>> {
        self.visible(principal, id).await?;
        Ok(sales_orders::returns_of(self.reader(), id)
            .await?
            .into_iter()
            .map(views::sales_return)
            .collect())
    }

    // --- drafting ---

    pub async fn create(
        &self,
        principal: &Principal,
        new: NewSalesOrder,
        client: &ClientInfo,
    ) -> AppResult<SalesOrderView> {
        let mut v = Validator::new();
        validate_currency(&mut v, "currency", &new.currency);
        if let Some(notes) = &new.notes {
            v.text("notes", notes, NOTE_MAX);
        }
        v.finish()?;
        let uow = self.writer.begin(principal.actor(), client).await?;
        let customer = visible_customer(&uow, principal, new.customer_id).await?;
        location_field(uow.tx(), new.location_id, "location_id").await?;
        let id = depot_domain::id::new_id();
        let lines = self.order_lines(&uow, id, &new.lines).await?;
        let head = sales_order::Model {
            id,
            customer_id: customer.id,
            location_id: new.location_id,
            owner_id: customer.owner_id,
            currency: new.currency,
            state: SoState::Draft.as_str().to_owned(),
            notes: new.notes,
            total: total_of(&lines)?,
            amount_paid: 0,
            reserved_until: None,
            created_by: principal.actor().user_id(),
            confirmed_at: None,
            paid_at: None,
            fulfilled_at: None,
            cancelled_at: None,
            created_at: uow.now(),
            updated_at: uow.now(),
        };
        sales_orders::insert(uow.tx(), head.clone(), lines.clone()).await?;
        let shown = views::order((head, lines));
        uow.audit(
            AuditEntry::new("sales_order.created")
                .target("sales_order", id)
                .change(serde_json::Value::Null, audit_json(&shown)),
        )
        .await?;
        uow.commit().await?;
        Ok(shown)
    }

    /// Edits a draft order (its head and, when given, all its lines).
    pub async fn update(
        &self,
        principal: &Principal,
        id: Uuid,
        patch: SalesOrderPatch,
        client: &ClientInfo,
    ) -> AppResult<SalesOrderView> {
        let mut v = Validator::new();
        if let Some(currency) = &patch.currency {
            validate_currency(&mut v, "currency", currency);
        }
        if let Some(Some(notes)) = &patch.notes {
            v.text("notes", notes, NOTE_MAX);
        }
        v.finish()?;
        let uow = self.writer.begin(principal.actor(), client).await?;
        let (mut head, mut lines) = sales_orders::lock(uow.tx(), id)
            .await?
            .ok_or_else(order_not_found)?;
        Acting::of(principal).check(&head)?;
        let state = state_of(&head);
        if !state.editable() {
            return Err(AppError::new(
                ErrorCode::SalesOrderInvalidState,
                format!("a sales order in state {state} cannot be edited"),
            )
            .with_details(serde_json::json!({ "state": state })));
        }
        let before = views::order((head.clone(), lines.clone()));
        if let Some(customer) = patch.customer_id {
            let customer = visible_customer(&uow, principal, customer).await?;
            head.customer_id = customer.id;
            head.owner_id = customer.owner_id;
        }
        if let Some(location) = patch.location_id {
            location_field(uow.tx(), location, "location_id").await?;
            head.location_id = location;
        }
        if let Some(currency) = patch.currency {
            head.currency = currency;
        }
        if let Some(notes) = patch.notes {
            head.notes = notes;
        }
        if let Some(new_lines) = &patch.lines {
            lines = self.order_lines(&uow, id, new_lines).await?;
            sales_orders::replace_lines(uow.tx(), id, lines.clone()).await?;
            head.total = total_of(&lines)?;
        }
        head.updated_at = uow.now();
        let head = sales_orders::save(uow.tx(), head).await?;
        let shown = views::order((head, lines));
        uow.audit(
            AuditEntry::new("sales_order.updated")
                .target("sales_order", id)
                .change(audit_json(&before), audit_json(&shown)),
        )
        .await?;
        uow.commit().await?;
        Ok(shown)
    }

    async fn order_lines(
        &self,
        uow: &UnitOfWork,
        order: Uuid,
        input: &[OrderLine],
    ) -> AppResult<Vec<sales_order_line::Model>> {
        let lines = read_lines(uow.tx(), input, "unit_price", self.default_policy).await?;
        Ok(lines
            .into_iter()
            .enumerate()
            .map(|(i, line)| sales_order_line::Model {
                id: depot_domain::id::new_id(),
                sales_order_id: order,
                line_no: i32::try_from(i).unwrap_or(i32::MAX),
                product_id: line.product.id,
                quantity: line.quantity.thousandths(),
                unit_price: line.price,
                fulfilled: 0,
                returned: 0,
            })
            .collect())
    }

    // --- transitions ---

    async fn begin_transition(
        &self,
        uow: &UnitOfWork,
        acting: Acting,
        id: Uuid,
        action: SoAction,
    ) -> AppResult<(Order, SoState)> {
        let order = sales_orders::lock(uow.tx(), id)
            .await?
            .ok_or_else(order_not_found)?;
        acting.check(&order.0)?;
        let state = state_of(&order.0);
        if !state.allows(action) {
            return Err(invalid_state(state, action));
        }
        Ok((order, state))
    }

    /// Saves the head in its new state, audits and emits the transition, and commits.
    async fn finish_transition(
        &self,
        mut uow: UnitOfWork,
        (head, lines): Order,
        action: SoAction,
        from: SoState,
        to: SoState,
    ) -> AppResult<SalesOrderView> {
        let head = record_transition(&mut uow, head, action, from, to).await?;
        let shown = self.shown(uow.tx(), (head, lines)).await?;
        uow.commit().await?;
        Ok(shown)
    }

    /// The engine's view of the products on the order's lines.
    async fn products(
        &self,
        uow: &UnitOfWork,
        lines: &[sales_order_line::Model],
    ) -> AppResult<BTreeMap<Uuid, StockProduct>> {
        products_named(
            uow.tx(),
            lines.iter().map(|l| l.product_id).collect(),
            |_| "lines".to_owned(),
            self.default_policy,
        )
        .await
    }

    /// Reserves every line by its product's depletion policy, all or nothing: on a shortfall
    /// `stock.insufficient` lists every line with what is available for it.
    pub async fn confirm(
        &self,
        principal: &Principal,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<SalesOrderView> {
        let acting = Acting::of(principal);
        retry_transient(|| self.confirm_once(acting, id, client)).await
    }

    async fn confirm_once(
        &self,
        acting: Acting,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<SalesOrderView> {
        let mut uow = self.writer.begin(acting.actor, client).await?;
        let ((mut head, lines), from) = self
            .begin_transition(&uow, acting, id, SoAction::Confirm)
            .await?;
        let location = head.location_id;
        let products = self.products(&uow, &lines).await?;
        let mut ledger = Ledger::new(Cause {
            reason: None,
            note: None,
            reference: Some((ReferenceType::SalesOrder, id)),
        });
        ledger
            .lock(&uow, products.values().map(|p| (p, location)))
            .await?;
        let now = uow.now();
        let mut rows = Vec::new();
        let mut report = Vec::with_capacity(lines.len());
        let mut short = false;
        for (i, line) in lines.iter().enumerate() {
            let product = &products[&line.product_id];
            let wanted = Quantity::from_thousandths(line.quantity);
            let available = ledger.available(product.id, location);
            match ledger.reserve(&uow, product, location, wanted).await? {
                Ok(held) => {
                    for (batch, quantity) in held {
                        rows.push(reservation::Model {
                            id: depot_domain::id::new_id(),
                            sales_order_id: id,
                            line_id: line.id,
                            seq: i32::try_from(rows.len()).unwrap_or(i32::MAX),
                            product_id: product.id,
                            location_id: location,
                            batch_id: batch,
                            quantity: quantity.thousandths(),
                            returned: 0,
                            status: ReservationStatus::Active.as_str().to_owned(),
                            created_at: now,
                            updated_at: now,
                        });
                    }
                }
                Err(eligible) => {
                    short = true;
                    report.push((i, line, eligible.min(available)));
                    continue;
                }
            }
            report.push((i, line, available));
        }
        if short {
            let first = report
                .iter()
                .find(|(_, l, a)| a.thousandths() < l.quantity)
                .map_or(Quantity::ZERO, |(_, _, a)| *a);
            return Err(insufficient(
                first,
                serde_json::json!({
                    "lines": report.iter().map(|(i, l, a)| serde_json::json!({
                        "line": i,
                        "line_id": l.id,
                        "product_id": l.product_id,
                        "requested": q(l.quantity),
                        "available": a.to_json(),
                    })).collect::<Vec<_>>(),
                }),
            ));
        }
        sales_orders::insert_reservations(uow.tx(), rows).await?;
        ledger.finish(&mut uow, self.warning_days).await?;
        head.confirmed_at = Some(now);
        head.reserved_until = self
            .reservation_ttl
            .and_then(|ttl| chrono::Duration::from_std(ttl).ok())
            .map(|ttl| now + ttl);
        self.finish_transition(
            uow,
            (head, lines),
            SoAction::Confirm,
            from,
            SoState::Confirmed,
        )
        .await
    }

    /// Issues exactly the reserved batches as `sale` movements and clears the reservations.
    pub async fn fulfil(
        &self,
        principal: &Principal,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<SalesOrderView> {
        let acting = Acting::of(principal);
        retry_transient(|| self.fulfil_once(acting, id, client)).await
    }

    async fn fulfil_once(
        &self,
        acting: Acting,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<SalesOrderView> {
        let mut uow = self.writer.begin(acting.actor, client).await?;
        let ((mut head, mut lines), from) = self
            .begin_transition(&uow, acting, id, SoAction::Fulfil)
            .await?;
        let location = head.location_id;
        let products = self.products(&uow, &lines).await?;
        let mut ledger = Ledger::new(Cause {
            reason: None,
            note: None,
            reference: Some((ReferenceType::SalesOrder, id)),
        });
        ledger
            .lock(&uow, products.values().map(|p| (p, location)))
            .await?;
        let now = uow.now();
        let held =
            sales_orders::reservations_of(uow.tx(), id, Some(ReservationStatus::Active)).await?;
        let mut issued: HashMap<Uuid, i64> = HashMap::new();
        for mut r in held {
            ledger
                .take_reserved(
                    &uow,
                    MovementKind::Sale,
                    r.product_id,
                    r.location_id,
                    r.batch_id,
                    Quantity::from_thousandths(r.quantity),
                )
                .await?;
            *issued.entry(r.line_id).or_default() += r.quantity;
            r.status = ReservationStatus::Fulfilled.as_str().to_owned();
            r.updated_at = now;
            sales_orders::save_reservation(uow.tx(), r).await?;
        }
        for line in &mut lines {
            line.fulfilled += issued.get(&line.id).copied().unwrap_or_default();
            if line.fulfilled != line.quantity {
                return Err(AppError::internal(
                    "a fulfilled line differs from its reservations",
                ));
            }
            *line = sales_orders::save_line(uow.tx(), line.clone()).await?;
        }
        let (movements, _) = ledger.finish(&mut uow, self.warning_days).await?;
        head.fulfilled_at = Some(now);
        head.reserved_until = None;
        let mut shown = self
            .finish_transition(
                uow,
                (head, lines),
                SoAction::Fulfil,
                from,
                SoState::Fulfilled,
            )
            .await?;
        shown.movements = movements.into_iter().map(stock_views::movement).collect();
        Ok(shown)
    }

    /// Cancels a draft, confirmed or paid order, releasing what it reserved.
    pub async fn cancel(
        &self,
        principal: &Principal,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<SalesOrderView> {
        let acting = Acting::of(principal);
        retry_transient(|| self.release_once(acting, id, SoAction::Cancel, client)).await
    }

    /// Releases the reservations of `id` and moves it on: `cancel` → cancelled, `expire` →
    /// back to draft (only while its reservations have lapsed).
    async fn release_once(
        &self,
        acting: Acting,
        id: Uuid,
        action: SoAction,
        client: &ClientInfo,
    ) -> AppResult<SalesOrderView> {
        let mut uow = self.writer.begin(acting.actor, client).await?;
        let ((mut head, lines), from) = self.begin_transition(&uow, acting, id, action).await?;
        let now = uow.now();
        if action == SoAction::Expire
            && (head.amount_paid > 0 || head.reserved_until.is_none_or(|until| until > now))
        {
            return Err(invalid_state(from, action));
        }
        if from.reserves() {
            let location = head.location_id;
            let products = self.products(&uow, &lines).await?;
            let mut ledger = Ledger::new(Cause {
                reason: None,
                note: None,
                reference: Some((ReferenceType::SalesOrder, id)),
            });
            ledger
                .lock(&uow, products.values().map(|p| (p, location)))
                .await?;
            let held = sales_orders::reservations_of(uow.tx(), id, Some(ReservationStatus::Active))
                .await?;
            for mut r in held {
                ledger
                    .release(
                        &uow,
                        r.product_id,
                        r.location_id,
                        r.batch_id,
                        Quantity::from_thousandths(r.quantity),
                    )
                    .await?;
                r.status = ReservationStatus::Released.as_str().to_owned();
                r.updated_at = now;
                sales_orders::save_reservation(uow.tx(), r).await?;
            }
            ledger.finish(&mut uow, self.warning_days).await?;
        }
        head.reserved_until = None;
        let to = match action {
            SoAction::Expire => {
                head.confirmed_at = None;
                SoState::Draft
            }
            _ => {
                head.cancelled_at = Some(now);
                SoState::Cancelled
            }
        };
        self.finish_transition(uow, (head, lines), action, from, to)
            .await
    }

    /// Releases the reservations of confirmed, unpaid orders whose time ran out (the orders
    /// go back to draft). Returns how many.
    pub async fn expire_reservations(&self) -> AppResult<u64> {
        let due =
            sales_orders::reservations_expired(self.reader(), self.writer.now(), EXPIRY_BATCH)
                .await?;
        let client = ClientInfo::default();
        let mut released = 0;
        let acting = Acting::system("sales_reservation_expiry");
        for id in due {
            match retry_transient(|| self.release_once(acting, id, SoAction::Expire, &client)).await
            {
                Ok(_) => released += 1,
                // Paid, cancelled or extended meanwhile: nothing to do.
                Err(e) if e.error_code() == ErrorCode::SalesOrderInvalidState => {}
                // One order's trouble must not hold the others' stock: log it, go on.
                Err(e) => tracing::error!(
                    order = %id,
                    code = e.code(),
                    cause = %e.cause_chain(),
                    "a lapsed reservation could not be released"
                ),
            }
        }
        Ok(released)
    }
}

/// Saves the head in state `to`, audits and emits the transition (in `uow`, not committed).
async fn record_transition(
    uow: &mut UnitOfWork,
    mut head: sales_order::Model,
    action: SoAction,
    from: SoState,
    to: SoState,
) -> AppResult<sales_order::Model> {
    let now = uow.now();
    head.state = to.as_str().to_owned();
    head.updated_at = now;
    let head = sales_orders::save(uow.tx(), head).await?;
    let actor = uow.actor().user_id();
    uow.emit(&events::order_transitioned(
        &head, action, from, to, actor, now,
    ));
    uow.audit(
        AuditEntry::new(audit_action(action))
            .target("sales_order", head.id)
            .change(
                serde_json::json!({ "state": from }),
                serde_json::json!({ "state": to }),
            ),
    )
    .await?;
    Ok(head)
}

/// The customer, if the caller may see it (else `customers.not_found` naming the field).
async fn visible_customer(
    uow: &UnitOfWork,
    principal: &Principal,
    id: Uuid,
) -> AppResult<customer::Model> {
    CustomerService::visible_locked(uow, principal, id)
        .await
        .map_err(|e| e.with_details(serde_json::json!({ "field": "customer_id" })))
}

fn total_of(lines: &[sales_order_line::Model]) -> AppResult<i64> {
    total(lines.iter().map(|l| (l.quantity, l.unit_price)))
}
