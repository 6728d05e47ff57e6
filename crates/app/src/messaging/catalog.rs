//! The event catalogue: every event type the code can emit, with its JSON Schema (the files in
//! `docs/events/`, embedded at build time). The relay validates each payload before publishing.

use std::collections::HashMap;
use std::sync::OnceLock;

use depot_domain::message::Message;

/// (type, version, payload schema, a payload that must validate).
pub const EVENTS: &[(&str, i32, &str, &str)] = &[
    (
        "debug.ping",
        1,
        include_str!("../../../../docs/events/debug.ping.v1.schema.json"),
        r#"{"sleep_ms": 10, "fail_times": 1, "poison": false}"#,
    ),
    (
        "stock.changed",
        1,
        include_str!("../../../../docs/events/stock.changed.v1.schema.json"),
        r#"{"product_id": "0192f3a0-0000-7000-8000-000000000001",
            "location_id": "0192f3a0-0000-7000-8000-000000000002",
            "on_hand": 12.5, "reserved": 0, "available": 12.5, "change": -1.25,
            "kinds": ["adjustment"], "reference_type": null, "reference_id": null}"#,
    ),
    (
        "alert.raised",
        1,
        include_str!("../../../../docs/events/alert.raised.v1.schema.json"),
        r#"{"alert_id": "0192f3a0-0000-7000-8000-000000000003", "kind": "low_stock",
            "product_id": "0192f3a0-0000-7000-8000-000000000001",
            "location_id": "0192f3a0-0000-7000-8000-000000000002", "batch_id": null,
            "status": "open", "raised_at": "2026-11-29T10:00:00Z", "resolved_at": null,
            "resolved_by": null, "resolved_automatically": false}"#,
    ),
    (
        "alert.resolved",
        1,
        include_str!("../../../../docs/events/alert.resolved.v1.schema.json"),
        r#"{"alert_id": "0192f3a0-0000-7000-8000-000000000003", "kind": "expiring",
            "product_id": "0192f3a0-0000-7000-8000-000000000001",
            "location_id": "0192f3a0-0000-7000-8000-000000000002",
            "batch_id": "0192f3a0-0000-7000-8000-000000000004", "status": "resolved",
            "raised_at": "2026-11-29T10:00:00Z", "resolved_at": "2026-11-29T11:00:00Z",
            "resolved_by": null, "resolved_automatically": true}"#,
    ),
    (
        "transfer.completed",
        1,
        include_str!("../../../../docs/events/transfer.completed.v1.schema.json"),
        r#"{"transfer_id": "0192f3a0-0000-7000-8000-000000000005",
            "from_location_id": "0192f3a0-0000-7000-8000-000000000002",
            "to_location_id": "0192f3a0-0000-7000-8000-000000000006",
            "lines": [{"product_id": "0192f3a0-0000-7000-8000-000000000001", "quantity": 3}]}"#,
    ),
    (
        "count.posted",
        1,
        include_str!("../../../../docs/events/count.posted.v1.schema.json"),
        r#"{"count_id": "0192f3a0-0000-7000-8000-000000000007",
            "location_id": "0192f3a0-0000-7000-8000-000000000002",
            "lines": [{"batch_id": "0192f3a0-0000-7000-8000-000000000004",
                       "product_id": "0192f3a0-0000-7000-8000-000000000001", "difference": -2}]}"#,
    ),
    (
        "purchase_order.transitioned",
        1,
        include_str!("../../../../docs/events/purchase_order.transitioned.v1.schema.json"),
        r#"{"purchase_order_id": "0192f3a0-0000-7000-8000-000000000008",
            "supplier_id": "0192f3a0-0000-7000-8000-000000000009", "action": "receive",
            "from": "sent", "to": "partially_received",
            "actor_id": "0192f3a0-0000-7000-8000-00000000000a", "created_by": null,
            "total": 125000, "currency": "BDT"}"#,
    ),
    (
        "sales_order.transitioned",
        1,
        include_str!("../../../../docs/events/sales_order.transitioned.v1.schema.json"),
        r#"{"sales_order_id": "0192f3a0-0000-7000-8000-00000000000b",
            "customer_id": "0192f3a0-0000-7000-8000-00000000000c",
            "owner_id": "0192f3a0-0000-7000-8000-00000000000a", "action": "confirm",
            "from": "draft", "to": "confirmed", "actor_id": null,
            "total": 5000, "amount_paid": 0, "currency": "BDT"}"#,
    ),
    (
        "payment.transitioned",
        1,
        include_str!("../../../../docs/events/payment.transitioned.v1.schema.json"),
        r#"{"payment_id": "0192f3a0-0000-7000-8000-00000000000d",
            "sales_order_id": "0192f3a0-0000-7000-8000-00000000000b", "method": "cash",
            "from": null, "to": "paid", "amount": 5000, "currency": "BDT"}"#,
    ),
    (
        "customer.reassigned",
        1,
        include_str!("../../../../docs/events/customer.reassigned.v1.schema.json"),
        r#"{"customer_id": "0192f3a0-0000-7000-8000-00000000000c",
            "from_owner_id": "0192f3a0-0000-7000-8000-00000000000a",
            "to_owner_id": "0192f3a0-0000-7000-8000-00000000000e", "activities_moved": 2}"#,
    ),
    (
        "import.applied",
        1,
        include_str!("../../../../docs/events/import.applied.v1.schema.json"),
        r#"{"import_id": "0192f3a0-0000-7000-8000-00000000000f", "kind": "opening_stock",
            "replace": false,
            "checksum": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "rows": 200000, "created": 200000, "updated": 0, "unchanged": 0,
            "movements": 200000}"#,
    ),
    (
        "report.finished",
        1,
        include_str!("../../../../docs/events/report.finished.v1.schema.json"),
        r#"{"report_id": "0192f3a0-0000-7000-8000-000000000011", "type": "movements",
            "status": "failed", "owner_id": "0192f3a0-0000-7000-8000-00000000000a",
            "rows": 0, "bytes": 0, "error_code": "reports.too_large"}"#,
    ),
    (
        "security.new_device_sign_in",
        1,
        include_str!("../../../../docs/events/security.new_device_sign_in.v1.schema.json"),
        r#"{"user_id": "0192f3a0-0000-7000-8000-00000000000a",
            "session_id": "0192f3a0-0000-7000-8000-000000000010", "device_name": null,
            "user_agent": "Mozilla/5.0", "ip": "203.0.113.7",
            "signed_in_at": "2026-11-29T10:00:00Z"}"#,
    ),
    (
        "security.password_changed",
        1,
        include_str!("../../../../docs/events/security.password_changed.v1.schema.json"),
        r#"{"user_id": "0192f3a0-0000-7000-8000-00000000000a", "how": "reset",
            "changed_at": "2026-11-29T10:00:00Z"}"#,
    ),
    (
        "security.mfa_changed",
        1,
        include_str!("../../../../docs/events/security.mfa_changed.v1.schema.json"),
        r#"{"user_id": "0192f3a0-0000-7000-8000-00000000000a", "enabled": true, "how": "user",
            "changed_at": "2026-11-29T10:00:00Z"}"#,
    ),
];

