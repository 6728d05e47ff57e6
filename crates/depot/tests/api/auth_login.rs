//! Sign-in: passwords, the generic failure, lockout and rate limits.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Http, PASSWORD, assert_envelope, spawn_app, spawn_app_with};

fn field_codes(body: &Value) -> Vec<(String, String)> {
    body["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().to_owned(),
                f["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_password_policy_is_checked_as_typed_and_hashes_use_the_owasp_parameters() {
    let app = spawn_app().await;
    let admin = app
        .sign_in_with("root@example.com", &["users.manage", "users.read"])
        .await;
    let create = |email: &str, password: &str| json!({ "email": email, "display_name": "X", "password": password, "roles": [] });
    for (password, code) in [
        ("seven77", "password.too_short"),
        ("qwerty123456", "password.common"),
        (&"p".repeat(129) as &str, "password.too_long"),
    ] {
        let response = app
            .call(
                "POST",
                "/api/v1/users",
                Some(&admin.access_token),
                Some(&create("b@example.com", password)),
            )
            .await;
        let body = assert_envelope(response, 422, "validation", "validation.failed").await;
        assert_eq!(
            field_codes(&body),
            [("password".to_owned(), code.to_owned())],
            "{password}"
        );
    }
    // Every failing field at once.
    let response = app
        .call(
            "POST",
            "/api/v1/users",
            Some(&admin.access_token),
            Some(
                &json!({ "email": "nope", "display_name": "", "phone": "12", "password": "short" }),
            ),
        )
        .await;
    let body = assert_envelope(response, 422, "validation", "validation.failed").await;
    let fields: Vec<String> = field_codes(&body).into_iter().map(|(f, _)| f).collect();
    for field in ["email", "display_name", "phone", "password"] {
        assert!(fields.contains(&field.to_owned()), "{field} in {body}");
    }

    let passphrase = "correct horse battery staple, then a few more words to reach 64!";
    assert_eq!(passphrase.chars().count(), 64);
    let response = app
        .call(
            "POST",
            "/api/v1/users",
            Some(&admin.access_token),
            Some(&create("Bea@Example.com", passphrase)),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    // Sign in with the email in another case: emails are unique case-insensitively.
    app.login("bea@example.COM", passphrase).await;
    let dup = app
        .call(
            "POST",
            "/api/v1/users",
            Some(&admin.access_token),
            Some(&create("BEA@example.com", passphrase)),
        )
        .await;
    assert_envelope(dup, 409, "conflict", "users.email_taken").await;

    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let row = depot_store::repo::users::get(app.store.reader(), id)
        .await
        .unwrap()
        .unwrap();
    let hash = row.password_hash.unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(passphrase));
    app.stop().await;
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", &["viewer"]).await;
    let attempt = |email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let response = app.try_login(email, password).await;
            let status = response.status().as_u16();
            let mut body: Value = response.json().await.unwrap();
            body["request_id"] = Value::Null;
            (status, body)
        }
    };
    let (s1, b1) = attempt("nobody@example.com", "whatever whatever").await;
    let (s2, b2) = attempt("ann@example.com", "wrong password here").await;
    assert_eq!((s1, &b1), (s2, &b2));
    assert_eq!(s1, 401);
    assert_eq!(b1["code"], "auth.invalid_credentials");
    // That both paths run one argon2 verification is counted in
    // `counters::an_unknown_account_costs_one_password_verification_like_a_known_one`.
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_lock_the_account_until_the_window_passes() {
    let app = spawn_app_with(|s| {
        s.login_lockout_threshold = 3;
        s.login_lockout_base_secs = 2;
    })
    .await;
    let id = app.create_user("ann@example.com", &["viewer"]).await;
    let login = |password: &'static str| {
        let app = &app;
        async move { app.try_login("ann@example.com", password).await }
    };
    for _ in 0..3 {
        assert_envelope(
            login("wrong password here").await,
            401,
            "unauthorized",
            "auth.invalid_credentials",
        )
        .await;
    }
    let user = depot_store::repo::users::get(app.store.reader(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.failed_logins, 3);
    assert!(user.locked_until.is_some(), "locked after the threshold");
    // The right password while locked: the same generic failure.
    let locked = login(PASSWORD).await;
    let body = assert_envelope(locked, 401, "unauthorized", "auth.invalid_credentials").await;
    assert!(!body.to_string().contains("lock"), "{body}");

    tokio::time::sleep(Duration::from_millis(2_300)).await;
    assert_eq!(login(PASSWORD).await.status(), 200, "after the lock window");
    let user = depot_store::repo::users::get(app.store.reader(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.failed_logins, 0, "success resets the counter");
    assert_eq!(user.locked_until, None);

    // Audited: failures, the lock, the refusal and the success.
    let actions: Vec<String> = depot_store::repo::audit::list(
        app.store.reader(),
        &depot_domain::audit::AuditFilter {
            actor_id: Some(id),
            action: None,
        },
        &depot_domain::pagination::PageRequest::parse(Some("50"), None).unwrap(),
    )
    .await
    .unwrap()
    .data
    .into_iter()
    .map(|e| e.action)
    .collect();
    for action in [
        "login.failure",
        "login.locked",
        "login.refused",
        "login.success",
    ] {
        assert!(
            actions.contains(&action.to_owned()),
            "{action} in {actions:?}"
        );
    }
    // (Lockouts are counted: `counters::a_lockout_counts_once`.)
    app.stop().await;
}

#[tokio::test]
async fn an_admin_unlocks_a_locked_account() {
    let app = spawn_app_with(|s| {
        s.login_lockout_threshold = 2;
        s.login_lockout_base_secs = 600;
    })
    .await;
    let admin = app
        .sign_in_with("root@example.com", &["users.manage"])
        .await;
    // (Root may unlock ann: ann holds nothing root does not.)
    let id = app.create_user("ann@example.com", &[]).await;
    for _ in 0..2 {
        app.try_login("ann@example.com", "wrong password here")
            .await;
    }
    let locked = app.try_login("ann@example.com", PASSWORD).await;
    assert_eq!(locked.status(), 401);
    let unlock = app
        .call(
            "POST",
            &format!("/api/v1/users/{id}/unlock"),
            Some(&admin.access_token),
            None,
        )
        .await;
    assert_eq!(unlock.status(), 200);
    app.login("ann@example.com", PASSWORD).await;
    app.stop().await;
}

#[tokio::test]
async fn login_is_rate_limited_with_retry_after_and_ratelimit_headers() {
    let app = spawn_app_with(|s| {
        s.auth_rate_limit_per_account = 3;
        s.auth_rate_limit_window_secs = 60;
    })
    .await;
    app.create_user("ann@example.com", &["viewer"]).await;
    let body = json!({ "email": "ann@example.com", "password": "wrong password here" });
    for _ in 0..3 {
        assert_eq!(
            app.post_json("/api/v1/auth/login", &body).await.status(),
            401
        );
    }
    let limited = app.post_json("/api/v1/auth/login", &body).await;
    let headers = limited.headers().clone();
    assert_envelope(limited, 429, "rate_limited", "rate_limited").await;
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(headers["ratelimit-policy"], "\"login_account\";q=3;w=60");
    let ratelimit = headers["ratelimit"].to_str().unwrap();
    assert!(
        ratelimit.starts_with("\"login_account\";r=0;t="),
        "{ratelimit}"
    );
    // Even the right password is refused while limited: the limiter runs first.
    let right = app.try_login("ann@example.com", PASSWORD).await;
    assert_eq!(right.status(), 429);
    // Another account from the same address is not limited by this account's counter.
    app.create_user("bob@example.com", &["viewer"]).await;
    app.login("bob@example.com", PASSWORD).await;
    app.stop().await;
}

#[tokio::test]
async fn the_per_ip_limit_applies_across_accounts() {
    let app = spawn_app_with(|s| {
        s.auth_rate_limit_per_ip = 4;
    })
    .await;
    for i in 0..4 {
        let response = app.try_login(&format!("u{i}@example.com"), "x").await;
        assert_eq!(response.status(), 401);
    }
    let limited = app.try_login("u9@example.com", "x").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(
        limited.headers()["ratelimit-policy"],
        "\"login_ip\";q=4;w=60"
    );
    app.stop().await;
}

#[tokio::test]
async fn with_redis_the_limit_is_shared_by_every_instance() {
    if depot_testkit::redis_or_skip("auth_login::with_redis_the_limit_is_shared").is_none() {
        return;
    }
    let app = spawn_app_with(|s| s.auth_rate_limit_per_account = 3).await;
    let peer = app.spawn_peer().await;
    let body = json!({ "email": "ann@example.com", "password": "wrong password here" });
    assert_eq!(
        app.post_json("/api/v1/auth/login", &body).await.status(),
        401
    );
    assert_eq!(
        peer.call("POST", "/api/v1/auth/login", None, Some(&body))
            .await
            .status(),
        401
    );
    assert_eq!(
        app.post_json("/api/v1/auth/login", &body).await.status(),
        401
    );
    let fourth = peer
        .call("POST", "/api/v1/auth/login", None, Some(&body))
        .await;
    assert_eq!(
        fourth.status(),
        429,
        "the peer counts the attempts made on the first instance"
    );
    peer.stop().await;
    app.stop().await;
}

async fn access_token(signed_in: reqwest::Response) -> String {
    signed_in.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The caller's sessions (`GET /auth/sessions`), newest first.
async fn sessions_of(app: &crate::helpers::TestApp, token: &str) -> Value {
    app.client
        .get(app.url("/api/v1/auth/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A sign-in as a client behind a proxy that wrote `X-Forwarded-For: forwarded`.
async fn login_via(
    app: &crate::helpers::TestApp,
    forwarded: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", forwarded)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_moves_no_bucket() {
    // No trusted proxies: the test client's own address is the client, whatever it claims.
    let app = spawn_app_with(|s| s.auth_rate_limit_per_ip = 3).await;
    for i in 0..3 {
        let r = login_via(&app, &format!("198.51.100.{i}"), "x@example.com", "x").await;
        assert_eq!(r.status(), 401);
    }
    let limited = login_via(&app, "198.51.100.99", "y@example.com", "x").await;
    assert_eq!(limited.status(), 429, "one bucket: the peer's");
    app.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_counted_and_recorded() {
    let app = spawn_app_with(|s| {
        s.auth_rate_limit_per_ip = 2;
        s.trusted_proxies = vec!["127.0.0.0/8".into(), "::1".into()];
    })
    .await;
    // The client prepended a lie; the proxy appended the address it saw.
    for client in ["198.51.100.1", "198.51.100.2"] {
        for _ in 0..2 {
            let r = login_via(&app, &format!("6.6.6.6, {client}"), "x@example.com", "x").await;
            assert_eq!(r.status(), 401);
        }
    }
    let limited = login_via(&app, "7.7.7.7, 198.51.100.1", "x@example.com", "x").await;
    assert_eq!(limited.status(), 429, "198.51.100.1 used its two attempts");

    // Sessions and the audit log record the forwarded client.
    app.create_user("ann@example.com", &["viewer"]).await;
    let signed_in = login_via(&app, "198.51.100.3", "ann@example.com", PASSWORD).await;
    assert_eq!(signed_in.status(), 200);
    let token = access_token(signed_in).await;
    let sessions = sessions_of(&app, &token).await;
    assert_eq!(sessions["data"][0]["ip"], "198.51.100.3", "{sessions}");

    // A client that makes its part of the header unreadable does not hide the hop the proxy
    // appended: the walk ends at the bad hop, the one after it is the client.
    let garbled = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header(
            "x-forwarded-for",
            reqwest::header::HeaderValue::from_bytes(b"\xff6.6.6.6, 198.51.100.4").unwrap(),
        )
        .json(&json!({ "email": "ann@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(garbled.status(), 200);
    let token = access_token(garbled).await;
    let sessions = sessions_of(&app, &token).await;
    let ips: Vec<&str> = sessions["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["ip"].as_str())
        .collect();
    assert!(ips.contains(&"198.51.100.4"), "{sessions}");
    app.stop().await;
}
