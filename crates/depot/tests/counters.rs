//! Prometheus counters, asserted as exact deltas. The recorder is process-wide, so these
//! scenarios live in a test binary of their own and run one at a time (a lock): whatever a
//! counter moved by between `before` and `after`, the scenario moved it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use depot_app::config::ServiceUrl;
use serde_json::json;
use tokio::sync::Mutex;

use helpers::{Http, PASSWORD, TestApp, spawn_app_with};

/// One scenario at a time in this process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The value of the sample `name{labels}` (0 when absent).
async fn sample(app: &TestApp, series: &str) -> f64 {
    let text = app.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The sum of every series starting with `prefix` (all label values).
async fn sum_of(app: &TestApp, prefix: &str) -> f64 {
    app.metrics_text()
        .await
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_lockout_counts_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let app = spawn_app_with(|s| {
        s.login_lockout_threshold = 3;
        s.login_lockout_base_secs = 60;
    })
    .await;
    app.create_user("ann@example.com", &[]).await;
    let series = "auth_logins_total{result=\"lockout\"}";
    let failures = "auth_logins_total{result=\"failure\"}";
    let (before, failed_before) = (sample(&app, series).await, sample(&app, failures).await);
    for _ in 0..3 {
        app.try_login("ann@example.com", "wrong password here")
            .await;
    }
    assert_eq!(
        sample(&app, series).await - before,
        1.0,
        "the third failure locks"
    );
    assert_eq!(sample(&app, failures).await - failed_before, 2.0);
    app.stop().await;
}

#[tokio::test]
async fn each_csrf_refusal_counts_under_its_reason() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let origin = "https://app.example.com";
    let app = spawn_app_with(|s| s.cors_origins = vec![origin.into()]).await;
    app.create_user("ann@example.com", &[]).await;
    let login = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("origin", origin)
        .json(&json!({ "email": "ann@example.com", "password": PASSWORD, "use_cookie": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let refresh = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-depot_refresh="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let missing = "csrf_failures_total{reason=\"csrf.token_missing\"}";
    let before = sample(&app, missing).await;
    for _ in 0..2 {
        let refused = app
            .client
            .post(app.url("/api/v1/auth/refresh"))
            .header("cookie", format!("__Host-depot_refresh={refresh}"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
    }
    assert_eq!(sample(&app, missing).await - before, 2.0);
    app.stop().await;
}

#[tokio::test]
async fn every_read_that_falls_back_from_a_dead_redis_counts() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let app = spawn_app_with(|s| s.redis_url = Some(ServiceUrl::new("redis://127.0.0.1:1"))).await;
    let before = sum_of(&app, "cache_fallbacks_total{").await;
    for key in ["beta", "gamma"] {
        let read = app
            .get_json(&format!("/api/v1/_debug/cached/{key}"), 200)
            .await;
        assert_eq!(read["value"]["key"], key, "requests keep succeeding");
    }
    let after = sum_of(&app, "cache_fallbacks_total{").await;
    assert!(
        after - before >= 2.0,
        "each read fell back: {before} -> {after}"
    );
    app.stop().await;
}

#[tokio::test]
async fn in_sync_grants_are_checked_locally() {
    let _alone = ONE_AT_A_TIME.lock().await;
    if depot_testkit::redis_or_skip("counters::in_sync_grants_are_checked_locally").is_none() {
        return;
    }
    let app = helpers::spawn_app().await;
    let ann = app.sign_in_with("ann@example.com", &["users.read"]).await;
    helpers::wait_in_sync(&[&app.context]).await;
    let local = "cache_fresh_reads_total{source=\"local\"}";
    let redis = "cache_fresh_reads_total{source=\"redis\"}";
    let me = || app.call("GET", "/api/v1/users/me", Some(&ann.access_token), None);
    assert_eq!(me().await.status(), 200);
    let (local_before, redis_before) = (sample(&app, local).await, sample(&app, redis).await);
    for _ in 0..3 {
        assert_eq!(me().await.status(), 200);
    }
    assert!(
        sample(&app, local).await - local_before >= 3.0,
        "answered from local state"
    );
    assert_eq!(
        sample(&app, redis).await - redis_before,
        0.0,
        "no Redis read per request"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_account_costs_one_password_verification_like_a_known_one() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let app = helpers::spawn_app().await;
    app.create_user("ann@example.com", &[]).await;
    let series = "auth_password_verifications_total";
    for (email, password) in [
        ("nobody@example.com", "whatever whatever"),
        ("ann@example.com", "wrong password here"),
        ("ann@example.com", PASSWORD),
    ] {
        let before = sample(&app, series).await;
        app.try_login(email, password).await;
        assert_eq!(sample(&app, series).await - before, 1.0, "{email}");
    }
    app.stop().await;
}

#[tokio::test]
async fn two_relays_publish_each_event_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let app = helpers::spawn_app().await;
    let second = app.spawn_instance(depot::Role::All, |_| {}).await;
    let published = "outbox_published_total{type=\"debug.ping\"}";
    let before = sample(&app, published).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        // Alternate the instance that records the event; both relays run.
        let response = if i % 2 == 0 {
            app.call("POST", "/api/v1/_debug/pings", None, Some(&json!({})))
                .await
        } else {
            second
                .call("POST", "/api/v1/_debug/pings", None, Some(&json!({})))
                .await
        };
        assert_eq!(response.status(), 202);
        let body: serde_json::Value = response.json().await.unwrap();
        ids.push(
            body["message_id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap(),
        );
    }
    use depot_store::entity::outbox;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let pending = outbox::Entity::find()
            .filter(outbox::Column::Id.is_in(ids.clone()))
            .filter(outbox::Column::Status.ne("published"))
            .count(app.store.reader())
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pending} still unpublished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Give a duplicate every chance to show up, then count.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        sample(&app, published).await - before,
        40.0,
        "every event published exactly once by the two relays together"
    );
    second.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn fifty_cold_dashboard_requests_load_each_figure_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let app = spawn_app_with(|_| {}).await;
    let viewer = app
        .sign_in_with("viewer@example.com", &["reports.read"])
        .await;
    let before = sum_of(&app, "depot_dashboard_loads_total").await;
    let calls = (0..50).map(|_| {
        app.client
            .get(app.url("/api/v1/dashboard/summary"))
            .bearer_auth(&viewer.access_token)
            .send()
    });
    for response in futures::future::join_all(calls).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    assert_eq!(
        sum_of(&app, "depot_dashboard_loads_total").await - before,
        3.0,
        "stock, purchasing and sales figures loaded once each"
    );
    app.stop().await;
}
