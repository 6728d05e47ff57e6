//! Stock through HTTP: quantities, depletion policies, adjustments, transfers, counts, the
//! ledger and its check, idempotency and concurrency. Every test that changes stock ends with
//! `verify`: the ledger and the balances must agree.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Http, Session, TestApp, assert_envelope, spawn_app, spawn_app_with};

/// A signed-in stock manager driving the API.
pub(crate) struct Desk<'a> {
    pub app: &'a TestApp,
    pub user: Session,
}

pub(crate) const ALL_STOCK: &[&str] = &[
    "products.read",
    "products.manage",
    "warehouses.manage",
    "stock.read",
    "stock.adjust",
    "stock.transfer",
];

impl<'a> Desk<'a> {
    pub async fn open(app: &'a TestApp) -> Self {
        let email = format!("desk-{}@example.com", Uuid::now_v7().simple());
        let user = app.sign_in_with(&email, ALL_STOCK).await;
        Self { app, user }
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let response = self
            .app
            .call(method, path, Some(&self.user.access_token), body)
            .await;
        let status = response.status().as_u16();
        let body = if status == 204 {
            Value::Null
        } else {
            response.json().await.expect("JSON body")
        };
        (status, body)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(&body)).await
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Creates a product; `extra` adds or overrides fields.
    pub async fn product(&self, sku: &str, unit: &str, extra: Value) -> Uuid {
        let mut body = json!({ "sku": sku, "name": format!("Product {sku}"), "unit": unit });
        merge(&mut body, extra);
        let (status, created) = self.post("/api/v1/products", body).await;
        assert_eq!(status, 201, "{created}");
        id(&created)
    }

