//! The event of the CRM capability (schema in `docs/events`): `customer.reassigned`.

use chrono::{DateTime, Utc};
use depot_domain::message::Message;
use serde_json::json;
use uuid::Uuid;

/// A customer (and its open activities) moved to another owner. No personal data.
pub(crate) fn reassigned(
    customer: Uuid,
    from: Uuid,
    to: Uuid,
    activities: u64,
    at: DateTime<Utc>,
) -> Message {
    Message::new(
        "customer.reassigned",
        ("customer", customer),
        json!({
            "customer_id": customer,
            "from_owner_id": from,
            "to_owner_id": to,
            "activities_moved": activities,
        }),
        at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messaging::catalog::validate;

    #[test]
    fn the_reassignment_event_matches_its_published_schema() {
        let id = depot_domain::id::new_id;
        let message = reassigned(id(), id(), id(), 3, Utc::now());
        assert_eq!(validate(&message), Ok(()));
    }
}
