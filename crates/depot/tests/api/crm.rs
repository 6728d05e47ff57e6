//! CRM through HTTP: a sales user sees and changes only their own customers (someone else's
//! is a 404 everywhere, orders included); a manager sees all and reassigns, moving the open
//! activities; personal data stays out of the audit log.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, spawn_app};
use crate::stock::{Desk, id};

async fn rep<'a>(app: &'a TestApp, name: &str, role: &str) -> Desk<'a> {
    let email = format!("{name}-{}@example.com", Uuid::now_v7().simple());
    let user: Session = app.sign_in(&email, &[role]).await;
    Desk { app, user }
}

async fn customer(owner: &Desk<'_>, name: &str) -> Uuid {
    let (status, body) = owner
        .post(
            "/api/v1/customers",
            json!({ "name": name, "email": "buyer@shop.example", "phone": "+8801811000000",
                    "address": "12 Lake Road", "status": "active", "tags": ["Retail", "retail", "VIP"] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["tags"], json!(["retail", "vip"]));
    assert_eq!(body["owner_id"], json!(owner.user.user_id));
    id(&body)
}

async fn activity(owner: &Desk<'_>, customer: Uuid, subject: &str, done: bool) -> (u16, Value) {
    owner
        .post(
            &format!("/api/v1/customers/{customer}/activities"),
            json!({ "kind": "task", "subject": subject, "due_date": "2026-12-24", "done": done }),
        )
        .await
}

#[tokio::test]
async fn a_sales_user_cannot_reach_another_users_customer_and_a_manager_can() {
    let app = spawn_app().await;
    let alice = rep(&app, "alice", "sales").await;
    let bob = rep(&app, "bob", "sales").await;
    let boss = rep(&app, "boss", "manager").await;
    let shop = customer(&alice, "Corner Shop").await;
    customer(&bob, "Bob's Bakery").await;
    assert_eq!(activity(&alice, shop, "Call back", false).await.0, 201);

    // Bob: not in his list, and every way in is a 404.
    let listed = bob.get("/api/v1/customers").await;
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Bob's Bakery"]);
    let path = format!("/api/v1/customers/{shop}");
    for (method, path, body) in [
        ("GET", path.clone(), None),
        ("PATCH", path.clone(), Some(json!({ "status": "inactive" }))),
        ("DELETE", path.clone(), None),
        ("GET", format!("{path}/activities"), None),
        ("GET", format!("{path}/contacts"), None),
        (
            "POST",
            format!("{path}/activities"),
            Some(json!({ "kind": "note", "subject": "sneaky" })),
        ),
        (
            "POST",
            format!("{path}/contacts"),
            Some(json!({ "name": "Eve" })),
        ),
    ] {
        let (status, answer) = bob.send(method, &path, body.as_ref()).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "customers.not_found");
    }
    // Nor can he sell to her customer.
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let tea = desk.product("TEA", "pcs", json!({})).await;
    let order = json!({ "customer_id": shop, "location_id": here, "currency": "BDT",
                        "lines": [{ "product_id": tea, "quantity": 1, "unit_price": 100 }] });
    let (status, answer) = bob.post("/api/v1/sales-orders", order.clone()).await;
    assert_eq!(
        (status, answer["code"].clone()),
        (404, json!("customers.not_found"))
    );
    assert_eq!(alice.post("/api/v1/sales-orders", order).await.0, 201);
    // Nor hand a new customer to someone else.
    let (status, _) = bob
        .post(
            "/api/v1/customers",
            json!({ "name": "Gift", "owner_id": alice.user.user_id }),
        )
        .await;
    assert_eq!(status, 403);

    // The manager sees everyone's.
    assert_eq!(
        boss.get("/api/v1/customers").await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(boss.get(&path).await["name"], "Corner Shop");
    let (status, _) = activity(&boss, shop, "Manager note", false).await;
    assert_eq!(status, 201);
    app.stop().await;
}

#[tokio::test]
async fn reassigning_moves_the_customer_and_its_open_activities_in_one_audited_step() {
    let app = spawn_app().await;
    let alice = rep(&app, "alice", "sales").await;
    let bob = rep(&app, "bob", "sales").await;
    let boss = rep(&app, "boss", "manager").await;
    let viewer = rep(&app, "val", "viewer").await;
    let shop = customer(&alice, "Corner Shop").await;
    let (_, open) = activity(&alice, shop, "Send catalogue", false).await;
    let (_, done) = activity(&alice, shop, "First call", true).await;
    assert!(done["done_at"].is_string(), "{done}");

    // Only to an active user who can hold customers.
    let reassign = format!("/api/v1/customers/{shop}/reassign");
    let (status, body) = boss
        .post(&reassign, json!({ "owner_id": viewer.user.user_id }))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (422, json!("customers.invalid_owner"))
    );
    // A sales user may not reassign at all.
    assert_eq!(
        alice
            .post(&reassign, json!({ "owner_id": bob.user.user_id }))
            .await
            .0,
        403
    );

    let (status, moved) = boss
        .post(&reassign, json!({ "owner_id": bob.user.user_id }))
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["owner_id"], json!(bob.user.user_id));
    let activities = bob
        .get(&format!("/api/v1/customers/{shop}/activities"))
        .await;
    let owners: Vec<(String, Value)> = activities["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["subject"].as_str().unwrap().to_owned(),
                a["owner_id"].clone(),
            )
        })
        .collect();
    assert!(owners.contains(&(
        open["subject"].as_str().unwrap().to_owned(),
        json!(bob.user.user_id)
    )));
    assert!(
        owners.contains(&("First call".to_owned(), json!(alice.user.user_id))),
        "done activities keep their owner: {owners:?}"
    );
    let (status, _) = alice
        .send("GET", &format!("/api/v1/customers/{shop}"), None)
        .await;
    assert_eq!(status, 404, "alice no longer sees it");

    // Audited: who moved it from whom to whom, and no personal data anywhere in the log.
    let audit = boss.get("/api/v1/audit?action=customer.reassigned").await;
    let entry = &audit["data"][0];
    assert_eq!(entry["actor_id"], json!(boss.user.user_id));
    assert_eq!(entry["before"]["owner_id"], json!(alice.user.user_id));
    assert_eq!(entry["after"]["owner_id"], json!(bob.user.user_id));
    assert_eq!(entry["details"]["activities_moved"], json!(1));
    let everything = boss.get("/api/v1/audit?limit=200").await.to_string();
    for secret in ["buyer@shop.example", "+8801811000000", "12 Lake Road"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked into the audit log"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn contacts_and_activities_are_validated_and_listed() {
    let app = spawn_app().await;
    let alice = rep(&app, "alice", "sales").await;
    let shop = customer(&alice, "Corner Shop").await;
    let contacts = format!("/api/v1/customers/{shop}/contacts");
    let (status, body) = alice
        .post(
            &contacts,
            json!({ "name": "Rina", "email": "rina@", "phone": "12" }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, rina) = alice
        .post(
            &contacts,
            json!({ "name": "Rina", "email": "rina@shop.example", "role": "Purchasing" }),
        )
        .await;
    assert_eq!(status, 201, "{rina}");
    assert_eq!(alice.get(&contacts).await["data"][0]["name"], "Rina");

    let (status, body) = alice
        .post(
            &format!("/api/v1/customers/{shop}/activities"),
            json!({ "kind": "visit", "subject": "x" }),
        )
        .await;
    assert_eq!(status, 422, "unknown kind: {body}");
    let (_, task) = activity(&alice, shop, "Quote", false).await;
    let (status, finished) = alice
        .send(
            "PATCH",
            &format!("/api/v1/customers/{shop}/activities/{}", id(&task)),
            Some(&json!({ "done": true })),
        )
        .await;
    assert_eq!(status, 200, "{finished}");
    assert!(finished["done_at"].is_string());
    let open = alice
        .get(&format!("/api/v1/customers/{shop}/activities?done=false"))
        .await;
    assert!(open["data"].as_array().unwrap().is_empty());
    let found = alice.get("/api/v1/customers?tag=vip&q=corner").await;
    assert_eq!(found["data"][0]["id"], json!(shop));
    app.stop().await;
}
