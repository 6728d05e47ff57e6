//! The one place request strings are checked before any handler (or the database) sees them.
//!
//! Every JSON body ([`crate::extract::ApiJson`]) and query string
//! ([`crate::extract::ApiQuery`], [`crate::extract::Pagination`]) passes through here: a string
//! holding NUL or another control character, or longer than any field of the API accepts, is a
//! 422 naming the field. Tab, CR and LF pass (a multi-line field may hold them); single-line
//! fields refuse them in their own validation (`depot_domain::validation::line`). Path
//! parameters are typed (UUIDs), so they cannot carry either.

use depot_domain::{AppError, FieldError};
use serde_json::Value;

/// No string in a request is longer than this (characters); fields have tighter limits.
pub const MAX_STRING_CHARS: usize = 10_000;
/// No query parameter is longer than this (characters).
pub const MAX_QUERY_CHARS: usize = 1_024;

/// Whether `c` is refused anywhere in a request: the C0 controls but tab, LF and CR; DEL; the
/// C1 controls.
fn is_refused(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{feff}'
}

/// At most this many field errors are reported for one request (the rest are not looked for).
const MAX_ERRORS: usize = 20;
/// Field names in errors are cut to this many characters.
const MAX_FIELD_CHARS: usize = 200;

fn check_str(field: &str, s: &str, max: usize, errors: &mut Vec<FieldError>) {
    if errors.len() >= MAX_ERRORS {
        return;
    }
    let problem = if s.chars().any(is_refused) {
        (
            "control_character",
            "must not contain NUL or other control characters".to_owned(),
        )
    } else if s.chars().nth(max).is_some() {
        ("too_long", format!("must be at most {max} characters"))
    } else {
        return;
    };
    let field: String = field.chars().take(MAX_FIELD_CHARS).collect();
    errors.push(FieldError::new(field, problem.0, problem.1));
}

/// Checks every string (and object key) in a JSON body; fields are named by their path
/// (`lines[2].note`).
pub fn check_json(body: &Value) -> Result<(), AppError> {
    let mut errors = Vec::new();
    walk(body, &mut String::new(), &mut errors);
    finish(errors)
}

fn walk(value: &Value, path: &mut String, errors: &mut Vec<FieldError>) {
    match value {
        Value::String(s) => check_str(field_name(path), s, MAX_STRING_CHARS, errors),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                check_str(field_name(path), key, MAX_QUERY_CHARS, errors);
                walk(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn field_name(path: &str) -> &str {
    if path.is_empty() { "body" } else { path }
}

/// A JSON value parsed with duplicate object keys refused (`{"roles":["admin"],"roles":[]}`
/// means two different things to two parsers; we take neither).
pub struct UniqueKeys(pub Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let UniqueKeys(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Checks every query parameter (name and value) of a query string.
pub fn check_query(query: &str) -> Result<(), AppError> {
    let mut errors = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        check_str(&name, &name, MAX_QUERY_CHARS, &mut errors);
        check_str(&name, &value, MAX_QUERY_CHARS, &mut errors);
    }
    finish(errors)
}

fn finish(errors: Vec<FieldError>) -> Result<(), AppError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(err: Option<AppError>) -> Vec<(String, String)> {
        err.and_then(|e| e.details().cloned())
            .and_then(|d| d["fields"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|f| {
                (
                    f["field"].as_str().unwrap_or_default().to_owned(),
                    f["code"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn control_characters_are_refused_wherever_they_are() {
        let body = json!({
            "name": "a\u{0}b",
            "lines": [{ "note": "ok" }, { "note": "bell\u{7}" }],
            "description": "two\nlines\tand\r\nmore",
            "del": "x\u{7f}",
            "c1": "x\u{85}",
        });
        assert_eq!(
            fields(check_json(&body).err()),
            vec![
                ("c1".to_owned(), "control_character".to_owned()),
                ("del".to_owned(), "control_character".to_owned()),
                ("lines[1].note".to_owned(), "control_character".to_owned()),
                ("name".to_owned(), "control_character".to_owned()),
            ]
        );
    }

    #[test]
    fn ordinary_text_passes() {
        let body =
            json!({ "name": "Zoë ☕ 東京", "n": 3, "list": ["a", "b"], "nested": { "x": null } });
        assert!(check_json(&body).is_ok());
        assert!(check_query("q=caf%C3%A9&limit=5").is_ok());
    }

    #[test]
    fn over_long_strings_are_refused_and_named() {
        let body = json!({ "description": "x".repeat(MAX_STRING_CHARS + 1) });
        assert_eq!(
            fields(check_json(&body).err()),
            vec![("description".to_owned(), "too_long".to_owned())]
        );
        assert!(check_json(&json!({ "d": "x".repeat(MAX_STRING_CHARS) })).is_ok());
    }

    #[test]
    fn a_flood_of_bad_strings_reports_a_bounded_list() {
        let many: Vec<&str> = vec!["\u{1}"; 10_000];
        let fields = fields(check_json(&json!({ "a": many })).err());
        assert_eq!(fields.len(), MAX_ERRORS);
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let parse = |text: &str| serde_json::from_str::<UniqueKeys>(text).map(|u| u.0);
        assert!(parse(r#"{"roles":["admin"],"roles":[]}"#).is_err());
        assert!(parse(r#"{"a":[{"b":1,"b":2}]}"#).is_err());
        assert_eq!(
            parse(r#"{"a":[{"b":1},{"b":2}],"n":-1.5,"t":true,"z":null}"#).ok(),
            Some(json!({"a":[{"b":1},{"b":2}],"n":-1.5,"t":true,"z":null}))
        );
    }

    #[test]
    fn query_values_are_checked_after_decoding() {
        assert_eq!(
            fields(check_query("q=%00&status=active").err()),
            vec![("q".to_owned(), "control_character".to_owned())]
        );
        let long = format!("q={}", "a".repeat(MAX_QUERY_CHARS + 1));
        assert_eq!(
            fields(check_query(&long).err()),
            vec![("q".to_owned(), "too_long".to_owned())]
        );
    }
}
