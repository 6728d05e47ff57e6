//! Prometheus metrics on their own listener, labelled by route template.

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn metrics_are_labelled_by_route_template_on_a_separate_listener() {
    let app = spawn_app().await;
    app.get("/api/v1/_debug/numbers?limit=5").await;
    app.get("/api/v1/_debug/numbers?limit=7&cursor=xyz").await;
    app.get("/definitely/not/here").await;

    let text = app.metrics_text().await;
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    assert!(
        has(r#"http_requests_total{method="GET",route="/api/v1/_debug/numbers",status="200"}"#),
        "{text}"
    );
    assert!(
        has(r#"route="/api/v1/_debug/numbers",status="400"}"#),
        "{text}"
    );
    assert!(
        has(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#),
        "{text}"
    );
    assert!(has("http_request_duration_seconds_bucket{"), "{text}");
    assert!(
        has(r#"http_request_duration_seconds_count{method="GET",route="/api/v1/_debug/numbers""#),
        "{text}"
    );
    assert!(
        !text.contains("/definitely/not/here"),
        "raw paths never become labels"
    );
    assert!(has("db_pool_connections{"), "{text}");
    assert!(has("depot_build_info{"), "{text}");

    assert_eq!(
        app.get("/metrics").await.status(),
        404,
        "not on the API port by default"
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_can_share_the_api_listener() {
    let app = spawn_app_with(|s| s.metrics_addr = None).await;
    app.get("/healthz").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("http_requests_total")
    );
    app.stop().await;
}
