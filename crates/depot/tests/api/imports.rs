//! Bulk import and export through HTTP: every error of a file in one answer, all or nothing,
//! idempotent re-application, opening stock on the ordinary ledger, counts, background jobs
//! owned by their submitter, and export → import round trips.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Http, Session, TestApp, assert_envelope, spawn_app, spawn_app_with};
use crate::stock::{ALL_STOCK, Desk, assert_verified, day};

/// Posts a CSV file to `/api/v1/imports?{query}`.
async fn import(
    app: &TestApp,
    user: &Session,
    query: &str,
    csv: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url(&format!("/api/v1/imports?{query}")))
        .bearer_auth(&user.access_token)
        .header("content-type", "text/csv")
        .body(csv.to_owned());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn export(app: &TestApp, user: &Session, kind: &str) -> String {
    let response = app
        .client
        .get(app.url(&format!("/api/v1/exports/{kind}.csv")))
        .bearer_auth(&user.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "export {kind}");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    response.text().await.unwrap()
}

/// The (row, column, code) of each error of an import answer.
fn errors(body: &Value) -> Vec<(u64, String, String)> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {body}"))
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["column"].as_str().unwrap_or("").to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn count_products(desk: &Desk<'_>) -> usize {
    desk.get("/api/v1/products?limit=200").await["data"]
        .as_array()
        .unwrap()
        .len()
}

async fn audit_rows(app: &TestApp, action: &str) -> i64 {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    depot_store::entity::audit_log::Entity::find()
        .filter(depot_store::entity::audit_log::Column::Action.eq(action))
        .count(app.store.reader())
        .await
        .unwrap() as i64
}

#[tokio::test]
async fn a_bad_product_file_lists_every_error_and_applying_it_writes_nothing() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let long_name = "n".repeat(201);
    let csv = format!(
        "sku,name,unit,reorder_point,tracks_expiry,status\n\
         A-1,Apple,pcs,5,no,active\n\
         B-2,Flour,kg,2.5,yes,\n\
         bad sku,Bad,pcs,,,\n\
         a-1,Apple again,pcs,,,\n\
         C-3,{long_name},pcs,,,\n\
         D-4,Dough,kg,1.2345,maybe,\n\
         E-5,Eggs,dozen,,,\n\
         F-6,Fish,pcs,-1,,retired\n\
         G-7,\"Gr\x00apes\",pcs,,,\n\
         H-8,Honey,l,,,\n\
         I-9\n"
    );
    let (status, body) = import(&app, &desk.user, "kind=products&mode=validate", &csv, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed");
    assert_eq!(body["rows"], 11);
    let expected: Vec<(u64, String, String)> = [
        (4, "sku", "product.invalid_sku"),
        (5, "sku", "import.duplicate"),
        (6, "name", "length"),
        (7, "tracks_expiry", "invalid"),
        (7, "reorder_point", "quantity.invalid"),
        (8, "unit", "invalid"),
        (9, "status", "invalid"),
        (9, "reorder_point", "quantity.negative"),
        (10, "name", "import.nul_byte"),
        (12, "", "import.field_count"),
    ]
    .iter()
    .map(|(r, c, k)| (*r, (*c).to_owned(), (*k).to_owned()))
    .collect();
    assert_eq!(errors(&body), expected);
    assert_eq!(body["error_count"], 10);
    // Every error carries a message a person can act on.
    assert!(
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| !e["message"].as_str().unwrap().is_empty())
    );

    // Applying the same file: 422, every error, nothing written.
    let (status, body) = import(&app, &desk.user, "kind=products&mode=apply", &csv, None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "imports.invalid_rows");
    assert_eq!(errors(&body["details"]), expected);
    assert_eq!(count_products(&desk).await, 0);
    assert_eq!(audit_rows(&app, "import.applied").await, 0);

    // The job is kept with its errors.
    let id = body["details"]["id"].as_str().unwrap();
    let job = desk.get(&format!("/api/v1/imports/{id}")).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error_count"], 10);
    app.stop().await;
}

