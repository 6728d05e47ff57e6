//! The event catalogue: every event type the code can emit, with its JSON Schema (the files in
//! `docs/events/`, embedded at build time). The relay validates each payload before publishing.

use std::collections::HashMap;
use std::sync::OnceLock;

use depot_domain::message::Message;

/// (type, version, payload schema, a payload that must validate).
pub const EVENTS: &[(&str, i32, &str, &str)] = &[(
    "debug.ping",
    1,
    include_str!("../../../../docs/events/debug.ping.v1.schema.json"),
    r#"{"sleep_ms": 10, "fail_times": 1, "poison": false}"#,
)];

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
