//! Reports through HTTP: every report type on seeded data against figures worked out by hand
//! (and the ledger), jobs that are their owner's, personal data redacted without
//! `reports.pii`, the size limit, cancellation, expiry — on the local store and on a real
//! S3-compatible server (moto, started by the test) — and the dashboard's cached figures.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use depot_domain::clock::ManualClock;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Http, TestApp, spawn_app, spawn_app_on, spawn_app_with};
use crate::purchasing::{draft, signed_in, supplier};
use crate::sales::Shop;
use crate::stock::{Desk, day, id};

/// A CSV as rows keyed by column.
type Csv = Vec<BTreeMap<String, String>>;

fn parse_csv(text: &str) -> Csv {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn num(row: &BTreeMap<String, String>, column: &str) -> f64 {
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column} is not a number in {row:?}"))
}

/// Requests a report, asserting it was queued.
async fn request(desk: &Desk<'_>, kind: &str, params: Value) -> Uuid {
    let (status, body) = desk
        .post("/api/v1/reports", json!({ "type": kind, "params": params }))
        .await;
    assert_eq!(status, 202, "{kind} {params}: {body}");
    id(&body)
}

/// Waits until the job has ended; the job.
async fn ended(desk: &Desk<'_>, job: Uuid) -> Value {
    for _ in 0..400 {
        let body = desk.get(&format!("/api/v1/reports/{job}")).await;
        if !matches!(body["status"].as_str(), Some("queued" | "running")) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("report {job} did not end");
}

/// The CSV of a succeeded job, following a redirect to object storage.
async fn download(desk: &Desk<'_>, job: Uuid) -> String {
    let response = desk
        .app
        .call(
            "GET",
            &format!("/api/v1/reports/{job}/download"),
            Some(&desk.user.access_token),
            None,
        )
        .await;
    let response = match response.status().as_u16() {
        200 => response,
        303 => {
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            // A presigned URL: no credentials of ours.
            reqwest::get(location).await.unwrap()
        }
        other => panic!(
            "download answered {other}: {}",
            response.text().await.unwrap()
        ),
    };
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// Runs a report to success; its rows.
async fn report(desk: &Desk<'_>, kind: &str, params: Value) -> Csv {
    let job = request(desk, kind, params.clone()).await;
    let done = ended(desk, job).await;
    assert_eq!(done["status"], "succeeded", "{kind} {params}: {done}");
    assert_eq!(done["progress"], 100);
    let rows = parse_csv(&download(desk, job).await);
    assert_eq!(done["rows"], rows.len(), "{kind}: rows counted as written");
    rows
}

const ANALYST: &[&str] = &["reports.read", "reports.pii"];

/// A buyer who may draft purchase orders, and their supplier.
async fn buyer_with_supplier(app: &TestApp) -> (Desk<'_>, Uuid) {
    let buyer = signed_in(
        app,
        "buyer",
        &[
            "purchase_orders.read",
            "purchase_orders.create",
            "suppliers.manage",
        ],
    )
    .await;
    let acme = supplier(&buyer).await;
    (buyer, acme)
}

/// Stock in two warehouses at known costs; what each report must say, worked out by hand.
struct Seeded<'a> {
    shop: Shop<'a>,
    analyst: Desk<'a>,
    apple: Uuid,
    butter: Uuid,
    cold: Uuid,
    wh2: Uuid,
    /// An instant after the receipts and before the removal.
    between: chrono::DateTime<Utc>,
}

async fn seed(app: &TestApp) -> Seeded<'_> {
    let shop = Shop::open(app).await;
    let desk = &shop.desk;
    let (status, cold) = desk
        .post("/api/v1/categories", json!({ "name": "Cold" }))
        .await;
    assert_eq!(status, 201, "{cold}");
    let cold = id(&cold);
    let apple = desk.product("APL", "pcs", json!({})).await;
    let butter = desk
        .product(
            "BTR",
            "kg",
            json!({ "tracks_expiry": true, "category_id": cold }),
        )
        .await;
    let wh1 = shop.here;
    let wh2 = desk.location("WH2").await;
    let cost = |lot: &str, cost: i64, currency: &str| json!({ "lot": lot, "unit_cost": cost, "currency": currency });
    desk.add(apple, wh1, json!(10), cost("L1", 150, "BDT"))
        .await;
    desk.add(apple, wh1, json!(5), cost("L2", 200, "BDT")).await;
    desk.add(apple, wh2, json!(3), cost("L3", 99, "USD")).await;
    let mut soon = cost("E1", 1000, "BDT");
    soon["expiry"] = json!(day(5));
    desk.add(butter, wh1, json!(4), soon).await;
    let mut late = cost("E2", 1200, "BDT");
    late["expiry"] = json!(day(400));
    desk.add(butter, wh1, json!(6), late).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, body) = desk
        .adjust(
            apple,
            wh1,
            json!(-4),
            json!({ "lot": "L1", "reason": "damaged" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let analyst = signed_in(app, "analyst", ANALYST).await;
    Seeded {
        shop,
        analyst,
        apple,
        butter,
        cold,
        wh2,
        between,
    }
}

fn find<'r>(rows: &'r Csv, column: &str, value: &str) -> Vec<&'r BTreeMap<String, String>> {
    rows.iter().filter(|r| r[column] == value).collect()
}

