//! The cache through HTTP: L1, the shared Redis L2, invalidation across instances, and falling
//! back to the source of truth when Redis is down.

use std::time::Duration;

use depot_app::config::ServiceUrl;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn read(app: &TestApp, key: &str) -> serde_json::Value {
    app.get_json(&format!("/api/v1/_debug/cached/{key}"), 200)
        .await
}

/// Invalidates `key` through `app`, asserting the 204.
async fn invalidate(app: &TestApp, key: &str) {
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/_debug/cached/{key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn repeated_reads_are_served_from_the_cache() {
    let app = spawn_app().await;
    let first = read(&app, "alpha").await;
    let backend = if depot_testkit::redis_url().is_some() {
        "redis"
    } else {
        "memory"
    };
    assert_eq!(first["backend"], backend);
    assert_eq!(first["loads"], 1);
    for _ in 0..3 {
        let again = read(&app, "alpha").await;
        assert_eq!(again["loads"], 1, "no second load: {again}");
        assert_eq!(again["value"]["loaded_at_load"], 1);
    }
    invalidate(&app, "alpha").await;
    assert_eq!(
        read(&app, "alpha").await["loads"],
        2,
        "invalidation forces a reload"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_dead_redis_falls_back_to_the_source_of_truth() {
    let app = spawn_app_with(|s| s.redis_url = Some(ServiceUrl::new("redis://127.0.0.1:1"))).await;
    let first = read(&app, "beta").await;
    assert_eq!(first["backend"], "redis");
    assert_eq!(first["value"]["key"], "beta");
    let other = read(&app, "gamma").await;
    assert_eq!(other["value"]["key"], "gamma", "requests keep succeeding");

    // (Each fallback is counted: `counters::every_read_that_falls_back_from_a_dead_redis_counts`.)

    let ready = app.get_json("/readyz", 200).await;
    assert_eq!(ready["components"]["cache"]["status"], "degraded");
    app.stop().await;
}

#[tokio::test]
async fn invalidation_reaches_other_instances_within_a_second() {
    if depot_testkit::redis_or_skip("cache::invalidation_reaches_other_instances").is_none() {
        return;
    }
    let namespace = format!("depot-test-{}", uuid::Uuid::now_v7().simple());
    let a = spawn_app_with(|s| s.namespace = namespace.clone()).await;
    let b = spawn_app_with(|s| s.namespace = namespace.clone()).await;

    assert_eq!(read(&a, "shared").await["loads"], 1);
    let from_b = read(&b, "shared").await;
    assert_eq!(from_b["loads"], 0, "B is served from Redis: {from_b}");
    assert_eq!(from_b["value"]["loaded_at_load"], 1);

    invalidate(&b, "shared").await;
    // Poll well inside the 1 s after which A's local entry and version would expire anyway:
    // only the sync channel can make A reload this early.
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    let mut loads = read(&a, "shared").await["loads"].clone();
    while loads != 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        loads = read(&a, "shared").await["loads"].clone();
    }
    assert_eq!(loads, 2, "A reloads within 500 ms after B invalidated");
    a.stop().await;
    b.stop().await;
}