    pub async fn location(&self, code: &str) -> Uuid {
        let (status, created) = self
            .post(
                "/api/v1/locations",
                json!({ "code": code, "name": format!("Warehouse {code}") }),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        id(&created)
    }

    pub async fn adjust(
        &self,
        product: Uuid,
        location: Uuid,
        quantity: Value,
        extra: Value,
    ) -> (u16, Value) {
        let mut body = json!({
            "product_id": product,
            "location_id": location,
            "quantity": quantity,
            "reason": "found",
        });
        merge(&mut body, extra);
        self.post("/api/v1/stock/adjustments", body).await
    }

    /// Adds stock, asserting success.
    pub async fn add(&self, product: Uuid, location: Uuid, quantity: Value, extra: Value) -> Value {
        let (status, body) = self.adjust(product, location, quantity, extra).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    pub async fn on_hand(&self, product: Uuid, location: Uuid) -> Value {
        let page = self
            .get(&format!(
                "/api/v1/stock/levels?product_id={product}&location_id={location}"
            ))
            .await;
        page["data"][0]["on_hand"].clone()
    }
}

pub(crate) fn id(v: &Value) -> Uuid {
    v["id"].as_str().expect("an id").parse().expect("a UUID")
}

fn merge(body: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
}

/// The ledger check must find nothing.
pub(crate) async fn assert_verified(app: &TestApp) {
    let report = app.context.stock().verify().await.expect("verify runs");
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
}

pub(crate) fn day(days: i64) -> String {
    (Utc::now() + Duration::days(days)).date_naive().to_string()
}

/// The lots an adjustment's movements took from, in order, with the quantities.
fn taken(body: &Value, lots: &BTreeMap<Uuid, &str>) -> Vec<(String, f64)> {
    body["movements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let batch: Uuid = m["batch_id"].as_str().unwrap().parse().unwrap();
            (lots[&batch].to_owned(), m["quantity"].as_f64().unwrap())
        })
        .collect()
}

fn batch_of(body: &Value) -> Uuid {
    body["movements"][0]["batch_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn quantities_are_exact_in_the_products_unit() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let bolts = desk.product("BOLT-1", "pcs", json!({})).await;
    let flour = desk.product("FLOUR-1", "kg", json!({})).await;
    let here = desk.location("WH1").await;

    let (status, body) = desk.adjust(bolts, here, json!(1.5), json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"]["fields"][0]["field"], "quantity");

    let accepted = desk.add(flour, here, json!(0.125), json!({})).await;
    assert_eq!(accepted["movements"][0]["quantity"], json!(0.125));
    assert_eq!(accepted["level"]["on_hand"], json!(0.125));

    let (status, body) = desk.adjust(flour, here, json!(0.1255), json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"]["fields"][0]["field"], "quantity");

    // Exact sums: 0.125 + 0.375 = 0.5, no float drift; a string is not a number.
    desk.add(flour, here, json!(0.375), json!({})).await;
    assert_eq!(desk.on_hand(flour, here).await, json!(0.5));
    let (status, _) = desk.adjust(flour, here, json!("1"), json!({})).await;
    assert_eq!(status, 422);
    let (status, body) = desk.adjust(flour, here, json!(0), json!({})).await;
    assert_eq!(status, 422, "zero is refused: {body}");
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn fefo_spans_batches_in_expiry_order_and_fifo_and_lifo_follow_receipt_order() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let milk = desk
        .product("MILK", "pcs", json!({ "tracks_expiry": true }))
        .await;
    let mut lots = BTreeMap::new();
    for (lot, expiry) in [("LATE", 30), ("SOON", 10), ("MID", 20)] {
        let body = desk
            .add(
                milk,
                here,
                json!(5),
                json!({ "lot": lot, "expiry": day(expiry) }),
            )
            .await;
        lots.insert(batch_of(&body), lot);
    }
    let body = desk
        .add(milk, here, json!(-12), json!({ "reason": "damaged" }))
        .await;
    assert_eq!(
        taken(&body, &lots),
        [
            ("SOON".into(), -5.0),
            ("MID".into(), -5.0),
            ("LATE".into(), -2.0)
        ]
    );
    assert_eq!(body["level"]["on_hand"], json!(3));

    for (policy, order) in [("fifo", ["A", "B", "C"]), ("lifo", ["C", "B", "A"])] {
        let sku = format!("NAILS-{policy}");
        let nails = desk
            .product(&sku, "pcs", json!({ "depletion_policy": policy }))
            .await;
        let mut lots = BTreeMap::new();
        for lot in ["A", "B", "C"] {
            let body = desk.add(nails, here, json!(4), json!({ "lot": lot })).await;
            lots.insert(batch_of(&body), lot);
        }
        let body = desk
            .add(nails, here, json!(-10), json!({ "reason": "lost" }))
            .await;
        assert_eq!(
            taken(&body, &lots),
            [
                (order[0].into(), -4.0),
                (order[1].into(), -4.0),
                (order[2].into(), -2.0)
            ],
            "{policy}"
        );
    }
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_product_override_beats_its_category_which_beats_the_default() {
    let app =
        spawn_app_with(|s| s.stock_depletion_policy = depot_domain::stock::DepletionPolicy::Fefo)
            .await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let (status, category) = desk
        .post(
            "/api/v1/categories",
            json!({ "name": "Dairy", "depletion_policy": "fifo" }),
        )
        .await;
    assert_eq!(status, 201, "{category}");
    let category = id(&category);

    // Received in the order FAR (expires last), NEAR (expires first), MID: FEFO takes NEAR,
    // FIFO takes FAR, LIFO takes MID.
    async fn first_taken(desk: &Desk<'_>, product: Uuid, here: Uuid) -> String {
        let mut lots = BTreeMap::new();
        for (lot, expiry) in [("FAR", 30), ("NEAR", 10), ("MID", 20)] {
            let body = desk
                .add(
                    product,
                    here,
                    json!(2),
                    json!({ "lot": lot, "expiry": day(expiry) }),
                )
                .await;
            lots.insert(batch_of(&body), lot);
        }
        let body = desk
            .add(product, here, json!(-1), json!({ "reason": "damaged" }))
            .await;
        taken(&body, &lots)[0].0.clone()
    }

    let plain = desk.product("P-DEFAULT", "pcs", json!({})).await;
    assert_eq!(
        first_taken(&desk, plain, here).await,
        "NEAR",
        "default: fefo"
    );
    let in_category = desk
        .product("P-CATEGORY", "pcs", json!({ "category_id": category }))
        .await;
    assert_eq!(
        first_taken(&desk, in_category, here).await,
        "FAR",
        "category: fifo"
    );
    let overridden = desk
        .product(
            "P-OVERRIDE",
            "pcs",
            json!({ "category_id": category, "depletion_policy": "lifo" }),
        )
        .await;
    assert_eq!(
        first_taken(&desk, overridden, here).await,
        "MID",
        "product: lifo"
    );

    // Clearing the override falls back to the category.
    let (status, body) = desk
        .send(
            "PATCH",
            &format!("/api/v1/products/{overridden}"),
            Some(&json!({ "depletion_policy": null })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["depletion_policy"], Value::Null);
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn removals_never_go_below_zero_and_skip_expired_batches_unless_allowed() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let eggs = desk
        .product("EGGS", "box", json!({ "tracks_expiry": true }))
        .await;

    let (status, body) = desk
        .adjust(eggs, here, json!(3), json!({ "lot": "L1" }))
        .await;
    assert_eq!(status, 422, "expiry is required: {body}");
    assert_eq!(body["details"]["fields"][0]["field"], "expiry");

    desk.add(
        eggs,
        here,
        json!(4),
        json!({ "lot": "OLD", "expiry": day(-2) }),
    )
    .await;
    desk.add(
        eggs,
        here,
        json!(6),
        json!({ "lot": "NEW", "expiry": day(5) }),
    )
    .await;
    let short = desk
        .adjust(eggs, here, json!(-7), json!({ "reason": "damaged" }))
        .await;
    let envelope = assert_short(short, 6.0);
    assert_eq!(envelope["details"]["available"], json!(6));
    let body = desk
        .add(
            eggs,
            here,
            json!(-7),
            json!({ "reason": "expired", "allow_expired": true }),
        )
        .await;
    assert_eq!(body["movements"].as_array().unwrap().len(), 2);
    assert_eq!(body["level"]["on_hand"], json!(3));

    // Emptied batches are closed, not deleted.
    let open = desk
        .get(&format!("/api/v1/stock/batches?product_id={eggs}"))
        .await;
    assert_eq!(open["data"].as_array().unwrap().len(), 1);
    let all = desk
        .get(&format!(
            "/api/v1/stock/batches?product_id={eggs}&include_closed=true"
        ))
        .await;
    let statuses: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["closed", "open"], "expiry order: OLD then NEW");

    // Nothing ever stocked here: a shortfall of everything; no such place: 404.
    let empty = desk.location("EMPTY").await;
    assert_short(
        desk.adjust(eggs, empty, json!(-1), json!({ "reason": "lost" }))
            .await,
        0.0,
    );
    let (status, body) = desk
        .adjust(eggs, Uuid::now_v7(), json!(-1), json!({ "reason": "lost" }))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("locations.not_found"))
    );
    assert_eq!(body["details"]["field"], "location_id");

    // `other` needs a note.
    let (status, body) = desk
        .adjust(eggs, here, json!(-1), json!({ "reason": "other" }))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"]["fields"][0]["field"], "note");
    assert_verified(&app).await;
    app.stop().await;
}

fn assert_short((status, body): (u16, Value), available: f64) -> Value {
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "stock.insufficient", "{body}");
    assert_eq!(
        body["details"]["available"].as_f64(),
        Some(available),
        "{body}"
    );
    body
}

#[tokio::test]
async fn archived_products_and_inactive_locations_take_no_new_stock_but_can_ship() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let old = desk.product("OLD-1", "pcs", json!({})).await;
    desk.add(old, here, json!(5), json!({})).await;
    let (status, _) = desk
        .send(
            "PATCH",
            &format!("/api/v1/products/{old}"),
            Some(&json!({ "status": "archived" })),
        )
        .await;
    assert_eq!(status, 200);
    let response = app
        .call(
            "POST",
            "/api/v1/stock/adjustments",
            Some(&desk.user.access_token),
            Some(&json!({ "product_id": old, "location_id": here, "quantity": 1, "reason": "found" })),
        )
        .await;
    assert_envelope(response, 409, "conflict", "products.archived").await;
    desk.add(old, here, json!(-2), json!({ "reason": "damaged" }))
        .await;

    // Its unit cannot change any more, and it cannot be deleted.
    let (status, body) = desk
        .send(
            "PATCH",
            &format!("/api/v1/products/{old}"),
            Some(&json!({ "unit": "kg" })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("products.in_use"))
    );
    let (status, body) = desk
        .send("DELETE", &format!("/api/v1/products/{old}"), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("products.in_use"))
    );
    let (status, body) = desk
        .send("DELETE", &format!("/api/v1/locations/{here}"), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("locations.in_use"))
    );

    let closed = desk.location("WH-CLOSED").await;
    desk.send(
        "PATCH",
        &format!("/api/v1/locations/{closed}"),
        Some(&json!({ "active": false })),
    )
    .await;
    let fresh = desk.product("NEW-1", "pcs", json!({})).await;
    let (status, body) = desk.adjust(fresh, closed, json!(1), json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("locations.inactive"))
    );
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_transfer_moves_the_exact_batches_and_a_short_line_leaves_no_trace() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let (from, to) = (desk.location("FROM").await, desk.location("TO").await);
    let juice = desk
        .product("JUICE", "l", json!({ "tracks_expiry": true }))
        .await;
    let cups = desk.product("CUPS", "pcs", json!({})).await;
    let first = desk
        .add(
            juice,
            from,
            json!(2.5),
            json!({ "lot": "J1", "expiry": day(40), "unit_cost": 120, "currency": "BDT" }),
        )
        .await;
    desk.add(
        juice,
        from,
        json!(4),
        json!({ "lot": "J2", "expiry": day(60) }),
    )
    .await;
    desk.add(cups, from, json!(3), json!({})).await;

    let (status, transfer) = desk
        .post(
            "/api/v1/stock/transfers",
            json!({
                "from_location_id": from,
                "to_location_id": to,
                "lines": [{ "product_id": juice, "quantity": 3.5 }, { "product_id": cups, "quantity": 1 }],
                "note": "restock the shop",
            }),
        )
        .await;
    assert_eq!(status, 201, "{transfer}");
    let kinds: Vec<&str> = transfer["movements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "transfer_out").count(), 3);
    assert_eq!(kinds.iter().filter(|k| **k == "transfer_in").count(), 3);
    assert!(
        transfer["movements"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["reference_type"] == "transfer" && m["reference_id"] == transfer["id"])
    );
    assert_eq!(desk.on_hand(juice, from).await, json!(3));
    assert_eq!(desk.on_hand(juice, to).await, json!(3.5));
    // Lot, expiry and cost travelled with the stock.
    let arrived = desk
        .get(&format!(
            "/api/v1/stock/batches?product_id={juice}&location_id={to}"
        ))
        .await;
    let j1 = arrived["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["lot"] == "J1")
        .expect("J1 arrived")
        .clone();
    assert_eq!(j1["quantity"], json!(2.5));
    assert_eq!(j1["expiry"], json!(day(40)));
    assert_eq!(
        (j1["unit_cost"].clone(), j1["currency"].clone()),
        (json!(120), json!("BDT"))
    );
    assert_ne!(
        j1["id"], first["movements"][0]["batch_id"],
        "a new batch at the destination"
    );
    let detail = desk
        .get(&format!(
            "/api/v1/stock/transfers/{}",
            transfer["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(detail["movements"].as_array().unwrap().len(), 6);
    assert_eq!(detail["lines"][0]["quantity"], json!(3.5));

    // One short line: 409 naming it, and nothing anywhere changed.
    let before = snapshot(&desk).await;
    let short = desk
        .post(
            "/api/v1/stock/transfers",
            json!({
                "from_location_id": from,
                "to_location_id": to,
                "lines": [{ "product_id": juice, "quantity": 1 }, { "product_id": cups, "quantity": 5 }],
            }),
        )
        .await;
    let envelope = assert_short(short, 2.0);
    assert_eq!(envelope["details"]["line"], 1);
    assert_eq!(
        snapshot(&desk).await,
        before,
        "no trace of the refused transfer"
    );
    let transfers = desk.get("/api/v1/stock/transfers").await;
    assert_eq!(transfers["data"].as_array().unwrap().len(), 1);

    // A named batch: exactly that one.
    let j2 = desk
        .get(&format!(
            "/api/v1/stock/batches?product_id={juice}&location_id={from}"
        ))
        .await["data"][0]["id"]
        .clone();
    let (status, named) = desk
        .post(
            "/api/v1/stock/transfers",
            json!({ "from_location_id": from, "to_location_id": to,
                    "lines": [{ "product_id": juice, "quantity": 1, "batch_id": j2 }] }),
        )
        .await;
    assert_eq!(status, 201, "{named}");
    assert_eq!(named["movements"][0]["batch_id"], j2);
    let (status, body) = desk
        .post(
            "/api/v1/stock/transfers",
            json!({ "from_location_id": from, "to_location_id": from,
                    "lines": [{ "product_id": juice, "quantity": 1 }] }),
        )
        .await;
    assert_eq!(status, 422, "same location: {body}");
    assert_verified(&app).await;
    app.stop().await;
}

/// Every level, batch and movement, to compare before and after.
async fn snapshot(desk: &Desk<'_>) -> (Value, Value, Value) {
    (
        desk.get("/api/v1/stock/levels?limit=200").await["data"].clone(),
        desk.get("/api/v1/stock/batches?include_closed=true&limit=200")
            .await["data"]
            .clone(),
        desk.get("/api/v1/stock/movements?limit=200").await["data"].clone(),
    )
}

#[tokio::test]
async fn a_cycle_count_posts_its_differences_as_count_movements() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let (here, there) = (desk.location("WH1").await, desk.location("WH2").await);
    let soap = desk.product("SOAP", "pcs", json!({})).await;
    let a = batch_of(&desk.add(soap, here, json!(10), json!({ "lot": "A" })).await);
    let b = batch_of(&desk.add(soap, here, json!(4), json!({ "lot": "B" })).await);
    let elsewhere = batch_of(&desk.add(soap, there, json!(1), json!({})).await);

    let (status, count) = desk
        .post(
            "/api/v1/stock/counts",
            json!({ "location_id": here, "lines": [
                { "batch_id": a, "counted": 7 },
                { "batch_id": b, "counted": 4 },
            ] }),
        )
        .await;
    assert_eq!(status, 201, "{count}");
    assert_eq!(count["lines"][0]["expected"], json!(10));
    assert_eq!(count["lines"][0]["difference"], json!(-3));
    assert_eq!(count["lines"][1]["difference"], json!(0));
    let movements = count["movements"].as_array().unwrap();
    assert_eq!(movements.len(), 1, "only differences post");
    assert_eq!(movements[0]["kind"], "count");
    assert_eq!(movements[0]["quantity"], json!(-3));
    assert_eq!(desk.on_hand(soap, here).await, json!(11));
    let detail = desk
        .get(&format!(
            "/api/v1/stock/counts/{}",
            count["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(detail["movements"], count["movements"]);

    // A removal may name its lot: only that lot's batch gives, and only what it holds.
    let body = desk
        .add(
            soap,
            here,
            json!(-2),
            json!({ "reason": "damaged", "lot": "B" }),
        )
        .await;
    assert_eq!(batch_of(&body), b);
    assert_short(
        desk.adjust(
            soap,
            here,
            json!(-3),
            json!({ "reason": "damaged", "lot": "B" }),
        )
        .await,
        2.0,
    );

    for (lines, field) in [
        (
            json!([{ "batch_id": elsewhere, "counted": 1 }]),
            "lines[0].batch_id",
        ),
        (
            json!([{ "batch_id": a, "counted": -1 }]),
            "lines[0].counted",
        ),
        (
            json!([{ "batch_id": a, "counted": 1.5 }]),
            "lines[0].counted",
        ),
        (
            json!([{ "batch_id": a, "counted": 1 }, { "batch_id": a, "counted": 2 }]),
            "lines[1].batch_id",
        ),
    ] {
        let (status, body) = desk
            .post(
                "/api/v1/stock/counts",
                json!({ "location_id": here, "lines": lines }),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["details"]["fields"][0]["field"], field, "{body}");
    }
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn the_ledger_answers_levels_as_of_a_past_instant_and_cannot_be_rewritten() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let tea = desk.product("TEA", "g", json!({})).await;
    desk.add(tea, here, json!(500), json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    desk.add(tea, here, json!(-120.5), json!({ "reason": "damaged" }))
        .await;

    let now = desk
        .get(&format!("/api/v1/stock/levels?product_id={tea}"))
        .await;
    assert_eq!(now["data"][0]["on_hand"], json!(379.5));
    assert_eq!(now["data"][0]["available"], json!(379.5));
    let then = desk
        .get(&format!(
            "/api/v1/stock/levels?product_id={tea}&as_of={}",
            between
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .replace('+', "%2B")
        ))
        .await;
    assert_eq!(then["data"][0]["on_hand"], json!(500));
    assert_eq!(then["data"][0]["reserved"], Value::Null);

    let ledger = desk
        .get(&format!(
            "/api/v1/stock/movements?product_id={tea}&kind=adjustment"
        ))
        .await;
    let rows = ledger["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["quantity"], json!(-120.5), "newest first");
    assert_eq!(rows[0]["reason"], "damaged");
    assert_eq!(rows[0]["actor_id"], json!(desk.user.user_id));
    assert!(rows[0]["request_id"].is_string());

    use sea_orm::ConnectionTrait;
    for statement in [
        "UPDATE stock_movements SET quantity = 0",
        "DELETE FROM stock_movements",
    ] {
        let refused = app.store.reader().execute_unprepared(statement).await;
        assert!(refused.is_err(), "{statement} must be refused");
    }
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn ten_concurrent_requests_with_one_idempotency_key_have_one_effect() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let rice = desk.product("RICE", "kg", json!({})).await;
    desk.add(rice, here, json!(100), json!({})).await;
    let body =
        json!({ "product_id": rice, "location_id": here, "quantity": -2.5, "reason": "damaged" });
    let requests = (0..10).map(|_| {
        app.client
            .post(app.url("/api/v1/stock/adjustments"))
            .bearer_auth(&desk.user.access_token)
            .header("Idempotency-Key", "one-pallet-dropped")
            .json(&body)
            .send()
    });
    let mut answers = Vec::new();
    for response in futures::future::join_all(requests).await {
        let response = response.unwrap();
        let status = response.status().as_u16();
        answers.push((status, response.json::<Value>().await.unwrap()));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 201);
    assert_eq!(desk.on_hand(rice, here).await, json!(97.5));
    let ledger = desk
        .get(&format!("/api/v1/stock/movements?product_id={rice}"))
        .await;
    assert_eq!(ledger["data"].as_array().unwrap().len(), 2, "one effect");
    assert_verified(&app).await;
    app.stop().await;
}

/// Sends `bodies` to `path` all at once; returns each status and body.
async fn at_once(desk: &Desk<'_>, path: &str, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let calls = bodies.iter().map(|b| desk.post(path, b.clone()));
    futures::future::join_all(calls).await
}

#[tokio::test]
async fn sixty_four_concurrent_removals_of_fifty_units_sell_exactly_fifty() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let hot = desk.product("HOT", "pcs", json!({})).await;
    // Three batches, so concurrent removals cross batch boundaries.
    for (lot, n) in [("X", 20), ("Y", 20), ("Z", 10)] {
        desk.add(hot, here, json!(n), json!({ "lot": lot })).await;
    }
    let body =
        json!({ "product_id": hot, "location_id": here, "quantity": -1, "reason": "damaged" });
    let answers = at_once(&desk, "/api/v1/stock/adjustments", vec![body; 64]).await;
    let ok = answers.iter().filter(|(s, _)| *s == 201).count();
    let short: Vec<_> = answers.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!(ok, 50, "{answers:?}");
    assert_eq!(short.len(), 14);
    assert!(short.iter().all(|(_, b)| b["code"] == "stock.insufficient"));
    assert_eq!(desk.on_hand(hot, here).await, json!(0));
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn sixty_four_concurrent_transfers_out_of_one_location_move_exactly_what_is_there() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let (from, to) = (desk.location("FROM").await, desk.location("TO").await);
    let hot = desk.product("HOT", "pcs", json!({})).await;
    desk.add(hot, from, json!(50), json!({})).await;
    let body = json!({ "from_location_id": from, "to_location_id": to,
                       "lines": [{ "product_id": hot, "quantity": 1 }] });
    let answers = at_once(&desk, "/api/v1/stock/transfers", vec![body; 64]).await;
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == 201).count(),
        50,
        "{answers:?}"
    );
    assert_eq!(
        answers
            .iter()
            .filter(|(s, b)| *s == 409 && b["code"] == "stock.insufficient")
            .count(),
        14
    );
    assert_eq!(desk.on_hand(hot, from).await, json!(0));
    assert_eq!(desk.on_hand(hot, to).await, json!(50));
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn sixty_four_concurrent_mixed_changes_over_five_products_keep_levels_equal_to_the_ledger() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let (a, b) = (desk.location("A").await, desk.location("B").await);
    let mut products = Vec::new();
    for n in 0..5 {
        let p = desk.product(&format!("MIX-{n}"), "pcs", json!({})).await;
        desk.add(p, a, json!(10), json!({})).await;
        desk.add(p, b, json!(10), json!({})).await;
        products.push(p);
    }
    let mut calls = Vec::new();
    for i in 0..64usize {
        let p = products[i % 5];
        let (here, there) = if i % 2 == 0 { (a, b) } else { (b, a) };
        calls.push(match i % 3 {
            0 => ("/api/v1/stock/adjustments", json!({ "product_id": p, "location_id": here, "quantity": 3, "reason": "found" })),
            1 => ("/api/v1/stock/adjustments", json!({ "product_id": p, "location_id": here, "quantity": -4, "reason": "damaged" })),
            _ => ("/api/v1/stock/transfers", json!({ "from_location_id": here, "to_location_id": there,
                    "lines": [{ "product_id": p, "quantity": 2 }, { "product_id": products[(i + 1) % 5], "quantity": 1 }] })),
        });
    }
    let answers =
        futures::future::join_all(calls.into_iter().map(|(path, body)| desk.post(path, body)))
            .await;
    for (status, body) in &answers {
        assert!(
            *status == 201 || (*status == 409 && body["code"] == "stock.insufficient"),
            "only successes and shortfalls: {status} {body}"
        );
    }
    // Every level equals the sum of its ledger.
    let levels = desk.get("/api/v1/stock/levels?limit=200").await;
    for level in levels["data"].as_array().unwrap() {
        let movements = desk
            .get(&format!(
                "/api/v1/stock/movements?product_id={}&location_id={}&limit=200",
                level["product_id"].as_str().unwrap(),
                level["location_id"].as_str().unwrap()
            ))
            .await;
        let sum: f64 = movements["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["quantity"].as_f64().unwrap())
            .sum();
        assert_eq!(level["on_hand"].as_f64(), Some(sum), "{level}");
        assert!(sum >= 0.0);
    }
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn depot_verify_exits_non_zero_when_a_batch_is_altered_behind_its_back() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let here = desk.location("WH1").await;
    let salt = desk.product("SALT", "kg", json!({})).await;
    let batch = batch_of(&desk.add(salt, here, json!(7.25), json!({})).await);
    let url = app.db.url();
    let dir = tempfile::tempdir().unwrap();
    let clean = crate::process::run(dir.path(), &[("DATABASE_URL", url)], &["verify"]);
    let out = crate::process::text(&clean.stdout);
    assert!(
        clean.status.success(),
        "{out}\n{}",
        crate::process::text(&clean.stderr)
    );
    assert!(
        out.contains("1 batches, 1 levels, 1 movements: 0 mismatches"),
        "{out}"
    );

    use sea_orm::ConnectionTrait;
    let tx = app.store.begin().await.unwrap();
    tx.execute_unprepared("UPDATE batches SET quantity = quantity + 1000")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let broken = crate::process::run(dir.path(), &[("DATABASE_URL", url)], &["verify"]);
    let out = crate::process::text(&broken.stdout);
    assert!(!broken.status.success(), "{out}");
    assert!(out.contains(&format!("MISMATCH batch {batch}")), "{out}");
    assert!(
        out.contains("on hand 7.25 but its batches sum to 8.25"),
        "{out}"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_stock_and_catalogue_write_names_the_field_it_refuses() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let (here, there) = (desk.location("WH1").await, desk.location("WH2").await);
    let product = desk.product("P-1", "pcs", json!({})).await;
    let (_, category) = desk
        .post("/api/v1/categories", json!({ "name": "C" }))
        .await;
    let category = id(&category);
    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "POST",
            "/api/v1/categories".into(),
            json!({ "name": "" }),
            "name",
        ),
        (
            "PATCH",
            format!("/api/v1/categories/{category}"),
            json!({ "depletion_policy": "newest" }),
            "depletion_policy",
        ),
        (
            "POST",
            "/api/v1/products".into(),
            json!({ "sku": "X", "name": "x" }),
            "unit",
        ),
        (
            "PATCH",
            format!("/api/v1/products/{product}"),
            json!({ "reorder_point": 0.5 }),
            "reorder_point",
        ),
        (
            "POST",
            "/api/v1/locations".into(),
            json!({ "code": "A B", "name": "x" }),
            "code",
        ),
        (
            "PATCH",
            format!("/api/v1/locations/{here}"),
            json!({ "active": "yes" }),
            "active",
        ),
        (
            "POST",
            "/api/v1/stock/adjustments".into(),
            json!({ "product_id": product, "location_id": here, "quantity": 1, "reason": "gift" }),
            "reason",
        ),
        (
            "POST",
            "/api/v1/stock/adjustments".into(),
            json!({ "product_id": product, "location_id": here, "quantity": 1, "reason": "found", "currency": "usd", "unit_cost": 5 }),
            "currency",
        ),
        (
            "POST",
            "/api/v1/stock/transfers".into(),
            json!({ "from_location_id": here, "to_location_id": Uuid::now_v7(), "lines": [] }),
            "lines",
        ),
        (
            "POST",
            "/api/v1/stock/transfers".into(),
            json!({ "from_location_id": here, "to_location_id": there, "lines": [{ "product_id": product, "quantity": -1 }] }),
            "lines[0].quantity",
        ),
        (
            "POST",
            "/api/v1/stock/counts".into(),
            json!({ "location_id": here, "lines": [{ "batch_id": "nope", "counted": 1 }] }),
            "lines[0].batch_id",
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, answer) = desk.send(method, &path, Some(&body)).await;
        assert_eq!(status, 422, "{method} {path} {body}: {answer}");
        // A value of the wrong shape is named by its path; a well-formed but invalid one by the
        // list of failing fields.
        let named: Vec<String> = match answer["code"].as_str() {
            Some("request.invalid_body") => {
                let reason = answer["details"]["reason"].as_str().unwrap();
                if reason.contains(&format!("`{field}`")) {
                    vec![field.to_owned()]
                } else {
                    vec![reason.split(':').next().unwrap().to_owned()]
                }
            }
            Some("validation.failed") => answer["details"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["field"].as_str().unwrap().to_owned())
                .collect(),
            other => panic!("{method} {path}: unexpected code {other:?}"),
        };
        assert!(
            named.iter().any(|n| n == field),
            "{method} {path}: {field} not in {named:?}"
        );
    }
    assert_verified(&app).await;
    app.stop().await;
}
