//! The OpenAPI 3.1 document, generated from the handlers, and the offline `/docs` page.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use depot_domain::ErrorCode;

use crate::error::{ErrorBody, status_of_code};

mod links;

const DESCRIPTION: &str = "\
Depot: inventory and operations API.

Conventions:
- Base path `/api/v1`; JSON in `snake_case`; ids are UUIDv7; timestamps RFC 3339 UTC; money is \
integer minor units plus an ISO currency; quantities are integers in the product's base unit.
- Every 4xx/5xx answers the error envelope (`ErrorBody`) with a stable `code` and the `request_id`.
- Every response carries `X-Request-Id` (yours, if well-formed, else generated).
- Lists take `limit` (1-200, default 50) and an opaque `cursor`, and answer \
`{\"data\": [...], \"next_cursor\": \"...\" | null}`.
- Authentication: `Authorization: Bearer <access token>` (security scheme `bearer`). An \
operation's `bearer` scopes name the permission it requires (403 `auth.forbidden` without it); \
no scope means any signed-in user; an empty requirement means public.
- Browser sessions authenticated by cookie send `X-CSRF-Token` on every state change \
(security scheme `csrf`).
- Operations that list the `Idempotency-Key` header (every POST that changes stock or money, and \
creations such as `POST /users`) are safe to retry: a repeat of the same request by the same user \
returns the first response, with `Idempotent-Replayed: true`, and does nothing else; a copy \
sent while the first runs waits for it (409 `idempotency.in_progress` if it takes too long); the \
same key with a different request answers 422 `idempotency.key_reused`. Responses are kept for \
24 hours; a 5xx is not kept, so a retry runs again — unless the request had already committed its \
effect, which never runs twice (409 `idempotency.response_lost` when the server stopped before \
storing the response).";

#[derive(OpenApi)]
#[openapi(
    info(title = "Depot API", description = DESCRIPTION),
    modifiers(&SecuritySchemes, &ErrorCatalogue),
    components(schemas(ErrorBody)),
    tags(
        (name = "operations", description = "Liveness, readiness and metadata"),
        (name = "auth", description = "Sign-in, tokens, sessions, CSRF, MFA and password reset"),
        (name = "users", description = "User accounts and self-service"),
        (name = "roles", description = "Roles and the permission catalogue"),
        (name = "audit", description = "The audit log"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "Signed double-submit token bound to the session; required on cookie-authenticated state changes",
            ))),
        );
    }
}

/// Appends the error-code catalogue to the description: every code a client can receive, its
/// HTTP status and meaning.
struct ErrorCatalogue;

impl Modify for ErrorCatalogue {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut table = String::from(
            "\n\nError codes (the envelope's `code`; validation errors carry a code per field \
             in `details.fields`):\n\n| code | status | meaning |\n|---|---|---|\n",
        );
        for code in ErrorCode::ALL {
            table.push_str(&format!(
                "| `{}` | {} | {} |\n",
                code.as_str(),
                status_of_code(*code).as_u16(),
                code.description()
            ));
        }
        let description = openapi.info.description.get_or_insert_with(String::new);
        description.push_str(&table);
    }
}

/// Finishes the generated document in one pass over its JSON: the shared error responses
/// ([`document_shared_errors`]), the edge's string rules ([`constrain_request_strings`]) and
/// the links between operations ([`links::add`]).
/// (JSON, because utoipa does not expose an operation's security requirements.)
pub fn complete(doc: &mut utoipa::openapi::OpenApi) {
    let Ok(mut json) = serde_json::to_value(&*doc) else {
        return;
    };
    document_shared_errors(&mut json);
    constrain_request_strings(&mut json);
    links::add(&mut json);
    if let Ok(completed) = serde_json::from_value(json) {
        *doc = completed;
    }
}

/// The error responses every operation can give besides its own: (status, component name,
/// description).
const SHARED_ERRORS: [(&str, &str, &str); 8] = [
    (
        "400",
        "BadRequest",
        "The request is malformed: JSON syntax, query string, path id, cursor.",
    ),
    (
        "401",
        "Unauthorized",
        "Authentication is missing, invalid or expired.",
    ),
    (
        "403",
        "Forbidden",
        "Signed in, but not allowed (a missing permission, a CSRF failure).",
    ),
    (
        "408",
        "RequestTimeout",
        "The request took longer than the request timeout and was cancelled.",
    ),
    ("413", "PayloadTooLarge", "The body is over the body limit."),
    (
        "415",
        "UnsupportedMediaType",
        "The body is not `application/json`.",
    ),
    (
        "422",
        "Unprocessable",
        "A field is invalid: `details.fields` names each one and why.",
    ),
    (
        "503",
        "Unavailable",
        "A dependency (database, cache, broker) is unavailable; retry later.",
    ),
];

