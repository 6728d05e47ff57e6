//! Notifications through HTTP: who hears of an alert (holders of `stock.read` who did not opt
//! out), the inbox (unread, read, read-all, someone else's → 404), preferences (defaults,
//! security locked, unknown user → 404), security events (new device, password changed) and
//! email notifications retried while SMTP is down until they are sent or `dead`.

use std::time::Duration;

use depot_app::config::ServiceUrl;
use depot_store::entity::outbound_email;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Http, Session, TestApp, spawn_app, spawn_app_with};
use crate::mail::{free_port, smtp_server_at};
use crate::messaging::eventually;
use crate::stock::{Desk, id};
use crate::{purchasing, sales::Shop};

pub(crate) async fn call(
    app: &TestApp,
    who: &Session,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let response = app
        .call(method, path, Some(&who.access_token), body.as_ref())
        .await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub(crate) async fn inbox(app: &TestApp, who: &Session, query: &str) -> Vec<Value> {
    let (status, body) = call(
        app,
        who,
        "GET",
        &format!("/api/v1/notifications?{query}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

async fn unread(app: &TestApp, who: &Session) -> u64 {
    let (status, body) = call(app, who, "GET", "/api/v1/notifications/unread-count", None).await;
    assert_eq!(status, 200, "{body}");
    body["unread"].as_u64().unwrap()
}

async fn prefer(app: &TestApp, who: &Session, changes: Value) -> (u16, Value) {
    call(
        app,
        who,
        "PUT",
        "/api/v1/users/me/notification-preferences",
        Some(json!({ "preferences": changes })),
    )
    .await
}

/// A product below its reorder point at a new location: raises one `low_stock` alert.
pub(crate) async fn raise_low_stock(desk: &Desk<'_>, sku: &str) -> (Uuid, Uuid) {
    let here = desk.location(&format!("L-{sku}")).await;
    let product = desk
        .product(
            sku,
            "pcs",
            json!({ "reorder_point": 150, "reorder_quantity": 500 }),
        )
        .await;
    desk.add(product, here, json!(200), json!({})).await;
    desk.add(product, here, json!(-60), json!({ "reason": "damaged" }))
        .await;
    (product, here)
}

fn user(tag: &str) -> String {
    format!("{tag}-{}@example.com", Uuid::now_v7().simple())
}

#[tokio::test]
async fn an_alert_notifies_who_may_see_stock_and_wants_to_and_nobody_else() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let watcher = app.sign_in_with(&user("watcher"), &["stock.read"]).await;
    let outsider = app
        .sign_in_with(&user("outsider"), &["products.read"])
        .await;
    let quiet = app.sign_in_with(&user("quiet"), &["stock.read"]).await;
    let mailed = app.sign_in_with(&user("mailed"), &["stock.read"]).await;
    let (status, body) = prefer(
        &app,
        &quiet,
        json!([{ "event_type": "alert.raised", "channel": "in_app", "enabled": false }]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = prefer(
        &app,
        &mailed,
        json!([{ "event_type": "alert.raised", "channel": "email", "enabled": true }]),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    raise_low_stock(&desk, "BOLTS").await;
    eventually(
        Duration::from_secs(10),
        "the watcher is notified",
        || async { !inbox(&app, &watcher, "").await.is_empty() },
    )
    .await;
    let got = inbox(&app, &watcher, "").await;
    assert_eq!(got.len(), 1, "{got:?}");
    let n = &got[0];
    assert_eq!(n["event_type"], "alert.raised");
    assert_eq!(n["channel"], "in_app");
    assert_eq!(n["status"], "sent");
    assert_eq!(n["user_id"], json!(watcher.user_id));
    assert!(
        n["title"].as_str().unwrap().contains("Low stock")
            && n["title"].as_str().unwrap().contains("BOLTS"),
        "{n}"
    );
    assert_eq!(n["payload"]["kind"], "low_stock");
    assert_eq!(n["read_at"], Value::Null);
    assert_eq!(unread(&app, &watcher).await, 1);

    // The email one follows the mail queue; the in-app one is there too.
    eventually(
        Duration::from_secs(10),
        "the email notification is sent",
        || async {
            let emails = inbox(&app, &mailed, "channel=email").await;
            emails.len() == 1 && emails[0]["status"] == "sent"
        },
    )
    .await;
    assert_eq!(inbox(&app, &mailed, "").await.len(), 1);
    let queued = outbound_email::Entity::find()
        .filter(outbound_email::Column::ToAddress.eq(mailed.email.as_str()))
        .all(app.store.reader())
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert!(
        queued[0].subject.contains("BOLTS"),
        "{:?}",
        queued[0].subject
    );
    // Nobody else's address got the alert by email (it is opt-in).
    let to_watcher = outbound_email::Entity::find()
        .filter(outbound_email::Column::ToAddress.eq(watcher.email.as_str()))
        .all(app.store.reader())
        .await
        .unwrap();
    assert!(to_watcher.is_empty());

    assert!(inbox(&app, &outsider, "").await.is_empty(), "no stock.read");
    assert!(inbox(&app, &quiet, "").await.is_empty(), "opted out");
    assert_eq!(unread(&app, &quiet).await, 0);

    // Someone else's notification does not exist for you.
    let id = n["id"].as_str().unwrap();
    for (method, path) in [
        ("GET", format!("/api/v1/notifications/{id}")),
        ("POST", format!("/api/v1/notifications/{id}/read")),
    ] {
        let (status, body) = call(&app, &outsider, method, &path, None).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["code"], "notifications.not_found");
    }
    let (status, body) = call(
        &app,
        &outsider,
        "GET",
        "/api/v1/notifications?all_users=true",
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Whoever may see everyone's does.
    let auditor = app
        .sign_in_with(&user("auditor"), &["notifications.manage_all"])
        .await;
    let theirs = inbox(
        &app,
        &auditor,
        &format!("all_users=true&user_id={}", watcher.user_id),
    )
    .await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["id"], n["id"]);

    let (status, read) = call(
        &app,
        &watcher,
        "POST",
        &format!("/api/v1/notifications/{id}/read"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert!(read["read_at"].is_string());
    let (_, again) = call(
        &app,
        &watcher,
        "POST",
        &format!("/api/v1/notifications/{id}/read"),
        None,
    )
    .await;
    assert_eq!(
        again["read_at"], read["read_at"],
        "the first reading counts"
    );
    assert_eq!(unread(&app, &watcher).await, 0);
    assert!(inbox(&app, &watcher, "unread=true").await.is_empty());
    assert_eq!(inbox(&app, &watcher, "unread=false").await.len(), 1);

    // A second alert, then everything read at once.
    raise_low_stock(&desk, "NUTS").await;
    eventually(
        Duration::from_secs(10),
        "the second alert arrives",
        || async { unread(&app, &watcher).await == 1 },
    )
    .await;
    let (status, body) = call(
        &app,
        &watcher,
        "POST",
        "/api/v1/notifications/read-all",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["marked"], 1);
    assert_eq!(unread(&app, &watcher).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn preferences_have_defaults_security_is_locked_and_only_existing_users_have_them() {
    let app = spawn_app().await;
    let me = app.sign_in_with(&user("me"), &[]).await;
    let (status, body) = call(
        &app,
        &me,
        "GET",
        "/api/v1/users/me/notification-preferences",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let prefs = body["preferences"].as_array().unwrap();
    let find = |prefs: &[Value], kind: &str, channel: &str| -> Value {
        prefs
            .iter()
            .find(|p| p["event_type"] == kind && p["channel"] == channel)
            .cloned()
            .unwrap_or_else(|| panic!("{kind}/{channel} missing"))
    };
    assert_eq!(prefs.len(), 16, "8 types × 2 channels");
    let alert_email = find(prefs, "alert.raised", "email");
    assert_eq!(alert_email["enabled"], false);
    assert_eq!(alert_email["default"], true);
    let security = find(prefs, "security.password_changed", "email");
    assert_eq!(security["enabled"], true);
    assert_eq!(security["locked"], true);

    // Switching a security notification off is refused, with every refused change named;
    // nothing of the request is applied.
    let (status, body) = prefer(
        &app,
        &me,
        json!([
            { "event_type": "alert.raised", "channel": "email", "enabled": true },
            { "event_type": "security.password_changed", "channel": "in_app", "enabled": false },
            { "event_type": "security.mfa_changed", "channel": "email", "enabled": false },
        ]),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<(String, String)> = body["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().into(),
                f["code"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        vec![
            ("preferences[1].enabled".to_owned(), "locked".to_owned()),
            ("preferences[2].enabled".to_owned(), "locked".to_owned()),
        ]
    );
    let (_, body) = call(
        &app,
        &me,
        "GET",
        "/api/v1/users/me/notification-preferences",
        None,
    )
    .await;
    assert_eq!(
        find(
            body["preferences"].as_array().unwrap(),
            "alert.raised",
            "email"
        )["enabled"],
        false
    );

    let (status, body) = prefer(
        &app,
        &me,
        json!([{ "event_type": "alert.raised", "channel": "email", "enabled": true }]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let changed = find(
        body["preferences"].as_array().unwrap(),
        "alert.raised",
        "email",
    );
    assert_eq!(changed["enabled"], true);
    assert_eq!(changed["default"], false);

    let (status, body) = prefer(
        &app,
        &me,
        json!([{ "event_type": "alert.fired", "channel": "email", "enabled": true }]),
    )
    .await;
    assert_eq!(status, 422, "an unknown type: {body}");

    // Another user's: only with users.manage, and only when the user exists.
    let admin = app.sign_in_with(&user("admin"), &["users.manage"]).await;
    let nobody = Uuid::now_v7();
    for method in ["GET", "PUT"] {
        let path = format!("/api/v1/users/{nobody}/notification-preferences");
        let body = (method == "PUT").then(|| json!({ "preferences": [] }));
        let (status, answer) = call(&app, &admin, method, &path, body.clone()).await;
        assert_eq!(status, 404, "{method}: {answer}");
        assert_eq!(answer["code"], "users.not_found");
        let (status, _) = call(&app, &me, method, &path, body).await;
        assert_eq!(status, 403);
    }
    let (status, theirs) = call(
        &app,
        &admin,
        "GET",
        &format!("/api/v1/users/{}/notification-preferences", me.user_id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        find(
            theirs["preferences"].as_array().unwrap(),
            "alert.raised",
            "email"
        )["enabled"],
        true
    );
    app.stop().await;
}

async fn login_from(app: &TestApp, email: &str, agent: &str) -> u16 {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", agent)
        .json(&json!({ "email": email, "password": crate::helpers::PASSWORD }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn security_events_reach_their_user_whatever_the_preferences() {
    let app = spawn_app().await;
    let me = app.sign_in_with(&user("me"), &[]).await;
    // Signed in again from the same client: nothing; from another one: a notification, once.
    assert_eq!(
        app.try_login(&me.email, crate::helpers::PASSWORD)
            .await
            .status(),
        200
    );
    for _ in 0..2 {
        assert_eq!(
            login_from(&app, &me.email, "Firefox/140 on a new laptop").await,
            200
        );
    }
    eventually(
        Duration::from_secs(10),
        "the new device is reported",
        || async {
            !inbox(&app, &me, "type=security.new_device_sign_in")
                .await
                .is_empty()
        },
    )
    .await;
    let new_device = inbox(&app, &me, "type=security.new_device_sign_in").await;
    assert_eq!(new_device.len(), 1, "{new_device:?}");
    assert!(
        new_device[0]["body"]
            .as_str()
            .unwrap()
            .contains("Firefox/140")
    );

    change_password(&app, &me).await;
    eventually(
        Duration::from_secs(10),
        "the change is reported in the app and by email",
        || async {
            inbox(&app, &me, "type=security.password_changed")
                .await
                .len()
                == 1
                && inbox(&app, &me, "type=security.password_changed&channel=email")
                    .await
                    .len()
                    == 1
        },
    )
    .await;
    let email = &inbox(&app, &me, "type=security.password_changed&channel=email").await[0];
    assert_eq!(email["title"], "Your password was changed");
    app.stop().await;
}

async fn email_notification(app: &TestApp, who: &Session) -> Option<Value> {
    inbox(app, who, "channel=email&type=security.password_changed")
        .await
        .into_iter()
        .next()
}

async fn change_password(app: &TestApp, who: &Session) {
    let (status, body) = call(
        app,
        who,
        "POST",
        "/api/v1/users/me/password",
        Some(json!({
            "current_password": crate::helpers::PASSWORD,
            "new_password": "another long and unguessable passphrase 43",
        })),
    )
    .await;
    assert_eq!(status, 204, "{body}");
}

/// An app mailing through SMTP at `port` (nothing listens there yet) with this retry schedule,
/// and a user who just changed their password (a security notification, emailed).
async fn password_changed_with_smtp_at(
    port: u16,
    retry_base_ms: u64,
    attempts: u32,
) -> (TestApp, Session) {
    let url = format!("smtp://127.0.0.1:{port}?tls=none");
    let app = spawn_app_with(|s| {
        s.smtp_url = Some(ServiceUrl::new(url));
        s.mail_retry_base_ms = retry_base_ms;
        s.mail_max_attempts = attempts;
    })
    .await;
    let me = app.sign_in_with(&user("me"), &[]).await;
    change_password(&app, &me).await;
    (app, me)
}

#[tokio::test]
async fn an_email_notification_is_retried_while_smtp_is_down_and_sent_when_it_is_back() {
    let port = free_port();
    let (app, me) = password_changed_with_smtp_at(port, 200, 50).await;
    eventually(
        Duration::from_secs(15),
        "a failed attempt is recorded",
        || async {
            email_notification(&app, &me)
                .await
                .is_some_and(|n| n["status"] == "failed" && n["attempts"].as_i64() >= Some(2))
        },
    )
    .await;
    let failed = email_notification(&app, &me).await.unwrap();
    assert!(
        failed["last_error"].as_str().unwrap().contains("SMTP"),
        "{failed}"
    );
    assert!(failed["next_attempt_at"].is_string(), "{failed}");

    // The server comes back: the next attempt sends it.
    let Some(server) = smtp_server_at(port) else {
        app.stop().await;
        return;
    };
    eventually(
        Duration::from_secs(20),
        "sent once the server is back",
        || async {
            email_notification(&app, &me)
                .await
                .is_some_and(|n| n["status"] == "sent")
        },
    )
    .await;
    let sent = email_notification(&app, &me).await.unwrap();
    assert!(sent["sent_at"].is_string());
    let new = server.maildir.path().join("box").join("new");
    let received: Vec<_> = std::fs::read_dir(&new).unwrap().flatten().collect();
    assert_eq!(received.len(), 1);
    let text = std::fs::read_to_string(received[0].path()).unwrap();
    assert!(
        text.contains("Subject: Your password was changed"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_email_notification_still_failing_after_the_last_attempt_is_dead_and_admins_see_it() {
    let (app, me) = password_changed_with_smtp_at(free_port(), 100, 3).await;
    eventually(
        Duration::from_secs(20),
        "dead after the last attempt",
        || async {
            email_notification(&app, &me)
                .await
                .is_some_and(|n| n["status"] == "dead")
        },
    )
    .await;
    let dead = email_notification(&app, &me).await.unwrap();
    assert_eq!(dead["attempts"], 3);
    assert_eq!(dead["next_attempt_at"], Value::Null);
    let admin = app
        .sign_in_with(&user("admin"), &["notifications.manage_all"])
        .await;
    let seen = inbox(&app, &admin, "all_users=true&status=dead&channel=email").await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["id"], dead["id"]);
    app.stop().await;
}

async fn titles(app: &TestApp, who: &Session, kind: &str) -> Vec<String> {
    inbox(app, who, &format!("type={kind}"))
        .await
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn order_and_payment_changes_reach_the_creator_the_approvers_and_the_owner() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let buyer = purchasing::signed_in(
        &app,
        "buyer",
        &[
            "purchase_orders.read",
            "purchase_orders.create",
            "suppliers.manage",
            "products.read",
        ],
    )
    .await;
    let approver = purchasing::signed_in(&app, "approver", purchasing::APPROVER).await;
    let bystander = purchasing::signed_in(&app, "bystander", &["purchase_orders.read"]).await;
    let milk = desk.product("MILK", "pcs", json!({})).await;
    let vendor = purchasing::supplier(&buyer).await;
    let po = id(&purchasing::draft(&buyer, vendor, milk, 10).await);

    assert_eq!(purchasing::step(&buyer, po, "submit").await.0, 200);
    eventually(Duration::from_secs(10), "the approver is asked", || async {
        titles(&app, &approver.user, "purchase_order.transitioned")
            .await
            .len()
            == 1
    })
    .await;
    assert!(
        titles(&app, &approver.user, "purchase_order.transitioned").await[0]
            .ends_with("is submitted")
    );
    assert_eq!(purchasing::step(&approver, po, "approve").await.0, 200);
    eventually(
        Duration::from_secs(10),
        "the creator hears of both steps",
        || async {
            titles(&app, &buyer.user, "purchase_order.transitioned")
                .await
                .len()
                == 2
        },
    )
    .await;
    let heard = titles(&app, &buyer.user, "purchase_order.transitioned").await;
    assert!(heard[0].ends_with("is approved"), "newest first: {heard:?}");
    assert_eq!(
        titles(&app, &approver.user, "purchase_order.transitioned")
            .await
            .len(),
        1,
        "approvers are asked on submission only"
    );
    assert!(inbox(&app, &bystander.user, "").await.is_empty());

    // A sales order and its payment: the owner hears of both.
    let shop = Shop::open(&app).await;
    let tea = shop.desk.product("TEA", "pcs", json!({})).await;
    shop.desk.add(tea, shop.here, json!(10), json!({})).await;
    let order = id(&shop.order(&[(tea, json!(4), 2_500)]).await);
    assert_eq!(shop.step(order, "confirm").await.0, 200);
    let (status, body) = shop
        .seller
        .post(
            &format!("/api/v1/sales-orders/{order}/payments"),
            json!({ "method": "cash", "amount": 10_000, "reference": "R-1" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let seller = &shop.seller.user;
    eventually(
        Duration::from_secs(10),
        "the owner hears of the order and the payment",
        || async {
            !titles(&app, seller, "payment.transitioned")
                .await
                .is_empty()
                && titles(&app, seller, "sales_order.transitioned").await.len() >= 2
        },
    )
    .await;
    let payment = titles(&app, seller, "payment.transitioned").await;
    assert!(
        payment[0].starts_with("Payment of 100.00 BDT"),
        "{payment:?}"
    );
    let orders = titles(&app, seller, "sales_order.transitioned").await;
    assert!(orders.iter().any(|t| t.ends_with("is paid")), "{orders:?}");
    assert!(
        orders.iter().any(|t| t.ends_with("is confirmed")),
        "{orders:?}"
    );
    assert!(
        inbox(&app, &shop.desk.user, "type=sales_order.transitioned")
            .await
            .is_empty()
    );
    app.stop().await;
}
