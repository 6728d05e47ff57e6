//! Manual payments of a sales order (`cash`, `bank_transfer`, `card_terminal`): at most one
//! active per (order, method), never more than the order still owes; the order becomes `paid`
//! once its total is covered.

use depot_domain::trade::{PaymentState, SoAction, SoState};
use depot_domain::{AppError, AppResult, ErrorCode, Validator};
use depot_store::entity::payment;
use depot_store::on_constraint;
use depot_store::repo::sales_orders;
use uuid::Uuid;

use super::{Acting, NewPayment, PaymentView, REFERENCE_MAX, SalesService, events, views};
use crate::audit::AuditEntry;
use crate::auth::principal::Principal;
use crate::client::ClientInfo;
use crate::uow::retry_transient;

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
        let ((mut head, lines), from) = self
            .begin_transition(&uow, acting, id, SoAction::Pay)
            .await?;
        let due = head.total - head.amount_paid;
        if input.amount > due {
            return Err(AppError::new(
                ErrorCode::PaymentsExceedsBalance,
                "the payment is more than the order still owes",
            )
            .with_details(serde_json::json!({ "balance_due": due, "field": "amount" })));
        }
        let now = uow.now();
        let row = payment::Model {
            id: depot_domain::id::new_id(),
            sales_order_id: id,
            method: input.method.as_str().to_owned(),
            state: PaymentState::Paid.as_str().to_owned(),
            amount: input.amount,
            currency: head.currency.clone(),
            reference: input.reference.clone(),
            tran_id: None,
            actor_id: acting.actor.user_id(),
            actor_name: acting.actor.system_name().map(str::to_owned),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        sales_orders::insert_payment(uow.tx(), row.clone())
            .await
            .map_err(on_constraint(&sales_orders::ACTIVE_PAYMENT_UNIQUE, || {
                AppError::new(
                    ErrorCode::PaymentsActiveExists,
                    "the order already has an active payment by this method",
                )
                .with_details(serde_json::json!({ "field": "method" }))
            }))?;
        uow.emit(&events::payment_transitioned(&row, None, now))
            .await?;
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
        head.amount_paid += input.amount;
        let covered = head.amount_paid >= head.total;
        let to = if covered && from == SoState::Confirmed {
            head.paid_at = Some(now);
            // A paid order keeps its stock until it is fulfilled or cancelled.
            head.reserved_until = None;
            SoState::Paid
        } else {
            if covered {
                head.paid_at = Some(now);
            }
            from
        };
        self.finish_transition(uow, (head, lines), SoAction::Pay, from, to)
            .await?;
        Ok(views::payment(row))
    }
}