/// Describes [`SHARED_ERRORS`] once in `components.responses` and references them from each
/// operation that can give them:
/// - every operation: 400 (malformed query or path id), 408 (request timeout), 422 (a string
///   with control characters or over-long, a field failing validation), 503 (database or other
///   dependency unavailable);
/// - operations that take a JSON body: 413 (over the body limit), 415 (not JSON);
/// - operations behind `bearer`: 401 (missing, invalid or expired token); 403 when they name
///   a permission (`auth.forbidden`) or change state for a cookie session (CSRF).
///
/// (`Idempotency-Key` answers are documented with the header, by `crate::idempotency`.) An
/// operation's own declaration of a status wins (its description is more specific).
fn document_shared_errors(json: &mut serde_json::Value) {
    for (_, name, description) in SHARED_ERRORS {
        json["components"]["responses"][name] = serde_json::json!({
            "description": description,
            "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/ErrorBody" }
            } },
        });
    }
    for operation in operations(json) {
        let mut statuses = vec!["400", "408", "422", "503"];
        if operation.get("requestBody").is_some() {
            statuses.extend(["413", "415"]);
        }
        let secured = operation["security"]
            .as_array()
            .is_some_and(|requirements| requirements.iter().any(|r| r.get("bearer").is_some()));
        if secured {
            statuses.extend(["401", "403"]);
        }
        let Some(responses) = operation["responses"].as_object_mut() else {
            continue;
        };
        for (status, name, _) in SHARED_ERRORS {
            if statuses.contains(&status) {
                responses.entry(status).or_insert_with(
                    || serde_json::json!({ "$ref": format!("#/components/responses/{name}") }),
                );
            }
        }
    }
}

/// Every operation object of the document.
fn operations(json: &mut serde_json::Value) -> impl Iterator<Item = &mut serde_json::Value> {
    json["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter(|operation| operation.get("responses").is_some())
}

/// Strings in requests that the HTTP edge accepts (`crate::input`): no C0/C1 controls but
/// tab, LF and CR, no BOM.
pub const REQUEST_TEXT_PATTERN: &str = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\uFEFF]*$";

/// Writes the edge's own rules ([`crate::input`]) into the schemas of request bodies and query
/// parameters: every string without a stricter `pattern`, `format` or `enum` gets
/// [`REQUEST_TEXT_PATTERN`], and a `maxLength` when it has none. The document then states what
/// the server enforces, so a client (or schemathesis) generating "valid" data produces data the
/// server accepts.
fn constrain_request_strings(json: &mut serde_json::Value) {
    let mut bodies = std::collections::BTreeSet::new();
    for operation in operations(json) {
        if let Some(reference) =
            operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
        {
            bodies.insert(reference.rsplit('/').next().unwrap_or_default().to_owned());
        }
        if let Some(parameters) = operation["parameters"].as_array_mut() {
            for parameter in parameters {
                if parameter["in"] == "query" {
                    constrain(&mut parameter["schema"], crate::input::MAX_QUERY_CHARS);
                }
            }
        }
    }
    for name in bodies {
        let schema = &mut json["components"]["schemas"][&name];
        if let Some(properties) = schema["properties"].as_object_mut() {
            for property in properties.values_mut() {
                constrain(property, crate::input::MAX_STRING_CHARS);
                if let Some(items) = property.get_mut("items") {
                    constrain(items, crate::input::MAX_STRING_CHARS);
                }
            }
        }
    }
}

fn constrain(schema: &mut serde_json::Value, max: usize) {
    let is_string = match &schema["type"] {
        serde_json::Value::String(t) => t == "string",
        serde_json::Value::Array(ts) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    // A format that constrains the value (email, uuid, date-time) says enough; `password` is
    // only a hint to hide the input.
    let constraining_format = object.get("format").is_some_and(|f| f != "password");
    if !is_string
        || constraining_format
        || ["pattern", "enum"].iter().any(|k| object.contains_key(*k))
    {
        return;
    }
    object.insert("pattern".into(), REQUEST_TEXT_PATTERN.into());
    object.entry("maxLength").or_insert(max.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_lists_every_error_code_with_its_status() {
        let doc = crate::openapi();
        let description = doc.info.description.unwrap_or_default();
        for code in ErrorCode::ALL {
            let row = format!(
                "| `{}` | {} |",
                code.as_str(),
                status_of_code(*code).as_u16()
            );
            assert!(description.contains(&row), "missing {row}");
        }
    }

    #[test]
    fn every_operation_documents_the_shared_errors() {
        let doc = serde_json::to_value(crate::openapi()).unwrap_or_default();
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let responses = &operation["responses"];
                for status in ["400", "408", "422", "503"] {
                    assert!(responses.get(status).is_some(), "{method} {path}: {status}");
                }
                let secured = operation["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
                if secured {
                    assert!(responses.get("401").is_some(), "{method} {path}: 401");
                    assert!(responses.get("403").is_some(), "{method} {path}: 403");
                }
                if operation.get("requestBody").is_some() {
                    assert!(responses.get("415").is_some(), "{method} {path}: 415");
                }
                checked += 1;
            }
        }
        assert!(checked > 25, "{checked}");
    }

    #[test]
    fn request_strings_carry_the_edge_rules() {
        let doc = serde_json::to_value(crate::openapi()).unwrap_or_default();
        let description =
            &doc["components"]["schemas"]["CreateRoleBody"]["properties"]["description"];
        assert_eq!(description["pattern"], REQUEST_TEXT_PATTERN);
        assert_eq!(description["maxLength"], 1000);
        let body = &doc["components"]["schemas"]["CreateRoleBody"];
        assert_eq!(body["additionalProperties"], false);
        // Responses are left alone.
        assert!(
            doc["components"]["schemas"]["RoleView"]["properties"]["description"]
                .get("pattern")
                .is_none()
        );
    }
}
