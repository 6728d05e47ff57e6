//! Liveness, readiness, OpenAPI, docs, request ids, security headers and CORS.

use depot_app::config::ServiceUrl;

use crate::helpers::{Http, TestApp, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_answers_with_security_headers_and_a_request_id() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["content-security-policy"], "frame-ancestors 'none'");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers.get("strict-transport-security").is_none(),
        "no HSTS without TLS"
    );
    let id = headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&id).map(|u| u.get_version_num()).ok(),
        Some(7)
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    app.stop().await;
}

/// The headers every response carries, asserted on API routes: a signed-in read, a write, an
/// error and a 404 (not only on `/healthz`).
#[tokio::test]
async fn api_routes_carry_the_security_headers_on_success_and_error() {
    let app = spawn_app().await;
    let s = app.sign_in("ann@example.com", &[]).await;
    let token = Some(s.access_token.as_str());
    let cases = [
        ("GET", "/api/v1/users/me", None, 200),
        (
            "PATCH",
            "/api/v1/users/me",
            Some(serde_json::json!({ "display_name": "Ann" })),
            200,
        ),
        ("GET", "/api/v1/users", None, 403),
        ("GET", "/api/v1/nothing-here", None, 404),
    ];
    for (method, path, body, status) in cases {
        let response = app.call(method, path, token, body.as_ref()).await;
        assert_eq!(response.status(), status, "{method} {path}");
        let headers = response.headers();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("content-security-policy", "frame-ancestors 'none'"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(
                headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{name} on {method} {path}"
            );
        }
        assert!(headers.contains_key("x-request-id"), "{method} {path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_well_formed_client_request_id_is_echoed_and_a_bad_one_replaced() {
    let app = spawn_app().await;
    let echoed = get_with_request_id(&app, "/healthz", "client-abc.123").await;
    assert_eq!(echoed.headers()["x-request-id"], "client-abc.123");

    let replaced = get_with_request_id(&app, "/nope", "bad id <script>").await;
    let header = replaced.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(header, "bad id <script>");
    let body: serde_json::Value = replaced.json().await.unwrap();
    assert_eq!(body["request_id"], header.as_str());
    app.stop().await;
}

#[tokio::test]
async fn readyz_is_ready_when_every_dependency_is_up() {
    let app = spawn_app().await;
    let body = app.get_json("/readyz", 200).await;
    assert_eq!(body["status"], "ready", "{body}");
    let c = &body["components"];
    assert_eq!(c["database"]["status"], "up");
    assert_eq!(c["database"]["backend"], app.db.backend());
    assert_eq!(c["migrations"]["status"], "up");
    let (cache, broker) = (
        if depot_testkit::redis_url().is_some() {
            "redis"
        } else {
            "memory"
        },
        if depot_testkit::amqp_url().is_some() {
            "rabbitmq"
        } else {
            "database"
        },
    );
    assert_eq!(c["cache"]["backend"], cache);
    assert_eq!(c["cache"]["status"], "up", "{body}");
    assert_eq!(c["broker"]["backend"], broker);
    assert_eq!(c["broker"]["status"], "up", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn readyz_is_503_naming_the_database_when_it_is_unreachable() {
    let app = spawn_app_with(|s| {
        s.database_url = Some(ServiceUrl::new("postgres://depot:pw@127.0.0.1:1/depot"));
        s.auto_migrate = Some(false);
    })
    .await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["components"]["database"]["status"], "down", "{body}");
    assert_eq!(body["components"]["database"]["backend"], "postgres");
    assert!(
        !body.to_string().contains(":pw@"),
        "no credentials in the report: {body}"
    );
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn readyz_is_503_while_migrations_are_pending_and_200_after_they_run() {
    let app = spawn_app_with(|s| s.auto_migrate = Some(false)).await;
    let body = app.get_json("/readyz", 503).await;
    assert_eq!(body["components"]["database"]["status"], "up");
    assert_eq!(body["components"]["migrations"]["status"], "down");
    assert_eq!(
        body["components"]["migrations"]["pending"][0],
        "m20261128_000001_platform"
    );

    app.store.migrate_up().await.unwrap();
    let body = app.get_json("/readyz", 200).await;
    assert_eq!(body["status"], "ready");
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_cache_or_broker_degrades_but_keeps_the_instance_ready() {
    let app = spawn_app_with(|s| {
        s.redis_url = Some(ServiceUrl::new("redis://127.0.0.1:1"));
        s.amqp_url = Some(ServiceUrl::new("amqp://guest:guest@127.0.0.1:1/%2f"));
    })
    .await;
    let body = app.get_json("/readyz", 200).await;
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["components"]["cache"]["status"], "degraded");
    assert_eq!(body["components"]["cache"]["backend"], "redis");
    assert_eq!(body["components"]["broker"]["status"], "degraded");
    assert!(!body.to_string().contains("guest:guest"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn openapi_is_served_and_the_docs_page_needs_no_network() {
    let app = spawn_app().await;
    let spec = app.get_json("/openapi.json", 200).await;
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/healthz"]["get"].is_object());
    assert!(spec["paths"]["/readyz"]["get"].is_object());
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    assert!(spec["components"]["securitySchemes"]["csrf"].is_object());
    assert!(
        spec["info"]["description"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
    assert!(
        spec["paths"].get("/api/v1/_debug/sleep").is_none(),
        "debug routes are not API"
    );

    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "no external assets: {html}"
    );
    let init = app.get("/docs/swagger-initializer.js").await;
    assert_eq!(init.status(), 200);
    assert!(init.text().await.unwrap().contains("/openapi.json"));
    app.stop().await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = spawn_app_with(|s| s.cors_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/healthz"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let denied = preflight("https://evil.example.com").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn hsts_is_sent_when_enabled() {
    let app = spawn_app_with(|s| s.hsts = Some(true)).await;
    let response = app.get("/healthz").await;
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    app.stop().await;
}

/// `GET path` sending `request_id` as the client's `x-request-id`.
async fn get_with_request_id(app: &TestApp, path: &str, request_id: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("x-request-id", request_id)
        .send()
        .await
        .unwrap()
}
