//! Payments through HTTP, with `wiremock` standing in for the SSLCommerz API (its documented
//! request and answer shapes) and, end to end, Depot's own simulator: sessions opened with no
//! lock held and retried when the gateway is slow, IPNs believed only when their signature
//! verifies and the validation API vouches for what WE stored, repeats acted on once, the
//! missed-IPN recovery, one active payment per order and method, refunds.

use depot_adapters::payments::sign;
use depot_app::config::{PaymentsGateway, Secret};
use depot_store::entity::{audit_log, outbox, payment_callback};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, spawn_app_with};
use crate::sales::Shop;
use crate::stock::{Desk, id};

const STORE_ID: &str = "depot-test";
/// The store password of the official Python SDK's README fixture.
const PASSWORD: &str = "test_testemi@ssl";
const IPN: &str = "/api/v1/payments/sslcommerz/ipn";
const SESSION: &str = "/gwprocess/v4/api.php";
const VALIDATION: &str = "/validator/api/validationserverAPI.php";
const MERCHANT: &str = "/validator/api/merchantTransIDvalidationAPI.php";
/// 2 × 6,172.50 BDT.
const TOTAL: i64 = 1_234_500;

async fn gateway_app(gateway: &MockServer) -> TestApp {
    let base = gateway.uri();
    spawn_app_with(move |s| {
        s.payments_enabled = true;
        s.sslcommerz_store_id = Some(STORE_ID.into());
        s.sslcommerz_store_password = Some(Secret::new(PASSWORD));
        s.sslcommerz_base_url = Some(base);
        s.payments_gateway_retries = 2;
        s.payments_gateway_timeout_ms = 1_000;
        s.payments_recovery_after_secs = 0;
    })
    .await
}

async fn session_opens(gateway: &MockServer) {
    Mock::given(method("POST"))
        .and(path(SESSION))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "SUCCESS", "failedreason": "", "sessionkey": "F650E87F23DD2A8FFCB4E4E333C13B28",
            "GatewayPageURL": "https://sandbox.sslcommerz.com/EasyCheckOut/testcdef650e87f23dd2a8ffcb4234fasf3b28",
        })))
        .mount(gateway)
        .await;
}

/// A confirmed order of 2 × 6,172.50 BDT, and the finance user who refunds.
struct Till<'a> {
    shop: Shop<'a>,
    finance: Desk<'a>,
    product: Uuid,
}