/// Event types published for whoever listens: with no queue bound (no consumer in this
/// deployment) they are published to no one, not set aside. Every other type is meant for a
/// consumer, and an event of it that no queue takes is a fault the relay sets aside.
pub const BROADCAST: &[&str] = &[
    "stock.changed",
    "alert.raised",
    "alert.resolved",
    "transfer.completed",
    "count.posted",
    "purchase_order.transitioned",
    "sales_order.transitioned",
    "payment.transitioned",
    "customer.reassigned",
    "import.applied",
    "report.finished",
    "security.new_device_sign_in",
    "security.password_changed",
    "security.mfa_changed",
];

/// Whether an event of this type may go out with nobody listening (see [`BROADCAST`]).
pub fn may_go_unheard(event_type: &str) -> bool {
    BROADCAST.contains(&event_type)
}

/// The envelope every message must match.
pub const ENVELOPE: &str = include_str!("../../../../docs/events/envelope.schema.json");

struct Validators {
    envelope: jsonschema::Validator,
    payloads: HashMap<(String, i32), jsonschema::Validator>,
}

fn validators() -> Result<&'static Validators, String> {
    static CELL: OnceLock<Result<Validators, String>> = OnceLock::new();
    CELL.get_or_init(|| {
        let compile = |text: &str| -> Result<jsonschema::Validator, String> {
            let schema: serde_json::Value =
                serde_json::from_str(text).map_err(|e| e.to_string())?;
            jsonschema::validator_for(&schema).map_err(|e| e.to_string())
        };
        let envelope = compile(ENVELOPE)?;
        let mut payloads = HashMap::new();
        for (kind, version, schema, _) in EVENTS {
            payloads.insert(((*kind).to_owned(), *version), compile(schema)?);
        }
        Ok(Validators { envelope, payloads })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Checks a message against the envelope and its payload schema. The error says why, for the
/// outbox row; it never contains payload values.
pub fn validate(message: &Message) -> Result<(), String> {
    let validators = validators().map_err(|e| format!("event schemas do not compile: {e}"))?;
    let envelope = serde_json::to_value(message).map_err(|e| e.to_string())?;
    if let Some(err) = validators.envelope.iter_errors(&envelope).next() {
        return Err(format!(
            "envelope invalid at {}: {}",
            err.instance_path(),
            format_args!("violates `{}`", err.kind().keyword())
        ));
    }
    let key = (message.event_type.clone(), message.version);
    let Some(schema) = validators.payloads.get(&key) else {
        return Err(format!(
            "no schema for event type {} v{}",
            message.event_type, message.version
        ));
    };
    if let Some(err) = schema.iter_errors(&message.payload).next() {
        return Err(format!(
            "payload invalid at {}: {}",
            err.instance_path(),
            format_args!("violates `{}`", err.kind().keyword())
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn message(kind: &str, version: i32, payload: serde_json::Value) -> Message {
        Message {
            version,
            ..Message::new(kind, ("debug", "ping"), payload, Utc::now())
                .correlated(Some("req-1".into()))
        }
    }

    #[test]
    fn every_event_type_has_a_schema_and_its_sample_validates() {
        for (kind, version, _, sample) in EVENTS {
            let payload: serde_json::Value = serde_json::from_str(sample).unwrap_or_default();
            assert_eq!(
                validate(&message(kind, *version, payload)),
                Ok(()),
                "{kind} v{version}"
            );
        }
    }

    #[test]
    fn every_schema_file_is_in_the_catalogue() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/events");
        let files: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".schema.json") && n != "envelope.schema.json")
            .collect();
        assert!(!files.is_empty());
        for file in files {
            let known = EVENTS
                .iter()
                .any(|(k, v, _, _)| file == format!("{k}.v{v}.schema.json"));
            assert!(known, "{file} is not in the catalogue");
        }
    }

    #[test]
    fn unknown_types_and_bad_payloads_are_refused() {
        let unknown = validate(&message("stock.teleported", 1, serde_json::json!({})));
        assert!(unknown.is_err_and(|e| e.contains("no schema")));
        let bad = validate(&message(
            "debug.ping",
            1,
            serde_json::json!({ "sleep_ms": "soon" }),
        ));
        assert!(bad.is_err_and(|e| e.contains("/sleep_ms")));
        let extra = validate(&message(
            "debug.ping",
            1,
            serde_json::json!({ "surprise": 1 }),
        ));
        assert!(extra.is_err());
        let bad_type = validate(&message("Debug Ping", 1, serde_json::json!({})));
        assert!(bad_type.is_err_and(|e| e.contains("envelope")));
    }
}
