//! Stock alerts through HTTP: raised once when a condition starts to hold, re-triggered while
//! it holds, resolved by itself when it clears; acknowledged and resolved by people; the
//! expiry scan raises `expiring` and `expired` once per batch however often it runs.

use std::sync::Arc;

use chrono::{Duration, Utc};
use depot_domain::clock::ManualClock;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_on};
use crate::stock::{Desk, assert_verified};

async fn alerts(desk: &Desk<'_>, query: &str) -> Vec<Value> {
    desk.get(&format!("/api/v1/alerts?{query}")).await["data"]
        .as_array()
        .unwrap()
        .clone()
}

async fn events(app: &TestApp, kind: &str) -> u64 {
    use depot_store::entity::outbox;
    outbox::Entity::find()
        .filter(outbox::Column::EventType.eq(kind))
        .count(app.store.reader())
        .await
        .unwrap()
}

#[tokio::test]
async fn crossing_the_reorder_point_opens_one_alert_that_restocking_resolves() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let bolts = desk
        .product(
            "BOLTS",
            "pcs",
            json!({ "reorder_point": 150, "reorder_quantity": 500 }),
        )
        .await;
    desk.add(bolts, here, json!(200), json!({})).await;
    assert!(
        alerts(&desk, "").await.is_empty(),
        "above the reorder point"
    );

    desk.add(bolts, here, json!(-60), json!({ "reason": "damaged" }))
        .await;
    let open = alerts(&desk, "kind=low_stock").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["status"], "open");
    assert_eq!(open[0]["occurrences"], 1);
    let alert = open[0]["id"].as_str().unwrap().to_owned();

    for _ in 0..100 {
        desk.add(bolts, here, json!(-1), json!({ "reason": "damaged" }))
            .await;
    }
    let still = alerts(&desk, "").await;
    assert_eq!(still.len(), 1, "no new alert: {still:?}");
    assert_eq!(still[0]["occurrences"], 101, "each removal re-triggered it");
    assert_eq!(events(&app, "alert.raised").await, 1);

    let (status, acknowledged) = desk
        .post(&format!("/api/v1/alerts/{alert}/acknowledge"), json!({}))
        .await;
    assert_eq!(status, 200, "{acknowledged}");
    assert_eq!(acknowledged["status"], "acknowledged");
    assert_eq!(acknowledged["acknowledged_by"], json!(desk.user.user_id));
    assert!(acknowledged["acknowledged_at"].is_string());

    desk.add(bolts, here, json!(300), json!({})).await;
    let resolved = desk.get(&format!("/api/v1/alerts/{alert}")).await;
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolved_automatically"], true);
    assert_eq!(resolved["resolved_by"], Value::Null);
    assert_eq!(events(&app, "alert.resolved").await, 1);
    let (status, again) = desk
        .post(&format!("/api/v1/alerts/{alert}/resolve"), json!({}))
        .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("alerts.resolved"))
    );

    // Emptying the location: out of stock (and low stock again, a new crossing).
    desk.add(bolts, here, json!(-340), json!({ "reason": "lost" }))
        .await;
    let open = alerts(&desk, "status=open").await;
    let mut kinds: Vec<&str> = open.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["low_stock", "out_of_stock"]);
    let out = open.iter().find(|a| a["kind"] == "out_of_stock").unwrap();
    let (status, manual) = desk
        .post(
            &format!("/api/v1/alerts/{}/resolve", out["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{manual}");
    assert_eq!(manual["resolved_by"], json!(desk.user.user_id));
    assert_eq!(manual["resolved_automatically"], false);
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn the_expiry_scan_raises_one_alert_per_batch_however_often_it_runs() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_on(clock.clone(), |s| s.stock_expiry_warning_days = 30).await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let yogurt = desk
        .product("YOGURT", "pcs", json!({ "tracks_expiry": true }))
        .await;
    let expiry = (Utc::now() + Duration::days(40)).date_naive().to_string();
    desk.add(
        yogurt,
        here,
        json!(12),
        json!({ "lot": "Y1", "expiry": expiry }),
    )
    .await;
    assert_eq!(app.run_job("stock_expiry_scan").await, 0, "40 days out");

    clock.advance(Duration::days(15));
    // Access tokens follow the clock too: sign in again after each jump.
    let desk = Desk::open(&app).await;
    assert_eq!(app.run_job("stock_expiry_scan").await, 1);
    for _ in 0..3 {
        assert_eq!(app.run_job("stock_expiry_scan").await, 0);
    }
    let expiring = alerts(&desk, "kind=expiring").await;
    assert_eq!(expiring.len(), 1);
    assert!(expiring[0]["batch_id"].is_string());

    clock.advance(Duration::days(30));
    let desk = Desk::open(&app).await;
    assert_eq!(app.run_job("stock_expiry_scan").await, 1);
    assert_eq!(alerts(&desk, "kind=expired&status=open").await.len(), 1);
    let expiring = alerts(&desk, "kind=expiring").await;
    assert_eq!(
        expiring[0]["status"], "resolved",
        "expired supersedes expiring"
    );

    // Resolved by hand, it stays resolved; writing the batch off clears nothing more.
    let expired = alerts(&desk, "kind=expired").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    desk.post(&format!("/api/v1/alerts/{expired}/resolve"), json!({}))
        .await;
    assert_eq!(app.run_job("stock_expiry_scan").await, 0);
    assert_eq!(alerts(&desk, "status=open").await.len(), 0);

    // A receipt of a batch already inside the window raises its alert in the same transaction.
    let soon = (clock.now_date() + Duration::days(3)).to_string();
    desk.add(
        yogurt,
        here,
        json!(5),
        json!({ "lot": "Y2", "expiry": soon }),
    )
    .await;
    assert_eq!(alerts(&desk, "kind=expiring&status=open").await.len(), 1);
    assert_eq!(app.run_job("stock_expiry_scan").await, 0);
    assert_verified(&app).await;
    app.stop().await;
}

trait Today {
    fn now_date(&self) -> chrono::NaiveDate;
}

impl Today for ManualClock {
    fn now_date(&self) -> chrono::NaiveDate {
        depot_domain::Clock::now(self).date_naive()
    }
}

#[tokio::test]
async fn an_expiry_alert_resolved_by_hand_stays_resolved_when_its_batch_is_counted_or_topped_up() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let cream = desk
        .product("CREAM", "pcs", json!({ "tracks_expiry": true }))
        .await;
    let soon = (Utc::now() + Duration::days(3)).date_naive().to_string();
    let body = desk
        .add(
            cream,
            here,
            json!(10),
            json!({ "lot": "C1", "expiry": soon }),
        )
        .await;
    let batch = body["movements"][0]["batch_id"].clone();
    let open = alerts(&desk, "kind=expiring&status=open").await;
    assert_eq!(open.len(), 1, "the receipt raised it");
    let id = open[0]["id"].as_str().unwrap().to_owned();
    let (status, _) = desk
        .post(&format!("/api/v1/alerts/{id}/resolve"), json!({}))
        .await;
    assert_eq!(status, 200);

    let (status, count) = desk
        .post(
            "/api/v1/stock/counts",
            json!({ "location_id": here, "lines": [{ "batch_id": batch, "counted": 7 }] }),
        )
        .await;
    assert_eq!(status, 201, "{count}");
    desk.add(
        cream,
        here,
        json!(2),
        json!({ "lot": "C1", "expiry": soon }),
    )
    .await;
    assert!(
        alerts(&desk, "kind=expiring&status=open").await.is_empty(),
        "someone decided about this batch; neither a count nor a top-up reopens it"
    );
    assert_eq!(events(&app, "alert.raised").await, 1);
    assert_verified(&app).await;
    app.stop().await;
}
