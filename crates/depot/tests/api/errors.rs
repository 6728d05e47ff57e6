//! Every error is the JSON envelope with a stable code and the request id; nothing leaks.

use crate::helpers::{assert_envelope, spawn_app, spawn_app_with};

#[tokio::test]
async fn unknown_route_is_a_404_envelope() {
    let app = spawn_app().await;
    let body = assert_envelope(
        app.get("/api/v1/no-such-thing").await,
        404,
        "not_found",
        "route.not_found",
    )
    .await;
    assert_eq!(body["message"], "no such resource");
    app.stop().await;
}

#[tokio::test]
async fn wrong_method_is_a_405_envelope_with_allow() {
    let app = spawn_app().await;
    let response = app.client.delete(app.url("/healthz")).send().await.unwrap();
    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(allow.is_some_and(|a| a.contains("GET")));
    assert_envelope(
        response,
        405,
        "method_not_allowed",
        "route.method_not_allowed",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_is_a_400_envelope() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/v1/_debug/echo"))
        .header("content-type", "application/json")
        .body("{\"name\": \"x\", ")
        .send()
        .await
        .unwrap();
    assert_envelope(response, 400, "bad_request", "request.malformed_json").await;
    app.stop().await;
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_or_type_is_rejected_with_a_reason() {
    let app = spawn_app().await;
    let wrong_type = app
        .post_json(
            "/api/v1/_debug/echo",
            &serde_json::json!({"name": "x", "quantity": "many"}),
        )
        .await;
    let body = assert_envelope(wrong_type, 422, "validation", "request.invalid_body").await;
    assert!(
        body["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("quantity"),
        "{body}"
    );

    let no_content_type = app
        .client
        .post(app.url("/api/v1/_debug/echo"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_envelope(
        no_content_type,
        400,
        "bad_request",
        "request.unsupported_media_type",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn validation_errors_list_every_failing_field() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/api/v1/_debug/echo",
            &serde_json::json!({"name": " ", "quantity": 0}),
        )
        .await;
    let body = assert_envelope(response, 422, "validation", "validation.failed").await;
    let fields: Vec<&str> = body["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["name", "quantity"]);

    let ok = app
        .post_json(
            "/api/v1/_debug/echo",
            &serde_json::json!({"name": "widget", "quantity": 3}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_body_is_a_413_envelope() {
    let app = spawn_app_with(|s| s.body_limit_bytes = 1024).await;
    let big = format!("{{\"name\": \"{}\", \"quantity\": 1}}", "x".repeat(4096));
    let response = app
        .client
        .post(app.url("/api/v1/_debug/echo"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_envelope(response, 413, "payload_too_large", "request.too_large").await;
    app.stop().await;
}

#[tokio::test]
async fn an_internal_error_leaks_nothing() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/_debug/error").await;
    let body = assert_envelope(response, 500, "internal", "internal").await;
    assert_eq!(body["message"], "internal server error");
    let text = body.to_string();
    for secret in ["hunter2", "db.internal", "secret_table", "relation"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_panicking_handler_is_an_opaque_500_and_the_server_lives_on() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/_debug/panic").await;
    let body = assert_envelope(response, 500, "internal", "internal").await;
    assert!(!body.to_string().contains("hunter2"));
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_request_over_the_timeout_is_cancelled_with_an_envelope() {
    let app = spawn_app_with(|s| s.request_timeout_secs = 1).await;
    let response = app.get("/api/v1/_debug/sleep?ms=3000").await;
    assert_envelope(response, 408, "unavailable", "request.timeout").await;
    app.stop().await;
}

#[tokio::test]
async fn lists_paginate_with_a_default_a_maximum_and_opaque_cursors() {
    let app = spawn_app().await;
    let first = app.get_json("/api/v1/_debug/numbers", 200).await;
    assert_eq!(
        first["data"].as_array().unwrap().len(),
        50,
        "default limit is 50"
    );

    let mut seen = Vec::new();
    let mut path = "/api/v1/_debug/numbers?limit=50".to_owned();
    loop {
        let page = app.get_json(&path, 200).await;
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/_debug/numbers?limit=50&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, (1..=120).collect::<Vec<u64>>());

    let max = app.get_json("/api/v1/_debug/numbers?limit=200", 200).await;
    assert_eq!(max["data"].as_array().unwrap().len(), 120);
    assert!(max["next_cursor"].is_null());

    let too_big = app.get("/api/v1/_debug/numbers?limit=201").await;
    let body = assert_envelope(too_big, 422, "validation", "validation.failed").await;
    assert_eq!(body["details"]["fields"][0]["field"], "limit");

    let garbage = app.get("/api/v1/_debug/numbers?cursor=not-a-cursor").await;
    assert_envelope(garbage, 400, "bad_request", "pagination.invalid_cursor").await;
    app.stop().await;
}