impl<'a> Till<'a> {
    async fn open(app: &'a TestApp) -> Till<'a> {
        let shop = Shop::open(app).await;
        let product = shop.desk.product("TEA", "pcs", json!({})).await;
        shop.desk
            .add(product, shop.here, json!(1000), json!({}))
            .await;
        let email = format!("finance-{}@example.com", Uuid::now_v7().simple());
        let finance = Desk {
            app,
            user: app
                .sign_in_with(
                    &email,
                    &[
                        "payments.read",
                        "payments.create",
                        "payments.refund",
                        "sales_orders.read",
                    ],
                )
                .await,
        };
        Till {
            shop,
            finance,
            product,
        }
    }

    async fn confirmed_order(&self) -> Uuid {
        let order = id(&self
            .shop
            .order(&[(self.product, json!(2), TOTAL / 2)])
            .await);
        let (status, body) = self.shop.step(order, "confirm").await;
        assert_eq!(status, 200, "{body}");
        order
    }

    async fn start(&self, order: Uuid) -> (u16, Value) {
        self.shop
            .seller
            .post(
                "/api/v1/payments",
                json!({ "order_id": order, "method": "sslcommerz" }),
            )
            .await
    }

    async fn payment(&self, id: &str) -> Value {
        self.finance.get(&format!("/api/v1/payments/{id}")).await
    }

    async fn order_state(&self, order: Uuid) -> Value {
        self.shop
            .seller
            .get(&format!("/api/v1/sales-orders/{order}"))
            .await
    }
}

/// The IPN the gateway would post for `tran_id`, signed with `password`.
fn ipn(
    tran_id: &str,
    val_id: &str,
    status: &str,
    amount: &str,
    password: &str,
) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = [
        ("tran_id", tran_id),
        ("val_id", val_id),
        ("amount", amount),
        ("card_type", "VISA-Dutch Bangla"),
        ("store_amount", amount),
        ("card_no", "418117XXXXXX6675"),
        ("bank_tran_id", "BANK-1"),
        ("status", status),
        ("tran_date", "2026-11-30 10:00:00"),
        ("currency", "BDT"),
        ("card_issuer", "TRUST BANK, LTD."),
        ("card_brand", "VISA"),
        ("store_id", STORE_ID),
        ("risk_level", "0"),
        ("risk_title", "Safe"),
        ("value_a", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let keys = "amount,bank_tran_id,card_brand,card_issuer,card_no,card_type,currency,risk_level,\
                risk_title,status,store_amount,store_id,tran_date,tran_id,val_id,value_a";
    fields.push(("verify_sign".into(), sign(&fields, keys, password)));
    fields.push(("verify_key".into(), keys.into()));
    fields
}

async fn post_ipn(app: &TestApp, fields: &[(String, String)]) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(IPN))
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The validation API vouching for `val_id` with what it says.
async fn validates(gateway: &MockServer, val_id: &str, answer: Value) {
    Mock::given(method("GET"))
        .and(path(VALIDATION))
        .and(query_param("val_id", val_id))
        .and(query_param("store_id", STORE_ID))
        .and(query_param("store_passwd", PASSWORD))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(gateway)
        .await;
}

fn valid(tran_id: &str, val_id: &str, amount: &str, currency: &str, risk: &str) -> Value {
    json!({
        "status": "VALID", "tran_date": "2026-11-30 10:00:00", "tran_id": tran_id,
        "val_id": val_id, "amount": amount, "store_amount": amount, "currency": currency,
        "bank_tran_id": "BANK-1", "card_type": "VISA-Dutch Bangla",
        "card_no": "418117XXXXXX6675", "card_issuer": "TRUST BANK, LTD.", "card_brand": "VISA",
        "card_issuer_country": "Bangladesh", "card_issuer_country_code": "BD",
        "currency_type": currency, "currency_amount": amount, "risk_level": risk,
        "risk_title": "Safe", "APIConnect": "DONE",
    })
}

async fn count_audit(app: &TestApp, action: &str, target: &str) -> u64 {
    audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq(action))
        .filter(audit_log::Column::TargetId.eq(target))
        .count(app.store.reader())
        .await
        .unwrap()
}

async fn count_events_to(app: &TestApp, payment: &str, to: &str) -> usize {
    outbox::Entity::find()
        .filter(outbox::Column::EventType.eq("payment.transitioned"))
        .all(app.store.reader())
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.payload["payment_id"] == payment && m.payload["to"] == to)
        .count()
}

