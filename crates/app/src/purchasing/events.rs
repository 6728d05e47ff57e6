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
