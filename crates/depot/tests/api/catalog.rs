//! The catalogue through HTTP: categories, products and locations, their uniqueness rules,
//! filtered keyset lists, field errors, and barcode resolution.

use serde_json::{Value, json};

use crate::helpers::spawn_app;
use crate::stock::{Desk, id};

#[tokio::test]
async fn skus_codes_names_and_barcodes_are_unique_case_insensitively() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    desk.product("Ab-1", "pcs", json!({ "barcode": "5901234123457" }))
        .await;
    for (body, code, field) in [
        (
            json!({ "sku": "aB-1", "name": "Twin", "unit": "pcs" }),
            "products.sku_taken",
            "sku",
        ),
        (
            json!({ "sku": "OTHER", "name": "Twin", "unit": "pcs", "barcode": "5901234123457" }),
            "products.barcode_taken",
            "barcode",
        ),
    ] {
        let (status, answer) = desk.post("/api/v1/products", body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (409, Some(code)),
            "{answer}"
        );
        assert_eq!(answer["details"]["field"], field);
    }
    desk.location("wh-1").await;
    let (status, answer) = desk
        .post(
            "/api/v1/locations",
            json!({ "code": "WH-1", "name": "Again" }),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("locations.code_taken"))
    );
    desk.post("/api/v1/categories", json!({ "name": "Tools" }))
        .await;
    let (status, answer) = desk
        .post("/api/v1/categories", json!({ "name": "TOOLS" }))
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("categories.name_taken"))
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_catalogue_input_is_refused_with_every_field_named() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let (status, answer) = desk
        .post(
            "/api/v1/products",
            json!({ "sku": " bad sku", "name": "  ", "unit": "pcs",
                    "reorder_point": 2.5, "reorder_quantity": -1, "barcode": "has space" }),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    let mut fields: Vec<&str> = answer["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "barcode",
            "name",
            "reorder_point",
            "reorder_quantity",
            "sku"
        ]
    );

    for (body, field) in [
        (json!({ "sku": "X", "name": "x", "unit": "crates" }), "unit"),
        (
            json!({ "sku": "X", "name": "x", "unit": "kg", "reorder_point": 0.0005 }),
            "reorder_point",
        ),
        (
            json!({ "sku": "X", "name": "x", "unit": "kg", "colour": "red" }),
            "colour",
        ),
        (
            json!({ "sku": "X", "name": "x", "unit": "kg", "depletion_policy": "random" }),
            "depletion_policy",
        ),
    ] {
        let (status, answer) = desk.post("/api/v1/products", body).await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer.to_string().contains(field), "{field}: {answer}");
    }
    let (status, answer) = desk
        .post("/api/v1/locations", json!({ "code": "", "name": "x" }))
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["details"]["fields"][0]["field"], "code");
    let (status, answer) = desk
        .post(
            "/api/v1/products",
            json!({ "sku": "ORPHAN", "name": "x", "unit": "pcs", "category_id": uuid::Uuid::now_v7() }),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("categories.not_found"))
    );
    assert_eq!(answer["details"]["field"], "category_id");
    app.stop().await;
}

#[tokio::test]
async fn product_lists_filter_search_and_page_in_sku_order() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let (_, dairy) = desk
        .post("/api/v1/categories", json!({ "name": "Dairy" }))
        .await;
    let dairy = id(&dairy);
    for (sku, name, category) in [
        ("C-3", "Cheddar cheese", Some(dairy)),
        ("A-1", "Apple juice", None),
        ("B-2", "Butter 100%", Some(dairy)),
        ("D-4", "Dried apple", None),
    ] {
        desk.product(sku, "pcs", json!({ "name": name, "category_id": category }))
            .await;
    }
    let skus = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["sku"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = desk.get("/api/v1/products?limit=3").await;
    assert_eq!(skus(&first), ["A-1", "B-2", "C-3"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = desk
        .get(&format!("/api/v1/products?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(skus(&second), ["D-4"]);
    assert_eq!(second["next_cursor"], Value::Null);

    assert_eq!(
        skus(&desk.get("/api/v1/products?q=APPLE").await),
        ["A-1", "D-4"]
    );
    assert_eq!(
        skus(&desk.get("/api/v1/products?q=100%25").await),
        ["B-2"],
        "literal %"
    );
    assert_eq!(skus(&desk.get("/api/v1/products?q=%25").await), ["B-2"]);
    assert_eq!(
        skus(
            &desk
                .get(&format!("/api/v1/products?category_id={dairy}"))
                .await
        ),
        ["B-2", "C-3"]
    );
    let (status, _) = desk
        .send(
            "PATCH",
            "/api/v1/products/00000000-0000-0000-0000-000000000000",
            Some(&json!({})),
        )
        .await;
    assert_eq!(status, 404);
    let archived = desk.get("/api/v1/products?q=c-3").await["data"][0]["id"].clone();
    desk.send(
        "PATCH",
        &format!("/api/v1/products/{}", archived.as_str().unwrap()),
        Some(&json!({ "status": "archived" })),
    )
    .await;
    assert_eq!(
        skus(&desk.get("/api/v1/products?status=archived").await),
        ["C-3"]
    );
    assert_eq!(
        skus(&desk.get("/api/v1/products?status=active").await).len(),
        3
    );

    // A category with products cannot go; an empty one can.
    let (status, answer) = desk
        .send("DELETE", &format!("/api/v1/categories/{dairy}"), None)
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("categories.in_use"))
    );
    let (_, empty) = desk
        .post("/api/v1/categories", json!({ "name": "Empty" }))
        .await;
    let (status, _) = desk
        .send(
            "DELETE",
            &format!("/api/v1/categories/{}", id(&empty)),
            None,
        )
        .await;
    assert_eq!(status, 204);
    app.stop().await;
}

#[tokio::test]
async fn barcodes_resolve_products_and_gs1_element_strings() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let product = desk
        .product(
            "MILK-1L",
            "pcs",
            json!({ "barcode": "5901234123457", "tracks_expiry": true }),
        )
        .await;
    let plain = desk.get("/api/v1/barcodes/5901234123457").await;
    assert_eq!(plain["source"], "barcode");
    assert_eq!(id(&plain["product"]), product);

    // The human-readable and the raw (FNC1 as GS, symbology identifier) forms.
    for encoded in [
        "%2801%2905901234123457%2817%29271231%2810%29LOT42",
        // ]d2 10LOT42 <GS> 01… 17…: the variable-length lot ends at the group separator.
        "%5Dd210LOT42%1D010590123412345717271231",
    ] {
        let scan = encoded;
        let found = desk.get(&format!("/api/v1/barcodes/{encoded}")).await;
        assert_eq!(found["source"], "gs1", "{scan}");
        assert_eq!(id(&found["product"]), product);
        assert_eq!(found["gtin"], "05901234123457");
        assert_eq!(found["lot"], "LOT42");
        assert_eq!(found["expiry"], "2027-12-31");
    }
    let (status, answer) = desk
        .send("GET", "/api/v1/barcodes/0000000000000", None)
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("barcodes.not_found"))
    );
    let (status, answer) = desk
        .send("GET", "/api/v1/barcodes/%2801%2905901234123458", None)
        .await;
    assert_eq!(status, 422, "a wrong check digit: {answer}");
    assert_eq!(answer["details"]["fields"][0]["code"], "barcodes.invalid");
    app.stop().await;
}