fn tran(payment: &Value) -> String {
    payment["tran_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_sdk_fixture_verifies_and_any_flipped_field_is_refused() {
    let gateway = MockServer::start().await;
    let app = gateway_app(&gateway).await;
    // The official SDK's README IPN: its signature verifies with its store password, so the
    // answer is "no such transaction" (404), not a signature error.
    let keys = "amount,bank_tran_id,base_fair,card_brand,card_issuer,card_issuer_country,\
                card_issuer_country_code,card_no,card_type,currency,currency_amount,currency_rate,\
                currency_type,risk_level,risk_title,status,store_amount,store_id,tran_date,tran_id,\
                val_id,value_a,value_b,value_c,value_d";
    let fixture: Vec<(String, String)> = [
        ("tran_id", "5E121A0D01F92"),
        ("val_id", "200105225826116qFnATY9sHIwo"),
        ("amount", "10.00"),
        ("card_type", "VISA-Dutch Bangla"),
        ("store_amount", "9.75"),
        ("card_no", "418117XXXXXX6675"),
        ("bank_tran_id", "200105225825DBgSoRGLvczhFjj"),
        ("status", "VALID"),
        ("tran_date", "2020-01-05 22:58:21"),
        ("currency", "BDT"),
        ("card_issuer", "TRUST BANK, LTD."),
        ("card_brand", "VISA"),
        ("card_issuer_country", "Bangladesh"),
        ("card_issuer_country_code", "BD"),
        ("store_id", "test_testemi"),
        ("verify_sign", "d42fab70ae0bcbda5280e7baffef60b0"),
        ("verify_key", keys),
        ("currency_type", "BDT"),
        ("currency_amount", "10.00"),
        ("currency_rate", "1.0000"),
        ("base_fair", "0.00"),
        ("value_a", ""),
        ("value_b", ""),
        ("value_c", ""),
        ("value_d", ""),
        ("risk_level", "0"),
        ("risk_title", "Safe"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let (status, body) = post_ipn(&app, &fixture).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("payments.not_found")),
        "{body}"
    );

    let flip = |key: &str, value: &str| -> Vec<(String, String)> {
        fixture
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if k == key {
                        value.to_owned()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    };
    for (key, value) in [
        ("amount", "1000.00"),
        ("status", "FAILED"),
        ("tran_id", "5E121A0D01F93"),
        ("currency", "USD"),
        ("value_a", "x"),
        ("verify_sign", "d42fab70ae0bcbda5280e7baffef60b1"),
    ] {
        let (status, body) = post_ipn(&app, &flip(key, value)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("payments.invalid_signature")),
            "{key}: {body}"
        );
    }
    let without_key: Vec<_> = fixture
        .iter()
        .filter(|(k, _)| k != "verify_key")
        .cloned()
        .collect();
    let (status, _) = post_ipn(&app, &without_key).await;
    assert_eq!(status, 400);
    assert!(
        app.metrics_text()
            .await
            .contains("depot_payment_ipn_rejections_total")
    );
    // Nothing was acted on, and the gateway was never asked.
    let callbacks = payment_callback::Entity::find()
        .count(app.store.reader())
        .await
        .unwrap();
    assert_eq!(callbacks, 0);
    assert!(
        gateway
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_session_then_a_valid_ipn_pays_the_order_once_however_often_it_is_posted() {
    let gateway = MockServer::start().await;
    session_opens(&gateway).await;
    let app = gateway_app(&gateway).await;
    let till = Till::open(&app).await;
    let order = till.confirmed_order().await;
    let (status, started) = till.start(order).await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["state"], "pending");
    assert_eq!(started["amount"], TOTAL);
    assert_eq!(started["currency"], "BDT");
    assert!(
        started["gateway_url"]
            .as_str()
            .unwrap()
            .starts_with("https://sandbox.sslcommerz.com/")
    );
    let tran_id = tran(&started);
    assert!(!tran_id.is_empty() && tran_id.len() <= 30, "{tran_id}");

    // The session request carried the documented form fields, the amount from the order.
    let requests = gateway.received_requests().await.unwrap();
    let form: Vec<(String, String)> = form_urlencoded::parse(&requests[0].body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("store_id"), Some(STORE_ID));
    assert_eq!(field("store_passwd"), Some(PASSWORD));
    assert_eq!(field("total_amount"), Some("12345.00"));
    assert_eq!(field("currency"), Some("BDT"));
    assert_eq!(field("tran_id"), Some(tran_id.as_str()));
    assert_eq!(field("cus_name"), Some("Corner Shop"));
    for url in ["success_url", "fail_url", "cancel_url", "ipn_url"] {
        assert!(
            field(url).is_some_and(|u| u.starts_with("http://127.0.0.1:")),
            "{url}"
        );
    }
    assert!(field("ipn_url").unwrap().ends_with(IPN));
    for k in [
        "product_name",
        "product_category",
        "shipping_method",
        "num_of_item",
        "cus_email",
        "cus_phone",
    ] {
        assert!(field(k).is_some(), "{k}");
    }

    validates(
        &gateway,
        "VAL-1",
        valid(&tran_id, "VAL-1", "12345.00", "BDT", "0"),
    )
    .await;
    let fields = ipn(&tran_id, "VAL-1", "VALID", "12345.00", PASSWORD);
    let answers = futures::future::join_all((0..5).map(|_| post_ipn(&app, &fields))).await;
    for (status, body) in &answers {
        assert_eq!(
            (*status, body["state"].as_str()),
            (200, Some("paid")),
            "{body}"
        );
    }
    let payment_id = started["id"].as_str().unwrap();
    let paid = till.payment(payment_id).await;
    assert_eq!(paid["state"], "paid");
    assert_eq!(paid["val_id"], "VAL-1");
    assert_eq!(paid["bank_tran_id"], "BANK-1");
    assert_eq!(count_audit(&app, "payment.paid", payment_id).await, 1);
    assert_eq!(count_events_to(&app, payment_id, "paid").await, 1);
    let order_now = till.order_state(order).await;
    assert_eq!(order_now["state"], "paid", "{order_now}");
    assert_eq!(order_now["amount_paid"], TOTAL);
    // The stored callback is redacted.
    let stored = payment_callback::Entity::find()
        .all(app.store.reader())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].payload.contains("TRUST BANK") && !stored[0].payload.contains("418117"));
    // A late FAILED for the paid payment is ignored (200, still paid).
    let (status, body) = post_ipn(&app, &ipn(&tran_id, "", "FAILED", "12345.00", PASSWORD)).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("paid")),
        "{body}"
    );
    assert_eq!(till.payment(payment_id).await["state"], "paid");
    app.stop().await;
}