#[tokio::test]
async fn stock_reports_give_the_figures_of_the_ledger() {
    let app = spawn_app_with(|s| s.report_page_rows = 2).await; // every walk crosses pages
    let s = seed(&app).await;
    let (apple, butter) = (s.apple.to_string(), s.butter.to_string());
    let wh1 = s.shop.here.to_string();

    // On hand now: apple 6 (L1) + 5 (L2) at WH1 and 3 at WH2; butter 4 + 6 at WH1.
    let on_hand = report(&s.analyst, "stock_on_hand", json!({})).await;
    assert_eq!(on_hand.len(), 3, "{on_hand:?}");
    let level = |rows: &Csv, product: &str, location: &str| -> f64 {
        let found: Vec<_> = rows
            .iter()
            .filter(|r| r["product_id"] == product && r["location_id"] == location)
            .collect();
        assert_eq!(found.len(), 1, "{product}@{location} in {rows:?}");
        num(found[0], "on_hand")
    };
    assert_eq!(level(&on_hand, &apple, &wh1), 11.0);
    assert_eq!(level(&on_hand, &apple, &s.wh2.to_string()), 3.0);
    assert_eq!(level(&on_hand, &butter, &wh1), 10.0);
    let butter_row = find(&on_hand, "product_id", &butter)[0].clone();
    assert_eq!(
        (
            butter_row["sku"].as_str(),
            butter_row["category"].as_str(),
            butter_row["location_code"].as_str()
        ),
        ("BTR", "Cold", "WH1")
    );
    // The same as the levels the API shows.
    for row in &on_hand {
        let shown = s
            .shop
            .desk
            .on_hand(
                row["product_id"].parse().unwrap(),
                row["location_id"].parse().unwrap(),
            )
            .await;
        let shown = shown
            .as_f64()
            .or_else(|| shown.as_str()?.parse().ok())
            .expect("a quantity");
        assert_eq!(shown, num(row, "on_hand"));
    }
    // Filtered, and as the ledger had it before the removal.
    let cold = report(
        &s.analyst,
        "stock_on_hand",
        json!({ "category_id": s.cold }),
    )
    .await;
    assert_eq!(cold.len(), 1);
    assert_eq!(cold[0]["product_id"], butter);
    let before = report(
        &s.analyst,
        "stock_on_hand",
        json!({ "as_of": s.between.to_rfc3339(), "location_id": s.shop.here }),
    )
    .await;
    assert_eq!(level(&before, &apple, &wh1), 15.0);
    assert_eq!(level(&before, &butter, &wh1), 10.0);

    // Valuation: each batch a cost layer. Apple BDT 6×150 + 5×200 = 1900 over 11 (average
    // 172.7 → 173); apple USD 3×99 = 297; butter 4×1000 + 6×1200 = 11200 over 10.
    let by_product = report(
        &s.analyst,
        "stock_valuation",
        json!({ "group_by": "product" }),
    )
    .await;
    let value = |rows: &Csv, key_column: &str, key: &str, currency: &str| -> (f64, f64) {
        let found: Vec<_> = rows
            .iter()
            .filter(|r| r[key_column] == key && r["currency"] == currency)
            .collect();
        assert_eq!(found.len(), 1, "{key} {currency} in {rows:?}");
        (num(found[0], "quantity"), num(found[0], "value_minor"))
    };
    assert_eq!(
        value(&by_product, "product_id", &apple, "BDT"),
        (11.0, 1900.0)
    );
    assert_eq!(
        value(&by_product, "product_id", &apple, "USD"),
        (3.0, 297.0)
    );
    assert_eq!(
        value(&by_product, "product_id", &butter, "BDT"),
        (10.0, 11200.0)
    );
    let apple_bdt = by_product
        .iter()
        .find(|r| r["product_id"] == apple && r["currency"] == "BDT")
        .unwrap();
    assert_eq!(apple_bdt["average_unit_cost_minor"], "173");
    assert_eq!(apple_bdt["layers"], "2");
    let by_location = report(
        &s.analyst,
        "stock_valuation",
        json!({ "group_by": "location" }),
    )
    .await;
    assert_eq!(
        value(&by_location, "location_id", &wh1, "BDT"),
        (21.0, 13100.0)
    );
    assert_eq!(
        value(&by_location, "location_id", &s.wh2.to_string(), "USD"),
        (3.0, 297.0)
    );
    let by_category = report(
        &s.analyst,
        "stock_valuation",
        json!({ "group_by": "category" }),
    )
    .await;
    assert_eq!(
        value(&by_category, "category_id", &s.cold.to_string(), "BDT"),
        (10.0, 11200.0)
    );
    assert_eq!(
        value(&by_category, "category_id", "", "BDT"),
        (11.0, 1900.0)
    );
    // Before the removal apple BDT was 10×150 + 5×200.
    let then = report(
        &s.analyst,
        "stock_valuation",
        json!({ "as_of": s.between.to_rfc3339() }),
    )
    .await;
    assert_eq!(value(&then, "product_id", &apple, "BDT"), (15.0, 2500.0));

    // The ledger, as the API lists it: every movement of today, the same quantities.
    let ledger = report(
        &s.analyst,
        "movements",
        json!({ "from": day(0), "to": day(0) }),
    )
    .await;
    let listed = s.shop.desk.get("/api/v1/stock/movements?limit=100").await;
    let listed = listed["data"].as_array().unwrap();
    assert_eq!(ledger.len(), listed.len());
    assert_eq!(ledger.len(), 6);
    let sum = |product: &str| -> f64 {
        find(&ledger, "product_id", product)
            .iter()
            .map(|r| num(r, "quantity"))
            .sum()
    };
    assert_eq!((sum(&apple), sum(&butter)), (14.0, 10.0));
    let only_issues = report(
        &s.analyst,
        "movements",
        json!({ "from": day(-1), "to": day(0), "kind": "adjustment", "product_id": s.apple,
                "location_id": s.shop.here }),
    )
    .await;
    assert_eq!(only_issues.len(), 3, "{only_issues:?}");

    // Expiring within 30 days: the butter lot E1 only, 5 days left.
    let expiring = report(&s.analyst, "expiring_batches", json!({ "within_days": 30 })).await;
    assert_eq!(expiring.len(), 1, "{expiring:?}");
    assert_eq!(
        (
            expiring[0]["lot"].as_str(),
            expiring[0]["days_left"].as_str()
        ),
        ("E1", "5")
    );
    assert_eq!(num(&expiring[0], "quantity"), 4.0);
    crate::stock::assert_verified(&app).await;
}