#[tokio::test]
async fn products_upsert_by_sku_and_applying_the_same_file_again_changes_nothing() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let (_, category) = desk
        .post("/api/v1/categories", json!({ "name": "Dairy" }))
        .await;
    let existing = desk
        .product("MILK", "l", json!({ "name": "Old milk" }))
        .await;
    // Semicolons, a byte-order mark, quoted fields and a category by name.
    let csv = "\u{feff}sku;name;unit;category;barcode;reorder_point;tracks_expiry\n\
               MILK;\"Milk; whole\";l;dairy;4006381333931;2.5;yes\n\
               CHEESE;Cheese;kg;Dairy;;0.25;no\n\
               BREAD;Bread;pcs;;;;\n";
    let (status, body) = import(&app, &desk.user, "kind=products&mode=validate", csv, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded");
    assert_eq!(
        body["summary"],
        json!({"created": 2, "updated": 1, "unchanged": 0, "movements": 0})
    );
    assert_eq!(count_products(&desk).await, 1, "validate writes nothing");

    let (status, body) = import(
        &app,
        &desk.user,
        "kind=products&mode=apply",
        csv,
        Some("k-1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["rows"], 3);
    assert_eq!(body["progress"], 100);
    let milk = desk.get(&format!("/api/v1/products/{existing}")).await;
    assert_eq!(milk["name"], "Milk; whole");
    assert_eq!(milk["category_id"], category["id"]);
    assert_eq!(milk["barcode"], "4006381333931");
    assert_eq!(milk["reorder_point"], 2.5);
    assert_eq!(milk["tracks_expiry"], true);
    assert_eq!(count_products(&desk).await, 3);
    assert_eq!(audit_rows(&app, "import.applied").await, 1);

    // The same key: the stored answer, replayed.
    let response = app
        .client
        .post(app.url("/api/v1/imports?kind=products&mode=apply"))
        .bearer_auth(&desk.user.access_token)
        .header("content-type", "text/csv")
        .header("idempotency-key", "k-1")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["idempotent-replayed"], "true");
    // A new key: it runs, and changes nothing.
    let (status, again) = import(
        &app,
        &desk.user,
        "kind=products&mode=apply",
        csv,
        Some("k-2"),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["summary"],
        json!({"created": 0, "updated": 0, "unchanged": 3, "movements": 0})
    );
    assert_eq!(count_products(&desk).await, 3);
    let milk_again = desk.get(&format!("/api/v1/products/{existing}")).await;
    assert_eq!(milk_again["updated_at"], milk["updated_at"]);

    // Export → import of the export changes nothing.
    let exported = export(&app, &desk.user, "products").await;
    assert!(
        exported.starts_with("sku,name,unit,category_id,barcode,"),
        "{exported}"
    );
    assert_eq!(exported.lines().count(), 4, "{exported}");
    let (status, round) = import(
        &app,
        &desk.user,
        "kind=products&mode=apply",
        &exported,
        None,
    )
    .await;
    assert_eq!(status, 200, "{round}");
    assert_eq!(round["summary"]["unchanged"], 3, "{round}");
    assert_eq!(round["summary"]["updated"], 0, "{round}");

    // A unit change: kept thresholds must fit the new unit, and a product with stock keeps
    // its unit.
    let cheese_in_pieces = "sku,name,unit\nCHEESE,Cheese,pcs\n";
    let (_, body) = import(&app, &desk.user, "kind=products", cheese_in_pieces, None).await;
    assert_eq!(
        errors(&body),
        vec![(2, "reorder_point".into(), "quantity.invalid".into())]
    );
    let shop = desk.location("SHOP").await;
    desk.add(
        existing,
        shop,
        json!(5),
        json!({ "lot": "L1", "expiry": day(30) }),
    )
    .await;
    let milk_in_kg = "sku,name,unit\nMILK,Milk,kg\n";
    let (_, body) = import(&app, &desk.user, "kind=products", milk_in_kg, None).await;
    assert_eq!(
        errors(&body),
        vec![(2, "unit".into(), "products.in_use".into())]
    );

    // A barcode another product holds, a category that does not exist.
    let clash = "sku,name,unit,barcode,category\nBREAD,Bread,pcs,4006381333931,Bakery\n";
    let (_, body) = import(&app, &desk.user, "kind=products", clash, None).await;
    assert_eq!(
        errors(&body),
        vec![
            (2, "barcode".into(), "products.barcode_taken".into()),
            (2, "category".into(), "categories.not_found".into()),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn opening_stock_posts_receipts_once_and_replace_counts_instead() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let flour = desk
        .product(
            "FLOUR",
            "kg",
            json!({ "tracks_expiry": true, "reorder_point": 3 }),
        )
        .await;
    let salt = desk
        .product("SALT", "pcs", json!({ "reorder_point": 10 }))
        .await;
    let main = desk.location("MAIN").await;
    desk.location("BACK").await;
    let (soon, later) = (day(60), day(200));
    let bad = format!(
        "sku,location_code,quantity,lot,expiry,unit_cost,currency\n\
         FLOUR,MAIN,2.5,L1,{soon},120,USD\n\
         FLOUR,MAIN,1,,,,\n\
         NOPE,MAIN,1,,,,\n\
         SALT,NOWHERE,1,,,,\n\
         FLOUR,BACK,-3,L9,{later},,\n\
         FLOUR,BACK,1,L2,31/12/2027,,\n\
         SALT,MAIN,1.5,,,,\n\
         SALT,BACK,4,,,15,\n\
         FLOUR,MAIN,1,L1,{soon},,\n"
    );
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=opening_stock&mode=apply",
        &bad,
        None,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        errors(&body["details"]),
        vec![
            (3, "lot".into(), "required".into()),
            (3, "expiry".into(), "required".into()),
            (4, "sku".into(), "products.not_found".into()),
            (5, "location_code".into(), "locations.not_found".into()),
            (6, "quantity".into(), "quantity.negative".into()),
            (7, "expiry".into(), "invalid_date".into()),
            (8, "quantity".into(), "quantity.invalid".into()),
            (9, "currency".into(), "required".into()),
            (10, "lot".into(), "import.duplicate".into()),
        ]
    );
    let movements = desk.get("/api/v1/stock/movements").await;
    assert_eq!(
        movements["data"].as_array().unwrap().len(),
        0,
        "nothing written"
    );

    let good = format!(
        "sku,location_code,quantity,lot,expiry,unit_cost,currency\n\
         FLOUR,MAIN,2.5,L1,{soon},120,USD\n\
         FLOUR,MAIN,4,L2,{later},,\n\
         SALT,MAIN,12,,,,\n\
         SALT,BACK,3,,,15,EUR\n"
    );
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=opening_stock&mode=apply",
        &good,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["summary"],
        json!({"created": 4, "updated": 0, "unchanged": 0, "movements": 4})
    );
    assert_eq!(desk.on_hand(flour, main).await, 6.5);
    assert_eq!(desk.on_hand(salt, main).await, 12);
    let movements = desk.get("/api/v1/stock/movements?kind=receipt").await;
    let movements = movements["data"].as_array().unwrap();
    assert_eq!(movements.len(), 4);
    assert!(
        movements.iter().all(|m| m["reason"] == "initial"),
        "{movements:?}"
    );
    assert_verified(&app).await;

    // Again: refused, the levels hold stock already.
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=opening_stock&mode=apply",
        &good,
        None,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let codes: Vec<String> = errors(&body["details"]).into_iter().map(|e| e.2).collect();
    assert_eq!(codes, vec!["stock.exists"; 4]);
    // With replace: counted, and the same file changes nothing.
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=opening_stock&mode=apply&replace=true",
        &good,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["summary"],
        json!({"created": 0, "updated": 0, "unchanged": 4, "movements": 0})
    );
    assert_eq!(
        desk.get("/api/v1/stock/movements").await["data"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // Export the batches, change one, take one out: replace counts exactly that.
    let exported = export(&app, &desk.user, "batches").await;
    assert_eq!(exported.lines().count(), 5, "{exported}");
    let edited: String = exported
        .lines()
        .filter(|l| !l.starts_with("SALT,BACK,"))
        .map(|l| {
            if l.starts_with("SALT,MAIN,12,") {
                l.replacen("SALT,MAIN,12,", "SALT,MAIN,9,", 1)
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=stock_counts&mode=apply",
        &edited,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["summary"],
        json!({"created": 0, "updated": 1, "unchanged": 2, "movements": 1})
    );
    assert_eq!(desk.on_hand(salt, main).await, 9);
    let counted = desk.get("/api/v1/stock/movements?kind=count").await;
    assert_eq!(counted["data"][0]["reason"], "count_correction");
    assert_eq!(counted["data"][0]["quantity"], -3);
    // Down to its reorder point, salt raised its alert like any other change.
    let alerts = desk
        .get(&format!("/api/v1/alerts?product_id={salt}&kind=low_stock"))
        .await;
    assert_eq!(alerts["data"].as_array().unwrap().len(), 1, "{alerts}");
    // A counts file leaves batches it does not name alone; replace does not.
    let back = desk.get("/api/v1/stock/levels").await;
    assert!(
        back["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["product_id"] == salt.to_string() && l["on_hand"] == 3),
        "{back}"
    );
    let salt_only = "sku,location_code,quantity\nSALT,BACK,1\n";
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=opening_stock&mode=apply&replace=true",
        salt_only,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summary"]["movements"], 1, "{body}");
    assert_verified(&app).await;

    let levels = export(&app, &desk.user, "levels").await;
    assert!(levels.starts_with("sku,location_code,on_hand,reserved,available,reorder_point\n"));
    assert!(levels.contains("FLOUR,MAIN,6.5,0,6.5,3\n"), "{levels}");
    app.stop().await;
}

#[tokio::test]
async fn a_large_file_runs_as_a_background_job_only_its_owner_sees() {
    let app = spawn_app_with(|s| s.import_sync_max_bytes = 64).await;
    let desk = Desk::open(&app).await;
    let mut csv = String::from("code,name,active\n");
    for i in 0..500 {
        csv.push_str(&format!("WH-{i},Warehouse {i},true\n"));
    }
    let (status, queued) = import(&app, &desk.user, "kind=locations&mode=apply", &csv, None).await;
    assert_eq!(status, 202, "{queued}");
    assert!(["queued", "running", "succeeded"].contains(&queued["status"].as_str().unwrap()));
    let id = queued["id"].as_str().unwrap().to_owned();
    let mut job = Value::Null;
    for _ in 0..200 {
        job = desk.get(&format!("/api/v1/imports/{id}")).await;
        if job["status"] == "succeeded" || job["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["rows"], 500);
    assert_eq!(job["rows_done"], 500);
    assert_eq!(job["progress"], 100);
    assert_eq!(job["summary"]["created"], 500);
    let listed = desk.get("/api/v1/imports").await;
    assert_eq!(listed["data"][0]["id"], id.as_str());

    // Somebody else: no such import.
    let other = app
        .sign_in_with("other@example.com", &["warehouses.manage"])
        .await;
    let response = app
        .call(
            "GET",
            &format!("/api/v1/imports/{id}"),
            Some(&other.access_token),
            None,
        )
        .await;
    assert_envelope(response, 404, "not_found", "imports.not_found").await;
    let theirs = app
        .call("GET", "/api/v1/imports", Some(&other.access_token), None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(theirs["data"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn the_kind_decides_the_permission_and_the_body_must_be_a_csv_file() {
    let app = spawn_app().await;
    let clerk = app
        .sign_in_with("clerk@example.com", &["warehouses.manage", "products.read"])
        .await;
    let (status, body) = import(&app, &clerk, "kind=products", "sku,name\nA,B\n", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["details"]["permission"], "products.manage");
    let (status, _) = import(&app, &clerk, "kind=locations", "code,name\nA,B\n", None).await;
    assert_eq!(status, 200);
    let response = app
        .call(
            "GET",
            "/api/v1/exports/batches.csv",
            Some(&clerk.access_token),
            None,
        )
        .await;
    assert_envelope(response, 403, "forbidden", "auth.forbidden").await;
    let response = app
        .call(
            "GET",
            "/api/v1/exports/widgets.csv",
            Some(&clerk.access_token),
            None,
        )
        .await;
    assert_envelope(response, 404, "not_found", "route.not_found").await;

    // A form upload with the field `file`.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"code,name\nUP-1,Uploaded\n".to_vec())
            .file_name("upload.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    let response = app
        .client
        .post(app.url("/api/v1/imports?kind=locations&mode=apply"))
        .bearer_auth(&clerk.access_token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["file_name"], "upload.csv");
    assert_eq!(body["summary"]["created"], 1);

    // JSON is not a file; an unknown column is refused by name; an empty file has no header.
    let response = app
        .call(
            "POST",
            "/api/v1/imports?kind=locations",
            Some(&clerk.access_token),
            Some(&json!({"code": "A"})),
        )
        .await;
    assert_envelope(
        response,
        400,
        "bad_request",
        "request.unsupported_media_type",
    )
    .await;
    let (_, body) = import(&app, &clerk, "kind=locations", "code,name,colour\n", None).await;
    assert_eq!(
        errors(&body),
        vec![(1, "colour".into(), "import.unknown_column".into())]
    );
    let (_, body) = import(&app, &clerk, "kind=locations", "", None).await;
    assert_eq!(
        errors(&body),
        vec![(1, String::new(), "import.invalid_header".into())]
    );
    let response = app
        .call(
            "POST",
            "/api/v1/imports?kind=pallets",
            Some(&clerk.access_token),
            None,
        )
        .await;
    assert_eq!(response.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn an_import_emits_one_event_not_one_per_row() {
    let app = spawn_app().await;
    let user = app
        .sign_in_with(
            &format!("i-{}@example.com", Uuid::now_v7().simple()),
            ALL_STOCK,
        )
        .await;
    let mut csv = String::from("code,name\n");
    for i in 0..50 {
        csv.push_str(&format!("L{i},Location {i}\n"));
    }
    let (status, body) = import(&app, &user, "kind=locations&mode=apply", &csv, None).await;
    assert_eq!(status, 200, "{body}");
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let events = depot_store::entity::outbox::Entity::find()
        .filter(depot_store::entity::outbox::Column::EventType.eq("import.applied"))
        .all(app.store.reader())
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].aggregate_id, body["id"].as_str().unwrap());
    // Applied again, it changes nothing and announces nothing (the audit log still has it).
    let (status, _) = import(&app, &user, "kind=locations&mode=apply", &csv, None).await;
    assert_eq!(status, 200);
    let events = depot_store::entity::outbox::Entity::find()
        .filter(depot_store::entity::outbox::Column::EventType.eq("import.applied"))
        .all(app.store.reader())
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(audit_rows(&app, "import.applied").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn the_same_opening_stock_applied_twice_at_once_is_taken_once() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let product = desk.product("OIL", "l", json!({})).await;
    let main = desk.location("MAIN").await;
    let csv = "sku,location_code,quantity\nOIL,MAIN,7.5\n";
    let (a, b) = tokio::join!(
        import(&app, &desk.user, "kind=opening_stock&mode=apply", csv, None),
        import(&app, &desk.user, "kind=opening_stock&mode=apply", csv, None),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 422], "{a:?} {b:?}");
    let refused = if a.0 == 422 { a.1 } else { b.1 };
    assert_eq!(refused["details"]["errors"][0]["code"], "stock.exists");
    assert_eq!(desk.on_hand(product, main).await, 7.5);
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn counts_take_a_lot_as_a_whole_and_replace_receives_into_empty_levels() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let rice = desk.product("RICE", "kg", json!({})).await;
    let main = desk.location("MAIN").await;
    desk.location("BACK").await;
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=opening_stock&mode=apply&replace=true",
        "sku,location_code,quantity,lot\nRICE,MAIN,10,R1\nRICE,BACK,4,R2\n",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Nothing to correct where nothing was: receipts, reason initial.
    let receipts = desk.get("/api/v1/stock/movements?kind=receipt").await;
    assert_eq!(receipts["data"].as_array().unwrap().len(), 2, "{receipts}");
    assert!(
        receipts["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["reason"] == "initial")
    );
    // The lot counted lower than it is: one correction, of the difference.
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=stock_counts&mode=apply",
        "sku,location_code,quantity,lot\nRICE,MAIN,9.25,R1\n",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summary"]["updated"], 1);
    let counted = desk.get("/api/v1/stock/movements?kind=count").await;
    assert_eq!(counted["data"][0]["quantity"], -0.75);
    assert_eq!(desk.on_hand(rice, main).await, 9.25);
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn an_import_keeps_at_most_the_configured_errors_and_counts_the_rest() {
    let app = spawn_app_with(|s| s.import_max_errors = 5).await;
    let desk = Desk::open(&app).await;
    let mut csv = String::from("code,name\n");
    for i in 0..20 {
        csv.push_str(&format!("bad code {i},Name\n"));
    }
    let (status, body) = import(&app, &desk.user, "kind=locations", &csv, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed");
    assert_eq!(body["error_count"], 20);
    assert_eq!(body["errors"].as_array().unwrap().len(), 5);
    assert_eq!(body["errors"][0]["row"], 2);
    app.stop().await;
}

#[tokio::test]
async fn a_thousand_scattered_bad_rows_are_all_reported_and_nothing_is_written() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    desk.location("MAIN").await;
    // Products: 3,000 rows, every third one bad in one of five ways.
    let mut products = String::from("sku,name,unit,reorder_point,tracks_expiry\n");
    let mut bad_products = Vec::new();
    for i in 0..3_000 {
        let row = i as u64 + 2;
        let line = match (i % 3, (i / 3) % 5) {
            (0, 0) => format!("P{i},Bad decimals,pcs,1.5,false"),
            (0, 1) => "P0,Duplicate,pcs,,false".to_owned(),
            (0, 2) => format!("P{i},{},pcs,,false", "n".repeat(201)),
            (0, 3) => format!("P{i},\"N\0UL\",pcs,,false"),
            (0, 4) => format!("P{i},Bad flag,pcs,,sometimes"),
            _ => format!("P{i},Product {i},kg,2.5,true"),
        };
        if i % 3 == 0 && i != 0 {
            bad_products.push(row);
        }
        products.push_str(&line);
        products.push('\n');
    }
    // Row 2 ("P0", bad decimals) is bad too; the duplicates of P0 name it.
    bad_products.insert(0, 2);
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=products&mode=validate",
        &products,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let rows: Vec<u64> = errors(&body).iter().map(|e| e.0).collect();
    assert_eq!(rows, bad_products, "one error per bad row, in row order");
    assert_eq!(body["error_count"], 1_000);
    assert!(
        errors(&body).iter().all(|e| !e.1.is_empty()),
        "every error names its column"
    );
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=products&mode=apply",
        &products,
        None,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["details"]["error_count"], 1_000);
    assert_eq!(count_products(&desk).await, 0);

    // Opening stock: the good products exist; 1,000 bad rows among 4,000.
    let good: String = products
        .lines()
        .enumerate()
        .filter(|(n, _)| *n == 0 || (*n - 1) % 3 != 0)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let (status, body) = import(&app, &desk.user, "kind=products&mode=apply", &good, None).await;
    assert_eq!(status, 200, "{body}");
    let expiry = day(100);
    let mut stock = String::from("sku,location_code,quantity,lot,expiry\n");
    let mut bad_stock = Vec::new();
    let existing: Vec<usize> = (1..3_000).filter(|p| p % 3 != 0).collect();
    for i in 0..4_000 {
        let row = i as u64 + 2;
        let product = existing[i % existing.len()];
        let line = match (i % 4, (i / 4) % 5) {
            (0, 0) => format!("NOPE{i},MAIN,1,L{i},{expiry}"),
            (0, 1) => format!("P{product},MAIN,1,L{i},"),
            (0, 2) => format!("P{product},MAIN,1,L{i},31.12.2027"),
            (0, 3) => format!("P{product},MAIN,-2,L{i},{expiry}"),
            (0, 4) => format!("P{product},MAIN,1,L\0{i},{expiry}"),
            _ => format!("P{product},MAIN,1.25,L{i},{expiry}"),
        };
        if i % 4 == 0 {
            bad_stock.push(row);
        }
        stock.push_str(&line);
        stock.push('\n');
    }
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=opening_stock&mode=apply",
        &stock,
        None,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let rows: Vec<u64> = errors(&body["details"]).iter().map(|e| e.0).collect();
    assert_eq!(rows, bad_stock);
    assert_eq!(body["details"]["error_count"], 1_000);
    let movements = desk.get("/api/v1/stock/movements").await;
    assert_eq!(movements["data"], json!([]), "nothing written");
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_file_checked_a_chunk_at_a_time_is_still_all_or_nothing() {
    // Products are checked and written 5,000 rows at a time: errors found in a later chunk
    // (a duplicate of an earlier chunk's SKU, a bad last row) undo what earlier chunks wrote.
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let rows = 12_000;
    let mut file = String::from("sku,name,unit,barcode\n");
    for i in 0..rows {
        file.push_str(&format!("P{i},Product {i},pcs,B{i}\n"));
    }
    let mut bad = file.clone();
    bad.push_str("p17,Again,pcs,\n"); // SKUs are case-insensitive: P17 is on row 19
    bad.push_str(&format!("Q1,{},pcs,B9000\n", "n".repeat(201)));
    let (status, body) = import(&app, &desk.user, "kind=products&mode=apply", &bad, None).await;
    assert_eq!(status, 422, "{body}");
    let mut found: Vec<(u64, String, String)> = errors(&body["details"]);
    found.sort();
    let last = rows as u64 + 3;
    assert_eq!(
        found,
        vec![
            (last - 1, "sku".into(), "import.duplicate".into()),
            (last, "barcode".into(), "import.duplicate".into()),
            (last, "name".into(), "length".into()),
        ],
        "{body}"
    );
    assert_eq!(
        count_products(&desk).await,
        0,
        "earlier chunks' writes undone"
    );

    let (status, body) = import(&app, &desk.user, "kind=products&mode=apply", &file, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summary"]["created"], rows);
    let (status, body) = import(&app, &desk.user, "kind=products&mode=apply", &file, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summary"]["unchanged"], rows);
    assert_eq!(body["summary"]["created"], 0);

    // A barcode a row of an earlier chunk takes from its product (already written when the
    // later chunk is checked) is still that product's, as when validating.
    let mut swap = String::from("sku,name,unit,barcode\n");
    swap.push_str("P0,Product 0,pcs,Z0\n");
    for i in 1..rows {
        swap.push_str(&format!("P{i},Product {i},pcs,B{i}\n"));
    }
    swap.push_str("Q2,Taker,pcs,B0\n");
    for mode in ["validate", "apply"] {
        let query = format!("kind=products&mode={mode}");
        let (status, body) = import(&app, &desk.user, &query, &swap, None).await;
        let found = if mode == "apply" {
            assert_eq!(status, 422, "{body}");
            errors(&body["details"])
        } else {
            assert_eq!(status, 200, "{body}");
            errors(&body)
        };
        assert_eq!(
            found,
            vec![(
                rows as u64 + 2,
                "barcode".into(),
                "products.barcode_taken".into()
            )],
            "{mode}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn validating_a_count_below_what_orders_hold_says_so_as_applying_does() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    desk.product("TEA", "pcs", json!({})).await;
    let main = desk.location("MAIN").await;
    let (status, _) = import(
        &app,
        &desk.user,
        "kind=opening_stock&mode=apply",
        "sku,location_code,quantity,lot\nTEA,MAIN,10,T1\n",
        None,
    )
    .await;
    assert_eq!(status, 200);
    // A confirmed order holds 6 of lot T1.
    let seller = Desk {
        app: &app,
        user: app
            .sign_in_with(
                "seller@example.com",
                &[
                    "products.read",
                    "stock.read",
                    "customers.read",
                    "customers.manage",
                    "sales_orders.read",
                    "sales_orders.create",
                ],
            )
            .await,
    };
    let (_, customer) = seller
        .post("/api/v1/customers", json!({ "name": "Corner Shop" }))
        .await;
    let tea = desk.get("/api/v1/products?q=TEA").await["data"][0]["id"].clone();
    let (status, order) = seller
        .post(
            "/api/v1/sales-orders",
            json!({ "customer_id": customer["id"], "location_id": main, "currency": "BDT",
                    "lines": [{ "product_id": tea, "quantity": 6, "unit_price": 100 }] }),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let (status, body) = seller
        .post(
            &format!(
                "/api/v1/sales-orders/{}/confirm",
                order["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let below = "sku,location_code,quantity,lot\nTEA,MAIN,4,T1\n";
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=stock_counts&mode=validate",
        below,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        errors(&body),
        vec![(2, "quantity".into(), "stock.reserved".into())]
    );
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=stock_counts&mode=apply",
        below,
        None,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        errors(&body["details"]),
        vec![(2, "quantity".into(), "stock.reserved".into())]
    );
    // Replacing the level with another lot would empty the held one: refused as well.
    let other = "sku,location_code,quantity,lot\nTEA,MAIN,3,T2\n";
    let (_, body) = import(
        &app,
        &desk.user,
        "kind=opening_stock&mode=validate&replace=true",
        other,
        None,
    )
    .await;
    assert_eq!(
        errors(&body),
        vec![(2, "quantity".into(), "stock.reserved".into())]
    );
    // At what orders hold, the count goes through.
    let (status, body) = import(
        &app,
        &desk.user,
        "kind=stock_counts&mode=apply",
        "sku,location_code,quantity,lot\nTEA,MAIN,6,T1\n",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_verified(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_large_import_leaves_the_planners_statistics_fresh() {
    // PostgreSQL plans an export or a stock query right after a large import for the tables
    // as they now are: an applied file of 1,000 rows or more runs `ANALYZE` on what it filled
    // (autovacuum would only get to it later, or never where it is off).
    use sea_orm::{ConnectionTrait, Statement};
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let analysed = || async {
        let row = app
            .store
            .reader()
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) AS n FROM pg_stat_user_tables \
                 WHERE relname = 'products' AND last_analyze IS NOT NULL",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap() == 1
    };
    let postgres = app.store.backend() == depot_store::Backend::Postgres;
    let apply = |rows: usize| {
        let mut csv = String::from("sku,name,unit\n");
        for i in 0..rows {
            csv.push_str(&format!("P{i},Product {i},pcs\n"));
        }
        let (app, user) = (&app, &desk.user);
        async move {
            let (status, body) = import(app, user, "kind=products&mode=apply", &csv, None).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };

    apply(999).await;
    if postgres {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        assert!(
            !analysed().await,
            "a 999-row file leaves the statistics alone"
        );
    }
    let body = apply(1_000).await;
    assert_eq!(body["summary"]["created"], 1);
    if postgres {
        let started = std::time::Instant::now();
        while !analysed().await {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "products were not analysed after a 1,000-row import"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    app.stop().await;
}