#[tokio::test]
async fn validation_that_disagrees_with_the_stored_payment_is_never_paid() {
    let gateway = MockServer::start().await;
    session_opens(&gateway).await;
    let app = gateway_app(&gateway).await;
    let till = Till::open(&app).await;
    // (what the validation API says, the state after, the flag): a report that is not believed
    // holds the payment for a person, unpaid.
    let cases = [
        (
            "VAL-AMOUNT",
            "12345.01",
            "BDT",
            "0",
            "VALID",
            "review",
            Some("amount_mismatch"),
        ),
        (
            "VAL-CURRENCY",
            "12345.00",
            "USD",
            "0",
            "VALID",
            "review",
            Some("currency_mismatch"),
        ),
        (
            "VAL-TRAN",
            "12345.00",
            "BDT",
            "0",
            "VALID",
            "review",
            Some("tran_id_mismatch"),
        ),
        (
            "VAL-INVALID",
            "12345.00",
            "BDT",
            "0",
            "INVALID_TRANSACTION",
            "failed",
            None,
        ),
        ("VAL-RISK", "12345.00", "BDT", "1", "VALID", "review", None),
    ];
    for (val_id, amount, currency, risk, status, want, flag) in cases {
        let order = till.confirmed_order().await;
        let (code, started) = till.start(order).await;
        assert_eq!(code, 201, "{started}");
        let tran_id = tran(&started);
        let said_tran = if val_id == "VAL-TRAN" {
            "DSOMEONEELSE".to_owned()
        } else {
            tran_id.clone()
        };
        let mut answer = valid(&said_tran, val_id, amount, currency, risk);
        answer["status"] = json!(status);
        validates(&gateway, val_id, answer).await;
        // The POSTED values are right: only the validation answer is wrong.
        let (code, body) =
            post_ipn(&app, &ipn(&tran_id, val_id, "VALID", "12345.00", PASSWORD)).await;
        assert_eq!(code, 200, "{val_id}: {body}");
        let p = till.payment(started["id"].as_str().unwrap()).await;
        assert_eq!(p["state"], want, "{val_id}: {p}");
        assert_eq!(p["flag"].as_str(), flag, "{val_id}: {p}");
        let o = till.order_state(order).await;
        assert_eq!(
            (o["state"].as_str(), o["amount_paid"].as_i64()),
            (Some("confirmed"), Some(0)),
            "{val_id}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_success_redirect_pays_nothing_and_the_recovery_job_settles_a_missed_ipn() {
    let gateway = MockServer::start().await;
    session_opens(&gateway).await;
    let app = gateway_app(&gateway).await;
    let till = Till::open(&app).await;
    let order = till.confirmed_order().await;
    let (_, started) = till.start(order).await;
    let tran_id = tran(&started);
    // The browser comes back (GET and the gateway's form POST): it shows, it never pays.
    let shown = app
        .get_json(
            &format!("/api/v1/payments/sslcommerz/success?tran_id={tran_id}"),
            200,
        )
        .await;
    assert_eq!(shown["state"], "pending");
    let posted = app
        .client
        .post(app.url("/api/v1/payments/sslcommerz/success"))
        .form(&ipn(&tran_id, "VAL-R", "VALID", "12345.00", PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 200);
    assert_eq!(till.order_state(order).await["state"], "confirmed");

    Mock::given(method("GET"))
        .and(path(MERCHANT))
        .and(query_param("tran_id", tran_id.as_str()))
        .and(query_param("store_passwd", PASSWORD))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "APIConnect": "DONE", "no_of_trans_found": 1,
            "element": [valid(&tran_id, "VAL-R", "12345.00", "BDT", "0")],
        })))
        .mount(&gateway)
        .await;
    assert_eq!(app.run_job("payments_recovery").await, 1);
    assert_eq!(
        app.run_job("payments_recovery").await,
        0,
        "nothing waits any more"
    );
    assert_eq!(
        till.payment(started["id"].as_str().unwrap()).await["state"],
        "paid"
    );
    assert_eq!(till.order_state(order).await["state"], "paid");
    // The IPN arriving after all changes nothing.
    validates(
        &gateway,
        "VAL-R",
        valid(&tran_id, "VAL-R", "12345.00", "BDT", "0"),
    )
    .await;
    let (status, _) = post_ipn(&app, &ipn(&tran_id, "VAL-R", "VALID", "12345.00", PASSWORD)).await;
    assert_eq!(status, 200);
    assert_eq!(
        count_audit(&app, "payment.paid", started["id"].as_str().unwrap()).await,
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn one_active_payment_per_order_and_method_and_a_new_attempt_after_a_failed_one() {
    let gateway = MockServer::start().await;
    session_opens(&gateway).await;
    let app = gateway_app(&gateway).await;
    let till = Till::open(&app).await;
    let order = till.confirmed_order().await;
    let (status, first) = till.start(order).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = till.start(order).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("payments.active_exists")),
        "{again}"
    );
    // The gateway says it failed: the slot is free again.
    let (status, body) = post_ipn(
        &app,
        &ipn(&tran(&first), "", "FAILED", "12345.00", PASSWORD),
    )
    .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("failed")),
        "{body}"
    );
    let (status, second) = till.start(order).await;
    assert_eq!(status, 201, "{second}");
    assert_ne!(tran(&first), tran(&second));
    // A manual payment is another method: allowed beside it.
    let (status, cash) = till
        .shop
        .seller
        .post(
            "/api/v1/payments",
            json!({ "order_id": order, "method": "cash", "amount": 100, "reference": "R-1" }),
        )
        .await;
    assert_eq!(
        (status, cash["state"].as_str()),
        (201, Some("paid")),
        "{cash}"
    );
    let listed = till
        .finance
        .get(&format!(
            "/api/v1/payments?sales_order_id={order}&method=sslcommerz"
        ))
        .await;
    let states: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["pending", "failed"]);
    app.stop().await;
}

