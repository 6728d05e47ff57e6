//! The events of the sales capability (schemas in `docs/events`):
//! `sales_order.transitioned` and `payment.transitioned`.

use chrono::{DateTime, Utc};
use depot_domain::message::Message;
use depot_domain::trade::{PaymentState, SoAction, SoState};
use depot_store::entity::{payment, sales_order};
use serde_json::json;
use uuid::Uuid;

/// A sales order moved (a partial return or payment may leave it where it was).
pub(crate) fn order_transitioned(
    order: &sales_order::Model,
    action: SoAction,
    from: SoState,
    to: SoState,
    actor: Option<Uuid>,
    at: DateTime<Utc>,
) -> Message {
    Message::new(
        "sales_order.transitioned",
        ("sales_order", order.id),
        json!({
            "sales_order_id": order.id,
            "customer_id": order.customer_id,
            "owner_id": order.owner_id,
            "action": action,
            "from": from,
            "to": to,
            "actor_id": actor,
            "total": order.total,
            "amount_paid": order.amount_paid,
            "currency": order.currency,
        }),
        at,
    )
}

/// A payment came into being or changed state (`from` is null for a new one).
pub(crate) fn payment_transitioned(
    p: &payment::Model,
    from: Option<PaymentState>,
    at: DateTime<Utc>,
) -> Message {
    Message::new(
        "payment.transitioned",
        ("sales_order", p.sales_order_id),
        json!({
            "payment_id": p.id,
            "sales_order_id": p.sales_order_id,
            "method": p.method,
            "from": from,
            "to": p.state,
            "amount": p.amount,
            "currency": p.currency,
        }),
        at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messaging::catalog::validate;
    use crate::sales::payments::new_payment;
    use depot_domain::trade::PaymentMethod;

    #[test]
    fn the_sales_events_match_their_published_schemas() {
        let now = Utc::now();
        let id = depot_domain::id::new_id;
        let order = sales_order::Model {
            id: id(),
            customer_id: id(),
            location_id: id(),
            owner_id: id(),
            currency: "BDT".into(),
            state: "confirmed".into(),
            notes: None,
            total: 5_000,
            amount_paid: 1_000,
            reserved_until: None,
            created_by: None,
            confirmed_at: None,
            paid_at: None,
            fulfilled_at: None,
            cancelled_at: None,
            created_at: now,
            updated_at: now,
        };
        let payment = new_payment(
            &(order.clone(), Vec::new()),
            PaymentMethod::BankTransfer,
            PaymentState::Paid,
            1_000,
            depot_domain::Actor::System("cli"),
            now,
        );
        for message in [
            order_transitioned(
                &order,
                SoAction::Pay,
                SoState::Confirmed,
                SoState::Confirmed,
                Some(id()),
                now,
            ),
            order_transitioned(
                &order,
                SoAction::Expire,
                SoState::Confirmed,
                SoState::Draft,
                None,
                now,
            ),
            payment_transitioned(&payment, None, now),
            payment_transitioned(&payment, Some(PaymentState::Pending), now),
        ] {
            assert_eq!(validate(&message), Ok(()), "{}", message.event_type);
        }
    }
}
