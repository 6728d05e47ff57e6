//! Sales through HTTP: confirmation reserves by policy (all lines or none), concurrent
//! confirmations never reserve more than there is, fulfilment issues exactly the reserved
//! batches, cancellation and lapsed reservations release them, manual payments, returns.
//! Every test ends with `verify`: batches, levels, reservations and the ledger agree.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::stock::{Desk, assert_verified, day, id};

pub(crate) const SELLER: &[&str] = &[
    "products.read",
    "stock.read",
    "customers.read",
    "customers.manage",
    "sales_orders.read",
    "sales_orders.create",
    "sales_orders.fulfil",
    "payments.read",
    "payments.create",
];

/// A seller with a customer, a warehouse and a product; the desk stocks it.
pub(crate) struct Shop<'a> {
    pub desk: Desk<'a>,
    pub seller: Desk<'a>,
    pub customer: Uuid,
    pub here: Uuid,
}

impl<'a> Shop<'a> {
    pub async fn open(app: &'a TestApp) -> Shop<'a> {
        let desk = Desk::open(app).await;
        let email = format!("seller-{}@example.com", Uuid::now_v7().simple());
        let seller = Desk {
            app,
            user: app.sign_in_with(&email, SELLER).await,
        };
        let (status, body) = seller
            .post("/api/v1/customers", json!({ "name": "Corner Shop" }))
            .await;
        assert_eq!(status, 201, "{body}");
        let here = desk.location("WH1").await;
        Shop {
            desk,
            seller,
            customer: id(&body),
            here,
        }
    }

    /// A draft order of `lines` ((product, quantity, unit price)).
    pub async fn order(&self, lines: &[(Uuid, Value, i64)]) -> Value {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(p, q, price)| json!({ "product_id": p, "quantity": q, "unit_price": price }))
            .collect();
        let (status, body) = self
            .seller
            .post(
                "/api/v1/sales-orders",
                json!({ "customer_id": self.customer, "location_id": self.here,
                        "currency": "BDT", "lines": lines }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    pub async fn step(&self, order: Uuid, action: &str) -> (u16, Value) {
        self.seller
            .post(&format!("/api/v1/sales-orders/{order}/{action}"), json!({}))
            .await
    }

    async fn level(&self, product: Uuid) -> Value {
        self.desk
            .get(&format!(
                "/api/v1/stock/levels?product_id={product}&location_id={}",
                self.here
            ))
            .await["data"][0]
            .clone()
    }
}

#[tokio::test]
async fn twenty_confirmations_for_ten_units_reserve_exactly_ten_by_fefo() {
    let app = spawn_app().await;
    let shop = Shop::open(&app).await;
    let milk = shop
        .desk
        .product("MILK", "pcs", json!({ "tracks_expiry": true }))
        .await;
    let mut lots = BTreeMap::new();
    for (lot, expiry, n) in [("LATE", 20, 6), ("SOON", 10, 4)] {
        let added = shop
            .desk
            .add(
                milk,
                shop.here,
                json!(n),
                json!({ "lot": lot, "expiry": day(expiry) }),
            )
            .await;
        lots.insert(added["movements"][0]["batch_id"].to_string(), lot);
    }
    let mut orders = Vec::new();
    for _ in 0..20 {
        orders.push(id(&shop.order(&[(milk, json!(1), 5_000)]).await));
    }
    let answers = futures::future::join_all(orders.iter().map(|o| shop.step(*o, "confirm"))).await;
    let confirmed: Vec<(Uuid, Value)> = orders
        .iter()
        .zip(&answers)
        .filter(|(_, (status, _))| *status == 200)
        .map(|(o, (_, body))| (*o, body.clone()))
        .collect();
    assert_eq!(confirmed.len(), 10, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 409, "{body}");
        assert_eq!(body["code"], "stock.insufficient");
        assert_eq!(body["details"]["lines"][0]["available"], json!(0));
    }
    let level = shop.level(milk).await;
    assert_eq!(
        (
            level["on_hand"].clone(),
            level["reserved"].clone(),
            level["available"].clone()
        ),
        (json!(10), json!(10), json!(0))
    );
    // FEFO: the four soonest-expiring units were held first, then six of the later lot.
    let mut held: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, body) in &confirmed {
        let r = &body["reservations"][0];
        assert_eq!(r["status"], "active");
        *held.entry(lots[&r["batch_id"].to_string()]).or_default() += 1;
    }
    assert_eq!(held, BTreeMap::from([("LATE", 6), ("SOON", 4)]));

    // Cancel one holding the later lot: one unit comes free.
    let (cancelled, _) = confirmed
        .iter()
        .find(|(_, b)| lots[&b["reservations"][0]["batch_id"].to_string()] == "LATE")
        .unwrap();
    let (status, body) = shop.step(*cancelled, "cancel").await;
    assert_eq!(
        (status, body["state"].clone()),
        (200, json!("cancelled")),
        "{body}"
    );
    assert_eq!(body["reservations"][0]["status"], "released");
    assert_eq!(shop.level(milk).await["available"], json!(1));

    // Fulfil the other nine: each issues exactly its reserved batch.
    for (order, body) in confirmed.iter().filter(|(o, _)| o != cancelled) {
        let (status, done) = shop.step(*order, "fulfil").await;
        assert_eq!(status, 200, "{done}");
        assert_eq!(done["state"], "fulfilled");
        assert_eq!(done["movements"][0]["kind"], "sale");
        assert_eq!(done["movements"][0]["quantity"], json!(-1));
        assert_eq!(
            done["movements"][0]["batch_id"],
            body["reservations"][0]["batch_id"]
        );
        assert_eq!(done["lines"][0]["fulfilled_quantity"], json!(1));
    }
    let level = shop.level(milk).await;
    assert_eq!(
        (level["on_hand"].clone(), level["reserved"].clone()),
        (json!(1), json!(0))
    );
    // What is left is the later lot: the soon-expiring one went first.
    let batches = shop
        .desk
        .get(&format!("/api/v1/stock/batches?product_id={milk}"))
        .await;
    assert_eq!(batches["data"].as_array().unwrap().len(), 1);
    assert_eq!(lots[&batches["data"][0]["id"].to_string()], "LATE");
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_confirmation_that_falls_short_on_any_line_reserves_nothing_and_says_what_there_is() {
    let app = spawn_app().await;
    let shop = Shop::open(&app).await;
    let tea = shop.desk.product("TEA", "pcs", json!({})).await;
    let rice = shop.desk.product("RICE", "kg", json!({})).await;
    shop.desk.add(tea, shop.here, json!(5), json!({})).await;
    shop.desk.add(rice, shop.here, json!(2.5), json!({})).await;
    let order = shop
        .order(&[(tea, json!(3), 100), (rice, json!(2.75), 80_00)])
        .await;
    assert_eq!(
        order["total"],
        json!(300 + 22_000),
        "3 × 100 + 2.75 × 8,000"
    );
    let (status, body) = shop.step(id(&order), "confirm").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "stock.insufficient");
    let lines = &body["details"]["lines"];
    assert_eq!(lines[0]["available"], json!(5));
    assert_eq!(lines[1]["available"], json!(2.5));
    assert_eq!(lines[1]["requested"], json!(2.75));
    assert_eq!(shop.level(tea).await["reserved"], json!(0), "nothing held");
    let again = shop
        .seller
        .get(&format!("/api/v1/sales-orders/{}", id(&order)))
        .await;
    assert_eq!(again["state"], "draft");
    assert_eq!(again["reservations"], json!([]));

    // Fix the draft (lines are editable only now), then it confirms.
    let (status, edited) = shop
        .seller
        .send(
            "PATCH",
            &format!("/api/v1/sales-orders/{}", id(&order)),
            Some(
                &json!({ "lines": [{ "product_id": rice, "quantity": 2.5, "unit_price": 8_000 }] }),
            ),
        )
        .await;
    assert_eq!(
        (status, edited["total"].clone()),
        (200, json!(20_000)),
        "{edited}"
    );
    assert_eq!(shop.step(id(&order), "confirm").await.0, 200);
    let (status, body) = shop
        .seller
        .send(
            "PATCH",
            &format!("/api/v1/sales-orders/{}", id(&order)),
            Some(&json!({ "notes": "too late" })),
        )
        .await;
    assert_eq!(
        (status, body["details"]["state"].clone()),
        (409, json!("confirmed"))
    );
    // Reserved stock is not there for anyone else: a removal may not take it.
    let (status, body) = shop
        .desk
        .adjust(rice, shop.here, json!(-0.5), json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["details"]["available"], json!(0));
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn manual_payments_cover_the_total_once_per_method_then_the_order_is_paid() {
    let app = spawn_app().await;
    let shop = Shop::open(&app).await;
    let tea = shop.desk.product("TEA", "pcs", json!({})).await;
    shop.desk.add(tea, shop.here, json!(10), json!({})).await;
    let order = id(&shop.order(&[(tea, json!(4), 2_500)]).await);
    let payments_path = format!("/api/v1/sales-orders/{order}/payments");
    let pay = |method: &str, amount: i64| {
        shop.seller.post(
            &payments_path,
            json!({ "method": method, "amount": amount, "reference": "R-1" }),
        )
    };
    let (status, body) = pay("cash", 1_000).await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("sales_order.invalid_state"))
    );
    assert_eq!(shop.step(order, "confirm").await.0, 200);