#[tokio::test]
async fn a_gateway_that_times_out_is_retried_then_answered_503_with_nothing_half_made() {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SESSION))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(3)))
        .mount(&gateway)
        .await;
    let app = gateway_app(&gateway).await;
    let till = Till::open(&app).await;
    let order = till.confirmed_order().await;
    let (status, body) = till.start(order).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("payments.gateway_unavailable")),
        "{body}"
    );
    assert_eq!(
        gateway.received_requests().await.unwrap().len(),
        3,
        "the first call and 2 retries"
    );
    let listed = till
        .finance
        .get(&format!("/api/v1/payments?sales_order_id={order}"))
        .await;
    let payments = listed["data"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["state"], "failed", "{}", payments[0]);
    // Once the gateway answers again a new attempt goes through.
    gateway.reset().await;
    session_opens(&gateway).await;
    let (status, body) = till.start(order).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (201, Some("pending")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn refunds_go_pending_then_refunded_and_never_exceed_the_payment() {
    let gateway = MockServer::start().await;
    session_opens(&gateway).await;
    let app = gateway_app(&gateway).await;
    let till = Till::open(&app).await;
    let order = till.confirmed_order().await;
    let (_, started) = till.start(order).await;
    let tran_id = tran(&started);
    let id = started["id"].as_str().unwrap().to_owned();
    validates(
        &gateway,
        "VAL-F",
        valid(&tran_id, "VAL-F", "12345.00", "BDT", "0"),
    )
    .await;
    post_ipn(&app, &ipn(&tran_id, "VAL-F", "VALID", "12345.00", PASSWORD)).await;
    assert_eq!(till.payment(&id).await["state"], "paid");

    let refunds = format!("/api/v1/payments/{id}/refunds");
    let (status, body) = till
        .finance
        .post(
            &refunds,
            json!({ "amount": TOTAL + 1, "remarks": "too much" }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("payments.refund_exceeds")),
        "{body}"
    );
    assert_eq!(body["details"]["refundable"], TOTAL);
    let (status, body) = till
        .shop
        .seller
        .post(&refunds, json!({ "amount": 100, "remarks": "no" }))
        .await;
    assert_eq!(status, 403, "refunds need payments.refund: {body}");

    Mock::given(method("GET"))
        .and(path(MERCHANT))
        .and(query_param("bank_tran_id", "BANK-1"))
        .and(query_param("refund_amount", "2345.00"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "APIConnect": "DONE", "bank_tran_id": "BANK-1", "trans_id": tran_id,
            "refund_ref_id": "REF-1", "status": "success", "errorReason": "",
        })))
        .mount(&gateway)
        .await;
    let (status, refund) = till
        .finance
        .post(
            &refunds,
            json!({ "amount": 234_500, "remarks": "one broken" }),
        )
        .await;
    assert_eq!(
        (status, refund["state"].as_str()),
        (201, Some("pending")),
        "{refund}"
    );
    assert_eq!(refund["refund_ref_id"], "REF-1");
    assert_eq!(till.payment(&id).await["state"], "refund_pending");
    // Another refund waits for this one.
    let (status, body) = till
        .finance
        .post(&refunds, json!({ "amount": 1, "remarks": "more" }))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("payments.invalid_state")),
        "{body}"
    );

    Mock::given(method("GET"))
        .and(path(MERCHANT))
        .and(query_param("refund_ref_id", "REF-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "APIConnect": "DONE", "bank_tran_id": "BANK-1", "tran_id": tran_id,
            "refund_ref_id": "REF-1", "initiated_on": "2026-11-30 10:00:00",
            "refunded_on": "2026-11-30 10:05:00", "status": "refunded", "errorReason": "",
        })))
        .mount(&gateway)
        .await;
    assert_eq!(app.run_job("payments_refund_poll").await, 1);
    let partly = till.payment(&id).await;
    assert_eq!(
        (partly["state"].as_str(), partly["refunded"].as_i64()),
        (Some("paid"), Some(234_500)),
        "{partly}"
    );
    let listed = till.finance.get(&refunds).await;
    assert_eq!(listed["data"][0]["state"], "refunded");
    let (status, body) = till
        .finance
        .post(
            &refunds,
            json!({ "amount": TOTAL - 234_499, "remarks": "all" }),
        )
        .await;
    assert_eq!(
        (status, body["details"]["refundable"].as_i64()),
        (422, Some(TOTAL - 234_500)),
        "{body}"
    );

    // The rest: the payment ends `refunded`.
    Mock::given(method("GET"))
        .and(path(MERCHANT))
        .and(query_param("bank_tran_id", "BANK-1"))
        .and(query_param("refund_amount", "10000.00"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "APIConnect": "DONE", "bank_tran_id": "BANK-1", "trans_id": tran_id,
            "refund_ref_id": "REF-2", "status": "success", "errorReason": "",
        })))
        .mount(&gateway)
        .await;
    Mock::given(method("GET"))
        .and(path(MERCHANT))
        .and(query_param("refund_ref_id", "REF-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "APIConnect": "DONE", "refund_ref_id": "REF-2", "status": "refunded", "errorReason": "",
        })))
        .mount(&gateway)
        .await;
    let (status, rest) = till
        .finance
        .post(
            &refunds,
            json!({ "amount": TOTAL - 234_500, "remarks": "the rest" }),
        )
        .await;
    assert_eq!(
        (status, rest["state"].as_str()),
        (201, Some("pending")),
        "{rest}"
    );
    assert_eq!(app.run_job("payments_refund_poll").await, 1);
    let done = till.payment(&id).await;
    assert_eq!(
        (done["state"].as_str(), done["refunded"].as_i64()),
        (Some("refunded"), Some(TOTAL)),
        "{done}"
    );
    assert_eq!(count_audit(&app, "payment.refund_pending", &id).await, 2);
    assert_eq!(count_audit(&app, "payment.refunded", &id).await, 1);
    let (status, body) = till
        .finance
        .post(&refunds, json!({ "amount": 1, "remarks": "over" }))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("payments.invalid_state")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_manual_payment_is_refunded_at_once() {
    let gateway = MockServer::start().await;
    let app = gateway_app(&gateway).await;
    let till = Till::open(&app).await;
    let order = till.confirmed_order().await;
    let (status, cash) = till
        .finance
        .post(
            "/api/v1/payments",
            json!({ "order_id": order, "method": "cash", "amount": TOTAL }),
        )
        .await;
    assert_eq!(
        (status, cash["state"].as_str()),
        (201, Some("paid")),
        "{cash}"
    );
    assert_eq!(till.order_state(order).await["state"], "paid");
    let id = cash["id"].as_str().unwrap();
    let (status, refund) = till
        .finance
        .post(
            &format!("/api/v1/payments/{id}/refunds"),
            json!({ "amount": TOTAL, "remarks": "returned" }),
        )
        .await;
    assert_eq!(
        (status, refund["state"].as_str()),
        (201, Some("refunded")),
        "{refund}"
    );
    let p = till.payment(id).await;
    assert_eq!(
        (p["state"].as_str(), p["refunded"].as_i64()),
        (Some("refunded"), Some(TOTAL))
    );
    let (status, body) = till
        .finance
        .post(
            &format!("/api/v1/payments/{id}/refunds"),
            json!({ "amount": 1, "remarks": "again" }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("payments.invalid_state")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_simulator_runs_the_whole_flow_and_its_tampering_is_caught() {
    let app = spawn_app_with(|s| {
        s.payments_enabled = true;
        s.payments_gateway = PaymentsGateway::Simulator;
        s.sslcommerz_store_id = Some(STORE_ID.into());
        s.sslcommerz_store_password = Some(Secret::new("simulated-store-password"));
    })
    .await;
    let till = Till::open(&app).await;
    for (tamper, want, flag) in [
        (None, "paid", None),
        (Some("amount"), "review", Some("amount_mismatch")),
        (Some("currency"), "review", Some("currency_mismatch")),
        (Some("risk"), "review", None),
    ] {
        let order = till.confirmed_order().await;
        let (status, started) = till.start(order).await;
        assert_eq!(status, 201, "{started}");
        let page = started["gateway_url"].as_str().unwrap().to_owned();
        assert!(
            page.starts_with(&app.url("/simulator/sslcommerz/pay/")),
            "{page}"
        );
        let html = app
            .client
            .get(&page)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("value=\"pay\""), "{html}");
        let mut form = vec![("action", "pay")];
        if let Some(t) = tamper {
            form.push(("tamper", t));
        }
        let pressed = app.client.post(&page).form(&form).send().await.unwrap();
        assert_eq!(pressed.status().as_u16(), 303);
        let back = pressed.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            back.contains("/api/v1/payments/sslcommerz/success?tran_id="),
            "{back}"
        );
        let shown: Value = app
            .client
            .get(&back)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(shown["state"], want, "{tamper:?}");
        let p = till.payment(started["id"].as_str().unwrap()).await;
        assert_eq!(
            (p["state"].as_str(), p["flag"].as_str()),
            (Some(want), flag),
            "{tamper:?}: {p}"
        );
        let paid = want == "paid";
        assert_eq!(
            till.order_state(order).await["state"] == "paid",
            paid,
            "{tamper:?}"
        );
    }
    // The review is approved by a person: the order is paid then.
    // A person approves the risky one (the newest held); one whose numbers disagreed is
    // never approved, only cancelled.
    let held = till.finance.get("/api/v1/payments?state=review").await;
    let held = held["data"].as_array().unwrap().clone();
    assert_eq!(held.len(), 3);
    let mismatched = held
        .iter()
        .find(|p| p["flag"] == "amount_mismatch")
        .unwrap();
    let path = format!(
        "/api/v1/payments/{}/approve",
        mismatched["id"].as_str().unwrap()
    );
    let (status, body) = till.finance.post(&path, json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("payments.invalid_state")),
        "{body}"
    );
    let path = format!(
        "/api/v1/payments/{}/cancel",
        mismatched["id"].as_str().unwrap()
    );
    let (status, body) = till.finance.post(&path, json!({})).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    let held_id = held[0]["id"].as_str().unwrap().to_owned();
    assert!(held[0]["flag"].is_null(), "{}", held[0]);
    let (status, approved) = till
        .finance
        .post(&format!("/api/v1/payments/{held_id}/approve"), json!({}))
        .await;
    assert_eq!(
        (status, approved["state"].as_str()),
        (200, Some("paid")),
        "{approved}"
    );
    app.stop().await;
}