#[tokio::test]
async fn purchase_and_sales_reports_sum_what_was_ordered_and_sold() {
    let app = spawn_app_with(|s| s.report_page_rows = 2).await; // every walk crosses pages
    let s = seed(&app).await;
    let (buyer, acme) = buyer_with_supplier(&app).await;
    let po = id(&draft(&buyer, acme, s.apple, 8).await);

    let orders = report(&s.analyst, "purchase_orders", json!({})).await;
    assert_eq!(orders.len(), 1);
    let row = &orders[0];
    assert_eq!(row["purchase_order_id"], po.to_string());
    assert_eq!(
        (
            row["supplier"].as_str(),
            row["state"].as_str(),
            row["currency"].as_str()
        ),
        ("Acme Dairy", "draft", "BDT")
    );
    assert_eq!(
        (num(row, "ordered_quantity"), num(row, "received_quantity")),
        (8.0, 0.0)
    );
    assert_eq!(
        (num(row, "total_minor"), num(row, "received_percent")),
        (200_000.0, 0.0)
    );
    let none = report(&s.analyst, "purchase_orders", json!({ "state": "sent" })).await;
    assert!(none.is_empty());

    // Two confirmed orders (2 × 500 and 1 × 500 + 3 kg butter × 1250) and a draft that
    // does not count.
    let first = id(&s.shop.order(&[(s.apple, json!(2), 500)]).await);
    let second = id(&s
        .shop
        .order(&[(s.apple, json!(1), 500), (s.butter, json!(3), 1250)])
        .await);
    s.shop.order(&[(s.apple, json!(1), 999)]).await;
    for order in [first, second] {
        let (status, body) = s.shop.step(order, "confirm").await;
        assert_eq!(status, 200, "{body}");
    }
    let by_day = report(&s.analyst, "sales_summary", json!({ "group_by": "day" })).await;
    assert_eq!(by_day.len(), 1, "{by_day:?}");
    assert_eq!(by_day[0]["day"], day(0));
    assert_eq!(
        (
            num(&by_day[0], "orders"),
            num(&by_day[0], "quantity"),
            num(&by_day[0], "total_minor")
        ),
        (2.0, 6.0, 5_250.0)
    );
    let by_product = report(
        &s.analyst,
        "sales_summary",
        json!({ "group_by": "product" }),
    )
    .await;
    let apple = find(&by_product, "product_id", &s.apple.to_string())[0];
    assert_eq!(
        (
            num(apple, "orders"),
            num(apple, "quantity"),
            num(apple, "total_minor")
        ),
        (2.0, 3.0, 1_500.0)
    );
    let butter = find(&by_product, "product_id", &s.butter.to_string())[0];
    assert_eq!(
        (num(butter, "quantity"), num(butter, "total_minor")),
        (3.0, 3_750.0)
    );
    let by_customer = report(
        &s.analyst,
        "sales_summary",
        json!({ "group_by": "customer" }),
    )
    .await;
    assert_eq!(by_customer.len(), 1);
    assert_eq!(by_customer[0]["customer_id"], s.shop.customer.to_string());
    assert_eq!(num(&by_customer[0], "total_minor"), 5_250.0);
}

