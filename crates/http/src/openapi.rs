//! The OpenAPI 3.1 document, generated from the handlers, and the offline `/docs` page.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use depot_domain::ErrorCode;

use crate::error::{ErrorBody, status_of_code};

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
24 hours; a 5xx is not kept, so a retry runs again.";

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
}
