//! The browser flow: refresh token in a `__Host-` cookie, CSRF token and Origin checks.

use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::{Http, PASSWORD, TestApp, assert_envelope, spawn_app_with};

const ORIGIN: &str = "https://app.example.com";

struct Browser {
    refresh_cookie: String,
    csrf_token: String,
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

async fn browser_login(app: &TestApp, email: &str) -> Browser {
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("origin", ORIGIN)
        .json(&json!({ "email": email, "password": PASSWORD, "use_cookie": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set_refresh =
        cookie_value(response.headers(), "__Host-depot_refresh").expect("refresh cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(
            set_refresh.contains(attribute),
            "{attribute} in {set_refresh}"
        );
    }
    let set_csrf = cookie_value(response.headers(), "__Host-depot_csrf").expect("csrf cookie");
    assert!(
        !set_csrf.contains("HttpOnly"),
        "the page must read the CSRF cookie"
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body["refresh_token"].is_null(),
        "not in the body with the cookie flow: {body}"
    );
    let value = |set: &str| {
        set.split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned()
    };
    assert_eq!(value(&set_csrf), body["csrf_token"].as_str().unwrap());
    Browser {
        refresh_cookie: value(&set_refresh),
        csrf_token: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

async fn cookie_refresh(
    app: &TestApp,
    b: &Browser,
    origin: Option<&str>,
    csrf: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.post(app.url("/api/v1/auth/refresh")).header(
        "cookie",
        format!("__Host-depot_refresh={}", b.refresh_cookie),
    );
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn cookie_refresh_needs_the_sessions_csrf_token_and_an_allowed_origin() {
    let app = spawn_app_with(|s| s.cors_origins = vec![ORIGIN.into()]).await;
    app.create_user("ann@example.com", &["viewer"]).await;
    app.create_user("bob@example.com", &["viewer"]).await;
    let ann = browser_login(&app, "ann@example.com").await;
    let bob = browser_login(&app, "bob@example.com").await;

    let none = cookie_refresh(&app, &ann, Some(ORIGIN), None).await;
    assert_envelope(none, 403, "forbidden", "csrf.token_missing").await;
    let others = cookie_refresh(&app, &ann, Some(ORIGIN), Some(&bob.csrf_token)).await;
    assert_envelope(others, 403, "forbidden", "csrf.token_invalid").await;
    let evil = cookie_refresh(
        &app,
        &ann,
        Some("https://evil.example.com"),
        Some(&ann.csrf_token),
    )
    .await;
    assert_envelope(evil, 403, "forbidden", "csrf.origin_not_allowed").await;
    let no_origin = cookie_refresh(&app, &ann, None, Some(&ann.csrf_token)).await;
    assert_envelope(no_origin, 403, "forbidden", "csrf.origin_missing").await;

    // Refused attempts did not spend the token: the right one still works, and rotates it.
    let ok = cookie_refresh(&app, &ann, Some(ORIGIN), Some(&ann.csrf_token)).await;
    assert_eq!(ok.status(), 200);
    let rotated = cookie_value(ok.headers(), "__Host-depot_refresh").expect("new refresh cookie");
    assert!(!rotated.contains(&ann.refresh_cookie));
    let body: Value = ok.json().await.unwrap();
    assert!(body["access_token"].is_string() && body["refresh_token"].is_null());

    // (CSRF refusals are counted: `counters::each_csrf_refusal_counts_under_its_reason`.)

    // A bearer-authenticated state change needs no CSRF token.
    let bearer = body["access_token"].as_str().unwrap();
    let patched = app
        .call(
            "PATCH",
            "/api/v1/users/me",
            Some(bearer),
            Some(&json!({ "display_name": "Ann" })),
        )
        .await;
    assert_eq!(patched.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn rotating_the_csrf_token_retires_the_old_one() {
    let app = spawn_app_with(|s| s.cors_origins = vec![ORIGIN.into()]).await;
    app.create_user("ann@example.com", &["viewer"]).await;
    let ann = browser_login(&app, "ann@example.com").await;
    let rotate = app
        .client
        .post(app.url("/api/v1/auth/csrf"))
        .header(
            "cookie",
            format!("__Host-depot_refresh={}", ann.refresh_cookie),
        )
        .header("origin", ORIGIN)
        .header("x-csrf-token", &ann.csrf_token)
        .send()
        .await
        .unwrap();
    assert_eq!(rotate.status(), 200);
    let fresh: Value = rotate.json().await.unwrap();
    let fresh = fresh["csrf_token"].as_str().unwrap();
    assert_ne!(fresh, ann.csrf_token);
    let old = cookie_refresh(&app, &ann, Some(ORIGIN), Some(&ann.csrf_token)).await;
    assert_envelope(old, 403, "forbidden", "csrf.token_invalid").await;
    assert_eq!(
        cookie_refresh(&app, &ann, Some(ORIGIN), Some(fresh))
            .await
            .status(),
        200
    );
    app.stop().await;
}
