//! Outbound webhooks through HTTP, against a real HTTP receiver (wiremock): a subscribed event
//! arrives signed (`Depot-Signature: t=…,v1=HMAC-SHA256("t.body")`) and verifies with the
//! secret shown once; a tampered body does not; a receiver failing three times gets the event
//! on the fourth attempt, once; the delivery log and redelivery.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Session, TestApp, spawn_app_with};
use crate::messaging::eventually;
use crate::notifications::call;
use crate::stock::Desk;

/// What a receiver does with `Depot-Signature` (the recipe in `docs/webhooks.md`): split
/// `t` and `v1`, recompute HMAC-SHA256 over `"{t}.{raw body}"` with the secret, compare in
/// constant time, and refuse a `t` outside the replay window.
fn verifies(secret: &str, header: &str, body: &[u8], now: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

async fn create(app: &TestApp, admin: &Session, url: &str, types: Value) -> Value {
    let (status, body) = call(
        app,
        admin,
        "POST",
        "/api/v1/webhooks",
        Some(json!({ "url": url, "event_types": types })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn deliveries(app: &TestApp, admin: &Session, hook: &str) -> Vec<Value> {
    let (status, body) = call(
        app,
        admin,
        "GET",
        &format!("/api/v1/webhooks/{hook}/deliveries"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// One adjustment: one `stock.changed` event.
async fn one_stock_change(app: &TestApp) {
    let desk = Desk::open(app).await;
    let here = desk.location("WH1").await;
    let bolts = desk.product("BOLTS", "pcs", json!({})).await;
    desk.add(bolts, here, json!(5), json!({})).await;
}

async fn hooked() -> (TestApp, Session, MockServer) {
    let app = spawn_app_with(|s| s.webhook_retry_base_ms = 100).await;
    let admin = app
        .sign_in_with(
            &format!("hooks-{}@example.com", Uuid::now_v7().simple()),
            &["webhooks.manage"],
        )
        .await;
    (app, admin, MockServer::start().await)
}

#[tokio::test]
async fn a_subscribed_event_arrives_signed_and_verifies_with_the_secret() {
    let (app, admin, receiver) = hooked().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let created = create(
        &app,
        &admin,
        &format!("{}/hook", receiver.uri()),
        json!(["stock.changed"]),
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    let hook = created["id"].as_str().unwrap().to_owned();
    // The secret is shown once.
    let (_, listed) = call(&app, &admin, "GET", "/api/v1/webhooks", None).await;
    assert!(!listed.to_string().contains(&secret));
    let (_, read) = call(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/webhooks/{hook}"),
        None,
    )
    .await;
    assert_eq!(read["event_types"], json!(["stock.changed"]));
    assert!(read.get("secret").is_none());

    one_stock_change(&app).await;

    eventually(
        Duration::from_secs(10),
        "the receiver got the event",
        || async {
            !receiver
                .received_requests()
                .await
                .unwrap_or_default()
                .is_empty()
        },
    )
    .await;
    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "only stock.changed is subscribed");
    let request = &requests[0];
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let event: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(event["type"], "stock.changed");
    assert!(event["payload"]["product_id"].is_string(), "{event}");
    assert_eq!(header("depot-event-id"), event["id"].as_str().unwrap());
    assert_eq!(header("depot-event-type"), "stock.changed");
    assert_eq!(header("content-type"), "application/json");
    let signature = header("depot-signature");
    let now = chrono::Utc::now().timestamp();
    assert!(
        verifies(&secret, &signature, &request.body, now),
        "{signature}"
    );
    // A tampered body, another secret or a stale timestamp fail.
    let mut tampered = request.body.clone();
    tampered[10] ^= 1;
    assert!(!verifies(&secret, &signature, &tampered, now));
    assert!(!verifies("whsec_other", &signature, &request.body, now));
    assert!(!verifies(&secret, &signature, &request.body, now + 3600));

    eventually(Duration::from_secs(5), "the delivery is logged", || async {
        deliveries(&app, &admin, &hook)
            .await
            .first()
            .is_some_and(|d| d["status"] == "succeeded")
    })
    .await;
    let logged = &deliveries(&app, &admin, &hook).await[0];
    assert_eq!(logged["attempts"], 1);
    assert_eq!(logged["last_status_code"], 204);
    assert_eq!(logged["event_id"], event["id"]);
    app.stop().await;
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_on_the_fourth_attempt_once_and_on_redelivery_again() {
    let (app, admin, receiver) = hooked().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let created = create(
        &app,
        &admin,
        &format!("{}/hook", receiver.uri()),
        json!(["*"]),
    )
    .await;
    let hook = created["id"].as_str().unwrap().to_owned();
    one_stock_change(&app).await;

    eventually(
        Duration::from_secs(20),
        "delivered after three failures",
        || async {
            deliveries(&app, &admin, &hook)
                .await
                .first()
                .is_some_and(|d| d["status"] == "succeeded")
        },
    )
    .await;
    let logged = deliveries(&app, &admin, &hook).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0]["event_type"], "stock.changed");
    assert_eq!(logged[0]["attempts"], 4);
    assert_eq!(logged[0]["last_status_code"], 200);
    assert_eq!(logged[0]["last_error"], Value::Null);
    let received = receiver.received_requests().await.unwrap();
    assert_eq!(received.len(), 4, "three failures and one success");
    let ids: std::collections::BTreeSet<_> = received
        .iter()
        .map(|r| {
            r.headers
                .get("depot-event-id")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every attempt is the same event");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received_requests().await.unwrap().len(),
        4,
        "no fifth call"
    );

    // Delivered again on request: the same event once more.
    let delivery = logged[0]["id"].as_str().unwrap();
    let (status, body) = call(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/webhooks/{hook}/deliveries/{delivery}/redeliver"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(10), "redelivered", || async {
        receiver.received_requests().await.unwrap_or_default().len() == 5
    })
    .await;
    eventually(
        Duration::from_secs(5),
        "a fresh schedule: one attempt",
        || async {
            deliveries(&app, &admin, &hook)
                .await
                .first()
                .is_some_and(|d| d["status"] == "succeeded" && d["attempts"] == 1)
        },
    )
    .await;
    let (status, _) = call(
        &app,
        &admin,
        "POST",
        &format!(
            "/api/v1/webhooks/{hook}/deliveries/{}/redeliver",
            Uuid::now_v7()
        ),
        None,
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn webhooks_are_validated_switched_off_and_deleted() {
    let (app, admin, receiver) = hooked().await;
    let (status, body) = call(
        &app,
        &admin,
        "POST",
        "/api/v1/webhooks",
        Some(json!({ "url": "ftp://example.com/x", "event_types": ["stock.changed", "stock.exploded"] })),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "webhooks.url_refused");
    let fields: Vec<&str> = body["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["url", "event_types[1]"]);
    // Security events carry users' addresses and devices: never sent out.
    let (status, body) = call(
        &app,
        &admin,
        "POST",
        "/api/v1/webhooks",
        Some(json!({ "url": format!("{}/hook", receiver.uri()), "event_types": ["security.new_device_sign_in"] })),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"]["fields"][0]["field"], "event_types[0]");
    let (status, body) = call(
        &app,
        &admin,
        "POST",
        "/api/v1/webhooks",
        Some(json!({ "url": format!("{}/hook", receiver.uri()), "event_types": [] })),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "validation.failed");

    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let created = create(
        &app,
        &admin,
        &format!("{}/hook", receiver.uri()),
        json!(["*"]),
    )
    .await;
    let hook = created["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &app,
        &admin,
        "PATCH",
        &format!("/api/v1/webhooks/{hook}"),
        Some(json!({ "active": false })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], false);
    one_stock_change(&app).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        receiver.received_requests().await.unwrap().is_empty(),
        "an inactive webhook receives nothing"
    );
    assert!(deliveries(&app, &admin, &hook).await.is_empty());

    let (status, _) = call(
        &app,
        &admin,
        "DELETE",
        &format!("/api/v1/webhooks/{hook}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = call(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/webhooks/{hook}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "webhooks.not_found");
    app.stop().await;
}