    let (status, cash) = pay("cash", 4_000).await;
    assert_eq!(status, 201, "{cash}");
    assert_eq!(
        (cash["state"].clone(), cash["currency"].clone()),
        (json!("paid"), json!("BDT"))
    );
    let (status, body) = pay("cash", 1_000).await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("payments.active_exists"))
    );
    let (status, body) = pay("bank_transfer", 6_001).await;
    assert_eq!(
        (status, body["code"].clone()),
        (422, json!("payments.exceeds_balance"))
    );
    assert_eq!(body["details"]["balance_due"], json!(6_000));
    let (status, body) = pay("sslcommerz", 6_000).await;
    assert_eq!(status, 422, "the gateway is not a manual method: {body}");

    let midway = shop
        .seller
        .get(&format!("/api/v1/sales-orders/{order}"))
        .await;
    assert_eq!(
        (midway["state"].clone(), midway["amount_paid"].clone()),
        (json!("confirmed"), json!(4_000))
    );
    assert_eq!(pay("card_terminal", 6_000).await.0, 201);
    let paid = shop
        .seller
        .get(&format!("/api/v1/sales-orders/{order}"))
        .await;
    assert_eq!(
        (paid["state"].clone(), paid["balance_due"].clone()),
        (json!("paid"), json!(0))
    );
    let payments = shop
        .seller
        .get(&format!("/api/v1/sales-orders/{order}/payments"))
        .await;
    assert_eq!(payments["data"].as_array().unwrap().len(), 2);
    let (status, done) = shop.step(order, "fulfil").await;
    assert_eq!((status, done["state"].clone()), (200, json!("fulfilled")));
    assert_eq!(shop.level(tea).await["on_hand"], json!(6));
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn returns_go_back_into_their_batch_never_beyond_what_was_fulfilled() {
    let app = spawn_app().await;
    let shop = Shop::open(&app).await;
    let soap = shop.desk.product("SOAP", "pcs", json!({})).await;
    let added = shop.desk.add(soap, shop.here, json!(3), json!({})).await;
    let batch = added["movements"][0]["batch_id"].clone();
    let order = shop.order(&[(soap, json!(3), 300)]).await;
    let (order, line) = (id(&order), order["lines"][0]["id"].clone());
    let path = format!("/api/v1/sales-orders/{order}/returns");
    let back = |quantity: i64, restock: bool| {
        json!({ "lines": [{ "line_id": line, "quantity": quantity, "restock": restock,
                            "reason": "damaged in transit" }] })
    };
    let (status, body) = shop.seller.post(&path, back(1, true)).await;
    assert_eq!(
        (status, body["details"]["state"].clone()),
        (409, json!("draft"))
    );
    assert_eq!(shop.step(order, "confirm").await.0, 200);
    assert_eq!(shop.step(order, "fulfil").await.0, 200);
    assert_eq!(shop.level(soap).await["on_hand"], json!(0));

    let (status, body) = shop.seller.post(&path, back(4, true)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "sales_order.over_return");
    assert_eq!(body["details"]["lines"][0]["returnable"], json!(3));

    let (status, body) = shop.seller.post(&path, back(2, true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "fulfilled", "only part came back");
    assert_eq!(body["movements"][0]["kind"], "return");
    assert_eq!(
        body["movements"][0]["batch_id"], batch,
        "into the batch it left"
    );
    assert_eq!(shop.level(soap).await["on_hand"], json!(2));
    let (status, body) = shop.seller.post(&path, back(2, false)).await;
    assert_eq!(status, 422, "only one is left to return: {body}");
    let (status, body) = shop.seller.post(&path, back(1, false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "returned");
    assert_eq!(
        shop.level(soap).await["on_hand"],
        json!(2),
        "a write-off adds nothing"
    );
    let returns = shop.seller.get(&path).await;
    let restocked: Vec<bool> = returns["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["lines"][0]["restock"].as_bool().unwrap())
        .collect();
    assert_eq!(restocked, [true, false]);
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_lapsed_reservation_is_released_and_the_order_returns_to_draft() {
    let app = spawn_app_with(|s| s.sales_reservation_ttl_secs = 1).await;
    let shop = Shop::open(&app).await;
    let tea = shop.desk.product("TEA", "pcs", json!({})).await;
    shop.desk.add(tea, shop.here, json!(5), json!({})).await;
    let lapsing = id(&shop.order(&[(tea, json!(2), 100)]).await);
    let kept = id(&shop.order(&[(tea, json!(1), 100)]).await);
    let part_paid = id(&shop.order(&[(tea, json!(1), 300)]).await);
    let (_, confirmed) = shop.step(lapsing, "confirm").await;
    assert!(confirmed["reserved_until"].is_string(), "{confirmed}");
    assert_eq!(shop.step(kept, "confirm").await.0, 200);
    // A paid order keeps its stock whatever the clock says.
    let (status, _) = shop
        .seller
        .post(
            &format!("/api/v1/sales-orders/{kept}/payments"),
            json!({ "method": "cash", "amount": 100 }),
        )
        .await;
    assert_eq!(status, 201);
    // So does one that is partly paid: the customer has started paying for it.
    assert_eq!(shop.step(part_paid, "confirm").await.0, 200);
    let (status, _) = shop
        .seller
        .post(
            &format!("/api/v1/sales-orders/{part_paid}/payments"),
            json!({ "method": "cash", "amount": 100 }),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(shop.level(tea).await["reserved"], json!(4));
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(app.run_job("sales_reservation_expiry").await, 1);
    let lapsed = shop
        .seller
        .get(&format!("/api/v1/sales-orders/{lapsing}"))
        .await;
    assert_eq!(lapsed["state"], "draft");
    assert_eq!(lapsed["reservations"][0]["status"], "released");
    assert_eq!(shop.level(tea).await["reserved"], json!(2));
    let still = shop
        .seller
        .get(&format!("/api/v1/sales-orders/{kept}"))
        .await;
    assert_eq!(still["state"], "paid");
    let started = shop
        .seller
        .get(&format!("/api/v1/sales-orders/{part_paid}"))
        .await;
    assert_eq!(started["state"], "confirmed");
    assert_eq!(app.run_job("sales_reservation_expiry").await, 0);
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_sales_user_reaches_only_the_orders_of_their_own_customers() {
    let app = spawn_app().await;
    let shop = Shop::open(&app).await;
    let tea = shop.desk.product("TEA", "pcs", json!({})).await;
    shop.desk.add(tea, shop.here, json!(5), json!({})).await;
    let order = id(&shop.order(&[(tea, json!(1), 100)]).await);
    let rival = Desk {
        app: &app,
        user: app
            .sign_in_with(
                &format!("rival-{}@example.com", Uuid::now_v7().simple()),
                SELLER,
            )
            .await,
    };
    let path = format!("/api/v1/sales-orders/{order}");
    for (method, path, body) in [
        ("GET", path.clone(), None),
        ("PATCH", path.clone(), Some(json!({ "notes": "mine now" }))),
        ("POST", format!("{path}/confirm"), Some(json!({}))),
        ("POST", format!("{path}/cancel"), Some(json!({}))),
        ("GET", format!("{path}/payments"), None),
        (
            "POST",
            format!("{path}/payments"),
            Some(json!({ "method": "cash", "amount": 100 })),
        ),
    ] {
        let (status, answer) = rival.send(method, &path, body.as_ref()).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    assert!(
        rival.get("/api/v1/sales-orders").await["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let mine = shop.seller.get("/api/v1/sales-orders").await;
    assert_eq!(mine["data"][0]["id"], json!(order));

    // Warehouse staff (no customer access) fulfil anyone's orders.
    assert_eq!(shop.step(order, "confirm").await.0, 200);
    let clerk = Desk {
        app: &app,
        user: app
            .sign_in(
                &format!("clerk-{}@example.com", Uuid::now_v7().simple()),
                &["clerk"],
            )
            .await,
    };
    let (status, done) = clerk.post(&format!("{path}/fulfil"), json!({})).await;
    assert_eq!(
        (status, done["state"].clone()),
        (200, json!("fulfilled")),
        "{done}"
    );

    // Reassigning the customer takes its orders along.
    let boss = Desk {
        app: &app,
        user: app
            .sign_in(
                &format!("boss-{}@example.com", Uuid::now_v7().simple()),
                &["manager"],
            )
            .await,
    };
    let (status, _) = boss
        .post(
            &format!("/api/v1/customers/{}/reassign", shop.customer),
            json!({ "owner_id": rival.user.user_id }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        rival.get(&path).await["owner_id"],
        json!(rival.user.user_id)
    );
    let (status, _) = shop.seller.send("GET", &path, None).await;
    assert_eq!(status, 404);
    assert_verified(&app).await;
    app.stop().await;
}
