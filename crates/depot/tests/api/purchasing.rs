//! Purchasing through HTTP: suppliers, a purchase order from draft to closed, approval rules,
//! the supplier's email with its CSV, receiving into batches with lot and expiry, over-receipt,
//! idempotent receipts and racing transitions. Every test that moves stock ends with `verify`.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, spawn_app};
use crate::stock::{Desk, assert_verified, day, id};

pub(crate) const BUYER: &[&str] = &[
    "products.read",
    "stock.read",
    "suppliers.manage",
    "purchase_orders.read",
    "purchase_orders.create",
    "purchase_orders.approve",
    "purchase_orders.receive",
];
pub(crate) const APPROVER: &[&str] = &["purchase_orders.read", "purchase_orders.approve"];

/// A desk acting as `user`.
fn as_user<'a>(app: &'a TestApp, user: Session) -> Desk<'a> {
    Desk { app, user }
}

pub(crate) async fn signed_in<'a>(app: &'a TestApp, name: &str, permissions: &[&str]) -> Desk<'a> {
    let email = format!("{name}-{}@example.com", Uuid::now_v7().simple());
    as_user(app, app.sign_in_with(&email, permissions).await)
}

/// A supplier with an email address.
pub(crate) async fn supplier(buyer: &Desk<'_>) -> Uuid {
    let (status, body) = buyer
        .post(
            "/api/v1/suppliers",
            json!({ "name": "Acme Dairy", "email": "orders@acme.example",
                    "phone": "+8801711000000", "currency": "BDT", "lead_time_days": 3 }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    id(&body)
}

/// A draft purchase order for `quantity` of `product` at 250.00 each.
pub(crate) async fn draft(buyer: &Desk<'_>, supplier: Uuid, product: Uuid, quantity: i64) -> Value {
    let (status, body) = buyer
        .post(
            "/api/v1/purchase-orders",
            json!({ "supplier_id": supplier, "currency": "BDT",
                    "lines": [{ "product_id": product, "quantity": quantity, "unit_cost": 25_000 }] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

pub(crate) async fn step(desk: &Desk<'_>, po: Uuid, action: &str) -> (u16, Value) {
    desk.post(&format!("/api/v1/purchase-orders/{po}/{action}"), json!({}))
        .await
}

/// A sent order for 100 milk (tracked expiry) and what it needs: (order, line, product, location).
async fn sent_order(app: &TestApp, buyer: &Desk<'_>) -> (Uuid, Uuid, Uuid, Uuid) {
    let desk = Desk::open(app).await;
    let milk = desk
        .product("MILK", "pcs", json!({ "tracks_expiry": true }))
        .await;
    let here = desk.location("WH1").await;
    let vendor = supplier(buyer).await;
    let po = draft(buyer, vendor, milk, 100).await;
    let (po_id, line) = (
        id(&po),
        po["lines"][0]["id"].as_str().unwrap().parse().unwrap(),
    );
    let approver = signed_in(app, "approver", APPROVER).await;
    assert_eq!(step(buyer, po_id, "submit").await.0, 200);
    assert_eq!(step(&approver, po_id, "approve").await.0, 200);
    assert_eq!(step(buyer, po_id, "send").await.0, 200);
    (po_id, line, milk, here)
}

fn receipt(location: Uuid, line: Uuid, quantity: i64, lot: &str) -> Value {
    json!({ "location_id": location,
            "lines": [{ "line_id": line, "quantity": quantity, "lot": lot, "expiry": day(90) }] })
}

#[tokio::test]
async fn a_purchase_order_runs_from_draft_to_closed_and_its_receipts_become_batches() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let buyer = signed_in(&app, "buyer", BUYER).await;
    let approver = signed_in(&app, "approver", APPROVER).await;
    let milk = desk
        .product("MILK", "pcs", json!({ "tracks_expiry": true }))
        .await;
    let here = desk.location("WH1").await;

    // Contact data is validated.
    let (status, body) = buyer
        .post(
            "/api/v1/suppliers",
            json!({ "name": "X", "email": "not-an-email", "phone": "01711", "currency": "bdt" }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "phone", "currency"], "{body}");
    let vendor = supplier(&buyer).await;
    let found = buyer.get("/api/v1/suppliers?q=acme").await;
    assert_eq!(found["data"][0]["id"], json!(vendor));

    let po = draft(&buyer, vendor, milk, 100).await;
    let po_id = id(&po);
    assert_eq!(po["state"], "draft");
    assert_eq!(po["total"], json!(2_500_000), "100 × 25,000 minor units");
    assert_eq!(po["lines"][0]["received_quantity"], json!(0));
    let line: Uuid = po["lines"][0]["id"].as_str().unwrap().parse().unwrap();

    // Lines are editable in draft; approving a draft names the state it is in.
    let (status, edited) = buyer
        .send(
            "PATCH",
            &format!("/api/v1/purchase-orders/{po_id}"),
            Some(&json!({ "notes": "dock 3" })),
        )
        .await;
    assert_eq!((status, edited["notes"].clone()), (200, json!("dock 3")));
    let (status, body) = step(&approver, po_id, "approve").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "purchase_order.invalid_state");
    assert_eq!(body["details"]["state"], "draft");

    assert_eq!(step(&buyer, po_id, "submit").await.1["state"], "submitted");
    let (status, body) = buyer
        .send(
            "PATCH",
            &format!("/api/v1/purchase-orders/{po_id}"),
            Some(&json!({ "notes": "late edit" })),
        )
        .await;
    assert_eq!(
        (status, body["details"]["state"].clone()),
        (409, json!("submitted"))
    );

    // Its creator may not approve it, even holding the permission.
    let (status, body) = step(&buyer, po_id, "approve").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "purchase_order.self_approval");
    let (status, approved) = step(&approver, po_id, "approve").await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["approved_by"], json!(approver.user.user_id));

    // Sending queues the supplier's email: the lines in the body and as CSV.
    let (status, sent) = step(&buyer, po_id, "send").await;
    assert_eq!((status, sent["state"].clone()), (200, json!("sent")));
    let emails = depot_store::entity::outbound_email::Entity::find()
        .filter(depot_store::entity::outbound_email::Column::ToAddress.eq("orders@acme.example"))
        .all(app.store.reader())
        .await
        .unwrap();
    assert_eq!(emails.len(), 1);
    assert!(emails[0].body.contains("MILK"), "{}", emails[0].body);
    assert!(emails[0].body.contains("× 100"), "{}", emails[0].body);
    let attachments: Value =
        serde_json::from_str(emails[0].attachments.as_deref().unwrap()).unwrap();
    assert_eq!(attachments[0]["content_type"], "text/csv");
    assert!(
        attachments[0]["content"]
            .as_str()
            .unwrap()
            .contains("1,MILK,Product MILK,100,250.00,25000.00,BDT"),
        "{attachments}"
    );

    // 101 of 100 is an over-receipt; lot and expiry are required for this product.
    let path = format!("/api/v1/purchase-orders/{po_id}/receive");
    let (status, body) = buyer.post(&path, receipt(here, line, 101, "L1")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "purchase_order.over_receipt");
    assert_eq!(body["details"]["lines"][0]["receivable"], json!(100));
    let (status, body) = buyer
        .post(
            &path,
            json!({ "location_id": here, "lines": [{ "line_id": line, "quantity": 40 }] }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["lines[0].lot", "lines[0].expiry"]);

    let (status, first) = buyer.post(&path, receipt(here, line, 40, "L1")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["state"], "partially_received");
    assert_eq!(first["lines"][0]["received_quantity"], json!(40));
    let movement = &first["receipt"]["movements"][0];
    assert_eq!(movement["kind"], "receipt");
    assert_eq!(movement["reference_type"], "purchase_order");
    assert_eq!(movement["reference_id"], json!(po_id));
    let batches = buyer
        .get(&format!("/api/v1/stock/batches?product_id={milk}"))
        .await;
    assert_eq!(batches["data"][0]["lot"], "L1");
    assert_eq!(batches["data"][0]["expiry"], json!(day(90)));
    assert_eq!(batches["data"][0]["unit_cost"], json!(25_000));
    assert_eq!(batches["data"][0]["currency"], "BDT");

    // The last 60, sent twice under one Idempotency-Key: one effect, the same answer.
    let key = format!("receipt-{po_id}");
    let mut answers = Vec::new();
    for _ in 0..2 {
        let response = app
            .client
            .post(app.url(&path))
            .bearer_auth(&buyer.user.access_token)
            .header("Idempotency-Key", &key)
            .json(&receipt(here, line, 60, "L2"))
            .send()
            .await
            .unwrap();
        answers.push((
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        ));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].1["state"], "received");
    assert_eq!(desk.on_hand(milk, here).await, json!(100));

    let (status, closed) = step(&buyer, po_id, "close").await;
    assert_eq!((status, closed["state"].clone()), (200, json!("closed")));
    let receipts = buyer
        .get(&format!("/api/v1/purchase-orders/{po_id}/receipts"))
        .await;
    let lots: Vec<&str> = receipts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["lines"][0]["lot"].as_str().unwrap())
        .collect();
    assert_eq!(lots, ["L1", "L2"]);
    let transitions = depot_store::entity::outbox::Entity::find()
        .filter(depot_store::entity::outbox::Column::EventType.eq("purchase_order.transitioned"))
        .all(app.store.reader())
        .await
        .unwrap();
    assert_eq!(
        transitions.len(),
        6,
        "submit, approve, send, two receipts (the replay is no new one), close"
    );
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn only_draft_submitted_and_approved_orders_can_be_cancelled() {
    let app = spawn_app().await;
    let buyer = signed_in(&app, "buyer", BUYER).await;
    let (po, _, _, _) = sent_order(&app, &buyer).await;
    let (status, body) = step(&buyer, po, "cancel").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["details"]["state"], "sent");
    let desk = Desk::open(&app).await;
    let nuts = desk.product("NUTS", "kg", json!({})).await;
    let vendor = supplier(&buyer).await;
    let other = id(&draft(&buyer, vendor, nuts, 5).await);
    let (status, cancelled) = step(&buyer, other, "cancel").await;
    assert_eq!(
        (status, cancelled["state"].clone()),
        (200, json!("cancelled"))
    );
    assert_eq!(step(&buyer, other, "submit").await.0, 409);
    app.stop().await;
}

#[tokio::test]
async fn racing_approvals_and_receipts_of_one_order_let_exactly_one_through() {
    let app = spawn_app().await;
    let buyer = signed_in(&app, "buyer", BUYER).await;
    let desk = Desk::open(&app).await;
    let bolts = desk.product("BOLT", "pcs", json!({})).await;
    let here = desk.location("WH1").await;
    let vendor = supplier(&buyer).await;
    let po = draft(&buyer, vendor, bolts, 100).await;
    let po_id = id(&po);
    let line: Uuid = po["lines"][0]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(step(&buyer, po_id, "submit").await.0, 200);

    let first = signed_in(&app, "approver-a", APPROVER).await;
    let second = signed_in(&app, "approver-b", APPROVER).await;
    let (a, b) = tokio::join!(
        step(&first, po_id, "approve"),
        step(&second, po_id, "approve")
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let loser = if a.0 == 409 { a.1 } else { b.1 };
    assert_eq!(loser["details"]["state"], "approved");

    assert_eq!(step(&buyer, po_id, "send").await.0, 200);
    let path = format!("/api/v1/purchase-orders/{po_id}/receive");
    let body =
        |n: i64| json!({ "location_id": here, "lines": [{ "line_id": line, "quantity": n }] });
    assert_eq!(buyer.post(&path, body(40)).await.0, 200);
    let (a, b) = tokio::join!(buyer.post(&path, body(60)), buyer.post(&path, body(60)));
    let mut outcomes = [a.0, b.0];
    outcomes.sort_unstable();
    assert_eq!(outcomes, [200, 422], "{a:?} {b:?}");
    let rejected = if a.0 == 422 { a.1 } else { b.1 };
    assert_eq!(rejected["code"], "purchase_order.over_receipt");
    assert_eq!(desk.on_hand(bolts, here).await, json!(100));
    let order = buyer.get(&format!("/api/v1/purchase-orders/{po_id}")).await;
    assert_eq!(order["state"], "received");
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_tolerance_admits_a_little_more_than_was_ordered() {
    let app =
        crate::helpers::spawn_app_with(|s| s.purchase_over_receipt_tolerance_percent = 5).await;
    let buyer = signed_in(&app, "buyer", BUYER).await;
    let (po, line, _, here) = sent_order(&app, &buyer).await;
    let path = format!("/api/v1/purchase-orders/{po}/receive");
    let (status, body) = buyer.post(&path, receipt(here, line, 106, "L1")).await;
    assert_eq!(
        (status, body["details"]["lines"][0]["receivable"].clone()),
        (422, json!(105))
    );
    let (status, body) = buyer.post(&path, receipt(here, line, 105, "L1")).await;
    assert_eq!(
        (status, body["state"].clone()),
        (200, json!("received")),
        "{body}"
    );
    assert_verified(&app).await;
    app.stop().await;
}
