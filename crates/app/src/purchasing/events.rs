//! The event of the purchasing capability (schema in `docs/events`):
//! `purchase_order.transitioned`.

use chrono::{DateTime, Utc};
use depot_domain::message::Message;
use depot_domain::trade::{PoAction, PoState};
use depot_store::entity::purchase_order;
use serde_json::json;

/// A purchase order moved from one state to another (a receipt may leave it where it was:
/// `partially_received` → `partially_received`).
pub(crate) fn transitioned(
    order: &purchase_order::Model,
    action: PoAction,
    from: PoState,
    to: PoState,
    actor: Option<uuid::Uuid>,
    at: DateTime<Utc>,
) -> Message {
    Message::new(
        "purchase_order.transitioned",
        ("purchase_order", order.id),
        json!({
            "purchase_order_id": order.id,
            "supplier_id": order.supplier_id,
            "action": action,
            "from": from,
            "to": to,
            "actor_id": actor,
            "created_by": order.created_by,
            "total": order.total,
            "currency": order.currency,
        }),
        at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messaging::catalog::validate;

    #[test]
    fn the_transition_event_matches_its_published_schema() {
        let now = Utc::now();
        let order = purchase_order::Model {
            id: depot_domain::id::new_id(),
            supplier_id: depot_domain::id::new_id(),
            currency: "BDT".into(),
            state: "sent".into(),
            expected_at: None,
            notes: None,
            total: 2_500_000,
            created_by: Some(depot_domain::id::new_id()),
            submitted_at: None,
            approved_by: None,
            approved_at: None,
            sent_at: None,
            closed_at: None,
            cancelled_at: None,
            created_at: now,
            updated_at: now,
        };
        for (action, from, to, actor) in [
            (
                PoAction::Receive,
                PoState::Sent,
                PoState::PartiallyReceived,
                Some(order.id),
            ),
            (PoAction::Cancel, PoState::Draft, PoState::Cancelled, None),
        ] {
            let message = transitioned(&order, action, from, to, actor, now);
            assert_eq!(validate(&message), Ok(()));
        }
    }
}