#[tokio::test]
async fn bad_requests_name_every_failing_field_and_jobs_are_their_owners() {
    let app = spawn_app().await;
    let analyst = signed_in(&app, "analyst", ANALYST).await;
    let (status, body) = analyst
        .post("/api/v1/reports", json!({ "type": "profit", "params": {} }))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"]["fields"][0]["field"], "type");
    let (status, body) = analyst
        .post(
            "/api/v1/reports",
            json!({ "type": "movements", "params": { "from": "2020-01-01", "to": "2026-01-01", "colour": 1 } }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"params.colour") && fields.contains(&"params.to"),
        "{body}"
    );
    let (status, body) = analyst
        .post(
            "/api/v1/reports",
            json!({ "type": "expiring_batches", "params": { "within_days": 7 }, "format": "xlsx" }),
        )
        .await;
    assert_eq!(
        (status, body["details"]["fields"][0]["field"].as_str()),
        (422, Some("format"))
    );

    let job = request(&analyst, "expiring_batches", json!({ "within_days": 7 })).await;
    let other = signed_in(&app, "other", &["reports.read"]).await;
    for path in [
        format!("/api/v1/reports/{job}"),
        format!("/api/v1/reports/{job}/download"),
    ] {
        let (status, body) = other.send("GET", &path, None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("reports.not_found")),
            "{path}"
        );
    }
    let (status, _) = other
        .post(&format!("/api/v1/reports/{job}/cancel"), json!({}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(other.get("/api/v1/reports").await["data"], json!([]));
    let manager = signed_in(&app, "manager", &["reports.read", "reports.manage_all"]).await;
    assert_eq!(
        ended(&manager, job).await["status"],
        "succeeded",
        "a manager sees everyone's"
    );
    // Ended: it cannot be cancelled, and nothing was stored twice.
    let (status, body) = analyst
        .post(&format!("/api/v1/reports/{job}/cancel"), json!({}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("reports.not_cancellable"))
    );
    assert_eq!(body["details"]["status"], "succeeded");
    let count: i64 = app.scalar("SELECT COUNT(*) FROM report_jobs").await;
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_sales_user_sees_stars_where_customers_personal_data_would_be() {
    let app = spawn_app().await;
    let shop = Shop::open(&app).await;
    let (status, body) = shop
        .seller
        .post(
            "/api/v1/customers",
            json!({ "name": "Rahim Traders", "email": "rahim@example.com",
                    "phone": "+8801711000001", "address": "12 Dhanmondi, Dhaka" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let customer = id(&body);
    let product = shop.desk.product("TEA", "pcs", json!({})).await;
    shop.desk.add(product, shop.here, json!(5), json!({})).await;
    let (status, order) = shop
        .seller
        .post(
            "/api/v1/sales-orders",
            json!({ "customer_id": customer, "location_id": shop.here, "currency": "BDT",
                    "lines": [{ "product_id": product, "quantity": 2, "unit_price": 300 }] }),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let (status, body) = shop.step(id(&order), "confirm").await;
    assert_eq!(status, 200, "{body}");

    let sales = signed_in(
        &app,
        "rep",
        &[crate::sales::SELLER, &["reports.read"]].concat(),
    )
    .await;
    let params = json!({ "group_by": "customer" });
    let job = request(&sales, "sales_summary", params.clone()).await;
    assert_eq!(ended(&sales, job).await["shows_pii"], false);
    let rows = parse_csv(&download(&sales, job).await);
    let row = &rows[0];
    assert_eq!(row["customer_name"], "Rahim Traders");
    for column in ["customer_email", "customer_phone", "customer_address"] {
        assert_eq!(row[column], "***", "{column}");
    }
    let analyst = signed_in(&app, "analyst", ANALYST).await;
    let rows = report(&analyst, "sales_summary", params).await;
    assert_eq!(
        (
            rows[0]["customer_email"].as_str(),
            rows[0]["customer_phone"].as_str(),
            rows[0]["customer_address"].as_str()
        ),
        ("rahim@example.com", "+8801711000001", "12 Dhanmondi, Dhaka")
    );
    // The analyst's job is not the sales user's.
    let (status, _) = sales
        .send("GET", &format!("/api/v1/reports/{job}"), None)
        .await;
    assert_eq!(status, 200);
    let theirs = analyst.get("/api/v1/reports").await["data"][0]["id"].clone();
    let (status, _) = sales
        .send(
            "GET",
            &format!("/api/v1/reports/{}", theirs.as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

/// Files under the local object store.
fn stored_objects(app: &TestApp) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&app.context.settings().data_dir.join("blobs"), &mut out);
    out
}

#[tokio::test]
async fn a_report_over_its_limit_fails_and_leaves_nothing_behind() {
    let app = spawn_app_with(|s| s.report_max_rows = 2).await;
    let s = seed(&app).await;
    let job = request(
        &s.analyst,
        "movements",
        json!({ "from": day(0), "to": day(0) }),
    )
    .await;
    let done = ended(&s.analyst, job).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "reports.too_large");
    assert!(done["download_path"].is_null());
    assert!(
        stored_objects(&app).is_empty(),
        "{:?}",
        stored_objects(&app)
    );
    let (status, body) = s
        .analyst
        .send("GET", &format!("/api/v1/reports/{job}/download"), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("reports.not_ready"))
    );
    // Within the limit it runs.
    let small = report(&s.analyst, "expiring_batches", json!({ "within_days": 30 })).await;
    assert_eq!(small.len(), 1);
    assert_eq!(stored_objects(&app).len(), 1);
}

#[tokio::test]
async fn an_export_is_deleted_once_its_retention_is_over() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_on(clock.clone(), |s| s.report_retention_secs = 3_600).await;
    let analyst = signed_in(&app, "analyst", ANALYST).await;
    let job = request(&analyst, "stock_on_hand", json!({})).await;
    let done = ended(&analyst, job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(stored_objects(&app).len(), 1);
    assert_eq!(app.run_job("report_expiry").await, 0, "not yet");
    clock.advance(chrono::Duration::seconds(3_601));
    assert_eq!(app.run_job("report_expiry").await, 1);
    assert!(stored_objects(&app).is_empty());
    // Signed in again: an hour on, the first token has expired.
    let mut analyst = analyst;
    let fresh = app.login(&analyst.user.email, &analyst.user.password).await;
    analyst.user.access_token = fresh["access_token"].as_str().unwrap().to_owned();
    let after = analyst.get(&format!("/api/v1/reports/{job}")).await;
    assert_eq!(after["status"], "expired");
    let (status, _) = analyst
        .send("GET", &format!("/api/v1/reports/{job}/download"), None)
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn an_identical_request_while_one_is_active_returns_that_job() {
    let app = spawn_app().await;
    let analyst = signed_in(&app, "analyst", ANALYST).await;
    let body = json!({ "type": "stock_valuation", "params": { "group_by": "location" } });
    let calls = (0..8).map(|_| analyst.post("/api/v1/reports", body.clone()));
    let answers = futures::future::join_all(calls).await;
    let created: Vec<&(u16, Value)> = answers.iter().filter(|(s, _)| *s == 202).collect();
    assert!(!created.is_empty());
    for (status, job) in &answers {
        assert!(matches!(status, 200 | 202), "{job}");
    }
    // Whatever ran at once, no two jobs were ever active for the same request.
    let jobs = analyst.get("/api/v1/reports").await;
    let ids: std::collections::HashSet<&str> = answers
        .iter()
        .map(|(_, j)| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), jobs["data"].as_array().unwrap().len());
    // With the Idempotency-Key a retry replays the first answer.
    let response = app
        .client
        .post(app.url("/api/v1/reports"))
        .bearer_auth(&analyst.user.access_token)
        .header("Idempotency-Key", "report-once")
        .json(&json!({ "type": "expiring_batches", "params": { "within_days": 3 } }))
        .send()
        .await
        .unwrap();
    let first: Value = response.json().await.unwrap();
    let again: Value = app
        .client
        .post(app.url("/api/v1/reports"))
        .bearer_auth(&analyst.user.access_token)
        .header("Idempotency-Key", "report-once")
        .json(&json!({ "type": "expiring_batches", "params": { "within_days": 3 } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["id"], again["id"]);
}

/// moto's S3 server on a free port, with a bucket.
struct S3Server {
    child: Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn s3_server(bucket: &str) -> Option<S3Server> {
    let available = Command::new("python3")
        .args(["-c", "import moto.server"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            !depot_testkit::is_required("s3"),
            "CI must install moto (pip install 'moto[server]')"
        );
        depot_testkit::skip("reports on S3", "s3", "python3 with moto[server]");
        return None;
    }
    let port = crate::mail::free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if let Ok(r) = reqwest::Client::new()
            .put(format!("{}/{bucket}", server.endpoint))
            .send()
            .await
            && r.status().is_success()
        {
            return Some(server);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("moto did not start");
}

/// Whether the bucket holds any object (moto's ListObjectsV2, no credentials needed).
async fn bucket_keys(server: &S3Server, bucket: &str) -> Vec<String> {
    let listing = reqwest::get(format!("{}/{bucket}?list-type=2", server.endpoint))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    listing
        .split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn on_s3_an_export_is_uploaded_downloaded_by_a_presigned_url_and_expires() {
    let Some(server) = s3_server("exports").await else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let endpoint = server.endpoint.clone();
    let app = spawn_app_on(clock.clone(), move |s| {
        s.s3_bucket = Some("exports".into());
        s.s3_endpoint = Some(endpoint);
        s.s3_region = Some("us-east-1".into());
        s.s3_access_key_id = Some("testing".into());
        s.s3_secret_access_key = Some(depot_app::config::Secret::new("testing"));
        s.report_retention_secs = 3_600;
    })
    .await;
    assert_eq!(app.context.reports().storage(), "s3");
    let s = seed(&app).await;
    let rows = report(
        &s.analyst,
        "stock_valuation",
        json!({ "group_by": "location" }),
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let keys = bucket_keys(&server, "exports").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(stored_objects(&app).is_empty(), "nothing written locally");

    clock.advance(chrono::Duration::seconds(3_601));
    assert_eq!(app.run_job("report_expiry").await, 1);
    assert!(bucket_keys(&server, "exports").await.is_empty());
}

#[tokio::test]
async fn cancelling_a_running_report_stops_it_and_keeps_no_export() {
    let Some(server) = s3_server("slow").await else {
        return;
    };
    let endpoint = server.endpoint.clone();
    let app = spawn_app_with(move |s| {
        s.s3_bucket = Some("slow".into());
        s.s3_endpoint = Some(endpoint);
        s.s3_access_key_id = Some("testing".into());
        s.s3_secret_access_key = Some(depot_app::config::Secret::new("testing"));
    })
    .await;
    let analyst = signed_in(&app, "analyst", ANALYST).await;
    // Object storage stops answering: the job starts and then waits on its upload.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let job = request(&analyst, "stock_on_hand", json!({})).await;
    let mut running = false;
    for _ in 0..200 {
        if analyst.get(&format!("/api/v1/reports/{job}")).await["status"] == "running" {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(running, "the job never started");
    let (status, body) = analyst
        .post(&format!("/api/v1/reports/{job}/cancel"), json!({}))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    // Storage answers again: the run finds its claim gone and leaves nothing behind, not
    // even a part of an upload.
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut quiet = 0;
    for _ in 0..100 {
        let uploads = reqwest::get(format!("{}/slow?uploads", server.endpoint))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if bucket_keys(&server, "slow").await.is_empty() && !uploads.contains("<UploadId>") {
            quiet += 1;
            if quiet == 5 {
                break;
            }
        } else {
            quiet = 0;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(quiet, 5, "an object or an upload stayed behind");
    let after = analyst.get(&format!("/api/v1/reports/{job}")).await;
    assert_eq!(after["status"], "cancelled", "{after}");
    assert!(bucket_keys(&server, "slow").await.is_empty());
}

async fn summary(on: &impl Http, token: &str) -> Value {
    let response = on
        .call("GET", "/api/v1/dashboard/summary", Some(token), None)
        .await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()
}

#[tokio::test]
async fn the_dashboard_shows_a_change_on_the_next_request() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let viewer = signed_in(&app, "viewer", &["reports.read"]).await;
    let token = viewer.user.access_token.clone();
    let product = desk
        .product("DSH", "pcs", json!({ "reorder_point": 5 }))
        .await;
    let here = desk.location("WH1").await;
    let value = |s: &Value| s["stock"]["on_hand_value"].clone();
    let first = summary(&app, &token).await;
    assert_eq!(value(&first), json!([]));
    assert_eq!(first["purchasing"]["open_total"], 0);
    desk.add(
        product,
        here,
        json!(10),
        json!({ "unit_cost": 250, "currency": "BDT" }),
    )
    .await;
    let s = summary(&app, &token).await;
    assert_eq!(
        value(&s),
        json!([{ "currency": "BDT", "amount_minor": 2500, "count": 1 }])
    );
    // Below the reorder point: one low-stock level.
    let (status, body) = desk
        .adjust(product, here, json!(-7), json!({ "reason": "damaged" }))
        .await;
    assert_eq!(status, 201, "{body}");
    let s = summary(&app, &token).await;
    assert_eq!(s["stock"]["low_stock"], 1, "{s}");
    assert_eq!(value(&s)[0]["amount_minor"], 750);
    // Other figures move with their own writes.
    let (buyer, acme) = buyer_with_supplier(&app).await;
    let po = id(&draft(&buyer, acme, product, 3).await);
    assert_eq!(
        summary(&app, &token).await["purchasing"]["open_total"],
        0,
        "a draft is not open"
    );
    let (status, body) = crate::purchasing::step(&buyer, po, "submit").await;
    assert_eq!(status, 200, "{body}");
    let s = summary(&app, &token).await;
    assert_eq!(s["purchasing"]["open_total"], 1, "{s}");
    assert_eq!(s["purchasing"]["open_by_state"][0]["state"], "submitted");
    let (status, body) = viewer
        .send("GET", "/api/v1/dashboard/summary?expiring_days=99999", None)
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn with_redis_every_instance_shows_a_stock_change_on_its_next_request() {
    if depot_testkit::redis_or_skip("reports::dashboard across instances").is_none() {
        return;
    }
    let app = spawn_app().await;
    let peer = app.spawn_peer().await;
    crate::helpers::wait_in_sync(&[&app.context, &peer.context]).await;
    let desk = Desk::open(&app).await;
    let viewer = signed_in(&app, "viewer", &["reports.read"]).await;
    let token = viewer.user.access_token.clone();
    let product = desk.product("DSH", "pcs", json!({})).await;
    let here = desk.location("WH1").await;
    let value = |s: &Value| s["stock"]["on_hand_value"].clone();
    // Both instances have the figure cached...
    for s in [summary(&app, &token).await, summary(&peer, &token).await] {
        assert_eq!(value(&s), json!([]));
    }
    for round in 1..=5_i64 {
        // ...a change through one...
        desk.add(
            product,
            here,
            json!(1),
            json!({ "unit_cost": 100, "currency": "BDT" }),
        )
        .await;
        // ...is what the other answers next.
        let s = summary(&peer, &token).await;
        assert_eq!(
            value(&s)[0]["amount_minor"],
            100 * round,
            "round {round}: {s}"
        );
    }
    peer.stop().await;
}
