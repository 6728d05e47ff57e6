//! The events of the stock capability (schemas in `docs/events`): `stock.changed`,
//! `alert.raised`, `alert.resolved`, `transfer.completed`, `count.posted`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use depot_domain::message::Message;
use depot_domain::stock::{Quantity, ReferenceType};
use depot_store::entity::{alert, stock_level};
use serde_json::json;
use uuid::Uuid;

fn q(thousandths: i64) -> serde_json::Value {
    Quantity::from_thousandths(thousandths).to_json()
}

/// A level changed: its quantities now, the net change and why.
pub(crate) fn stock_changed(
    level: &stock_level::Model,
    change: i64,
    kinds: &BTreeSet<&str>,
    reference: Option<(ReferenceType, Uuid)>,
    at: DateTime<Utc>,
) -> Message {
    Message::new(
        "stock.changed",
        ("product", level.product_id),
        json!({
            "product_id": level.product_id,
            "location_id": level.location_id,
            "on_hand": q(level.on_hand),
            "reserved": q(level.reserved),
            "available": q(level.on_hand - level.reserved),
            "change": q(change),
            "kinds": kinds,
            "reference_type": reference.map(|(t, _)| t),
            "reference_id": reference.map(|(_, id)| id),
        }),
        at,
    )
}

fn alert_payload(a: &alert::Model) -> serde_json::Value {
    json!({
        "alert_id": a.id,
        "kind": a.kind,
        "product_id": a.product_id,
        "location_id": a.location_id,
        "batch_id": a.batch_id,
        "status": a.status,
        "raised_at": a.raised_at,
        "resolved_at": a.resolved_at,
        "resolved_by": a.resolved_by,
        "resolved_automatically": a.resolved_automatically,
    })
}

pub(crate) fn alert_raised(a: &alert::Model) -> Message {
    Message::new(
        "alert.raised",
        ("alert", a.id),
        alert_payload(a),
        a.raised_at,
    )
}

pub(crate) fn alert_resolved(a: &alert::Model, at: DateTime<Utc>) -> Message {
    Message::new("alert.resolved", ("alert", a.id), alert_payload(a), at)
}

/// A transfer moved its lines from one location to another.
pub(crate) fn transfer_completed(
    id: Uuid,
    from: Uuid,
    to: Uuid,
    lines: &[(Uuid, i64)],
    at: DateTime<Utc>,
) -> Message {
    Message::new(
        "transfer.completed",
        ("transfer", id),
        json!({
            "transfer_id": id,
            "from_location_id": from,
            "to_location_id": to,
            "lines": lines.iter().map(|(product, quantity)| json!({
                "product_id": product,
                "quantity": q(*quantity),
            })).collect::<Vec<_>>(),
        }),
        at,
    )
}

/// A cycle count was posted: each counted batch with its difference.
pub(crate) fn count_posted(
    id: Uuid,
    location: Uuid,
    lines: &[(Uuid, Uuid, i64)],
    at: DateTime<Utc>,
) -> Message {
    Message::new(
        "count.posted",
        ("count", id),
        json!({
            "count_id": id,
            "location_id": location,
            "lines": lines.iter().map(|(batch, product, difference)| json!({
                "batch_id": batch,
                "product_id": product,
                "difference": q(*difference),
            })).collect::<Vec<_>>(),
        }),
        at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messaging::catalog::validate;

    #[test]
    fn every_event_the_stock_capability_builds_matches_its_published_schema() {
        let (product, location, batch) = (
            depot_domain::id::new_id(),
            depot_domain::id::new_id(),
            depot_domain::id::new_id(),
        );
        let now = Utc::now();
        let level = stock_level::Model {
            product_id: product,
            location_id: location,
            on_hand: 12_500,
            reserved: 1_000,
            updated_at: now,
        };
        let kinds: BTreeSet<&str> = ["transfer_in", "adjustment"].into_iter().collect();
        let mut alert = alert::Model {
            id: depot_domain::id::new_id(),
            kind: "expiring".into(),
            product_id: product,
            location_id: location,
            batch_id: Some(batch),
            subject: "s".into(),
            status: "open".into(),
            raised_at: now,
            last_seen_at: now,
            occurrences: 1,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
            resolved_automatically: false,
        };
        let raised = alert_raised(&alert);
        alert.status = "resolved".into();
        alert.resolved_at = Some(now);
        alert.resolved_by = Some(depot_domain::id::new_id());
        for message in [
            stock_changed(
                &level,
                -1_250,
                &kinds,
                Some((ReferenceType::Transfer, batch)),
                now,
            ),
            stock_changed(&level, 3_000, &kinds, None, now),
            raised,
            alert_resolved(&alert, now),
            transfer_completed(batch, location, product, &[(product, 2_000)], now),
            count_posted(batch, location, &[(batch, product, -500)], now),
        ] {
            assert_eq!(validate(&message), Ok(()), "{}", message.event_type);
        }
    }
}
