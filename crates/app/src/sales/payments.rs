//! Payments against a sales order. Manual ones (`cash`, `bank_transfer`, `card_terminal`) are
//! recorded here: at most one active per (order, method), never more than the order still
//! owes. Gateway payments (`crate::payments`) credit the order through the same
//! [`lock_payable`] and [`credit`]: the order becomes `paid` once its total is covered.

use chrono::{DateTime, Utc};
use depot_domain::trade::{PaymentMethod, PaymentState, SoAction, SoState};
use depot_domain::{Actor, AppError, AppResult, ErrorCode, Validator};
use depot_store::entity::payment;
use depot_store::on_constraint;
use depot_store::repo::sales_orders;
use uuid::Uuid;

use super::{
    Acting, NewPayment, Order, PaymentView, REFERENCE_MAX, SalesService, events, invalid_state,
    order_not_found, record_transition, state_of, views,
};
use crate::audit::AuditEntry;
use crate::auth::principal::Principal;
use crate::client::ClientInfo;
use crate::uow::{UnitOfWork, retry_transient};

/// The order, locked, when `acting` may touch it: with the state it is in, and whether a
/// payment may be taken in that state (confirmed or fulfilled, something due).
pub(crate) async fn lock_payable(
    uow: &UnitOfWork,
    acting: Acting,
    id: Uuid,
) -> AppResult<(Order, SoState, bool)> {
    let order = sales_orders::lock(uow.tx(), id)
        .await?
        .ok_or_else(order_not_found)?;
    acting.check(&order.0)?;
    let state = state_of(&order.0);
    let payable = state.allows(SoAction::Pay);
    Ok((order, state, payable))
}

/// What the order still owes.
pub(crate) fn balance_due(order: &Order) -> i64 {
    order.0.total - order.0.amount_paid
}

/// The `sales_order.invalid_state` error for a payment in `state`.
pub(crate) fn not_payable(state: SoState) -> AppError {
    invalid_state(state, SoAction::Pay)
}

/// The `payments.active_exists` error for a violated one-active-payment rule.
pub(crate) fn active_exists() -> AppError {
    AppError::new(
        ErrorCode::PaymentsActiveExists,
        "the order already has an active payment by this method",
    )
    .with_details(serde_json::json!({ "field": "method" }))
}

/// A new payment of `amount` on `order` by `method`, in `state`, made by `actor` (nothing
/// from the gateway yet).
pub(crate) fn new_payment(
    order: &Order,
    method: PaymentMethod,
    state: PaymentState,
    amount: i64,
    actor: Actor,
    now: DateTime<Utc>,
) -> payment::Model {
    payment::Model {
        id: depot_domain::id::new_id(),
        sales_order_id: order.0.id,
        method: method.as_str().to_owned(),
        state: state.as_str().to_owned(),
        amount,
        currency: order.0.currency.clone(),
        reference: None,
        tran_id: None,
        actor_id: actor.user_id(),
        actor_name: actor.system_name().map(str::to_owned),
        version: 1,
        created_at: now,
        updated_at: now,
        val_id: None,
        bank_tran_id: None,
        risk_level: None,
        gateway_url: None,
        flag: None,
        failure: None,
        payload: None,
        attempts: 0,
        refunded: 0,
        paid_at: (state == PaymentState::Paid).then_some(now),
    }
}

/// Inserts a payment, refusing a second active one per (order, method).
pub(crate) async fn insert(uow: &UnitOfWork, row: payment::Model) -> AppResult<()> {
    sales_orders::insert_payment(uow.tx(), row)
        .await
        .map_err(on_constraint(
            &sales_orders::ACTIVE_PAYMENT_UNIQUE,
            active_exists,
        ))
}

/// Adds `amount` to what the (locked, payable) order has been paid; once its total is
/// covered it is `paid` (a fulfilled order stays fulfilled). Audited and emitted like any
/// transition, in `uow`.
pub(crate) async fn credit(
    uow: &mut UnitOfWork,
    (mut head, _): Order,
    from: SoState,
    amount: i64,
) -> AppResult<()> {
    let now = uow.now();
    head.amount_paid += amount;
    let covered = head.amount_paid >= head.total;
    if covered {
        head.paid_at = Some(now);
    }
    let to = if covered && from == SoState::Confirmed {
        // A paid order keeps its stock until it is fulfilled or cancelled.
        head.reserved_until = None;
        SoState::Paid
    } else {
        from
    };
    record_transition(uow, head, SoAction::Pay, from, to).await?;
    Ok(())
}

impl SalesService {
    /// Records a manual payment; the order becomes `paid` once its total is covered.
    pub async fn record_payment(
        &self,
        principal: &Principal,
        id: Uuid,
        input: NewPayment,
        client: &ClientInfo,
    ) -> AppResult<PaymentView> {
        let mut v = Validator::new();
        v.check(
            input.method.is_manual(),
            "method",
            "not_manual",
            "must be cash, bank_transfer or card_terminal (gateway payments start at /payments)",
        );
        v.check(
            input.amount > 0,
            "amount",
            "not_positive",
            "must be greater than 0",
        );
        if let Some(reference) = &input.reference {
            v.line("reference", reference, 1, REFERENCE_MAX);
        }
        v.finish()?;
        let acting = Acting::of(principal);
        retry_transient(|| self.record_payment_once(acting, id, &input, client)).await
    }

    async fn record_payment_once(
        &self,
        acting: Acting,
        id: Uuid,
        input: &NewPayment,
        client: &ClientInfo,
    ) -> AppResult<PaymentView> {
        let mut uow = self.writer.begin(acting.actor, client).await?;
        let (order, from, payable) = lock_payable(&uow, acting, id).await?;
        if !payable {
            return Err(not_payable(from));
        }
        let due = balance_due(&order);
        if input.amount > due {
            return Err(AppError::new(
                ErrorCode::PaymentsExceedsBalance,
                "the payment is more than the order still owes",
            )
            .with_details(serde_json::json!({ "balance_due": due, "field": "amount" })));
        }
        let now = uow.now();
        let row = payment::Model {
            reference: input.reference.clone(),
            ..new_payment(
                &order,
                input.method,
                PaymentState::Paid,
                input.amount,
                acting.actor,
                now,
            )
        };
        insert(&uow, row.clone()).await?;
        uow.emit(&events::payment_transitioned(&row, None, now));
        uow.audit(
            AuditEntry::new("payment.recorded")
                .target("sales_order", id)
                .details(serde_json::json!({
                    "payment_id": row.id,
                    "method": row.method,
                    "amount": row.amount,
                    "currency": row.currency,
                })),
        )
        .await?;
        credit(&mut uow, order, from, input.amount).await?;
        uow.commit().await?;
        Ok(views::payment(row))
    }
}
