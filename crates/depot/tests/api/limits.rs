//! Promises with a clock or a counter: rate limits on every credential endpoint (also with Redis
//! dead), and the lifetimes of sessions, reset links and MFA step tokens (injected clock).

use std::sync::Arc;

use chrono::Utc;
use depot_app::config::ServiceUrl;
use depot_domain::clock::ManualClock;
use serde_json::{Value, json};

use crate::helpers::{Http, PASSWORD, TestApp, assert_envelope, spawn_app_on, spawn_app_with};

/// Sends `request` until the per-IP limit of 3 is spent: three answers of `status`, then 429
/// naming the `policy`.
async fn spend(app: &TestApp, path: &str, body: Value, status: u16, policy: &str) {
    for i in 0..3 {
        let response = app.post_json(path, &body).await;
        assert_eq!(response.status(), status, "{path} attempt {i}");
    }
    let limited = app.post_json(path, &body).await;
    let header = limited.headers()["ratelimit-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(limited.headers().contains_key("retry-after"), "{path}");
    assert_envelope(limited, 429, "rate_limited", "rate_limited").await;
    assert_eq!(header, format!("\"{policy}\";q=3;w=60"), "{path}");
}

#[tokio::test]
async fn refresh_reset_and_mfa_verify_are_rate_limited_per_address() {
    let cases = [
        (
            "/api/v1/auth/refresh",
            json!({ "refresh_token": "not-a-token" }),
            401,
            "refresh_ip",
        ),
        (
            "/api/v1/auth/password/forgot",
            json!({ "email": "someone@example.com" }),
            202,
            "password_reset_ip",
        ),
        (
            "/api/v1/auth/password/reset",
            json!({ "token": "not-a-token", "new_password": "kettle mango violin 87" }),
            400,
            "password_reset_ip",
        ),
        (
            "/api/v1/auth/mfa/verify",
            json!({ "challenge_token": "not-a-token", "code": "123456" }),
            401,
            "mfa_verify_ip",
        ),
    ];
    for (path, body, status, policy) in cases {
        let app = spawn_app_with(|s| s.auth_rate_limit_per_ip = 3).await;
        spend(&app, path, body, status, policy).await;
        app.stop().await;
    }
}

#[tokio::test]
async fn with_redis_dead_the_limits_still_hold_in_process() {
    let app = spawn_app_with(|s| {
        s.redis_url = Some(ServiceUrl::new("redis://127.0.0.1:1"));
        s.auth_rate_limit_per_ip = 3;
    })
    .await;
    spend(
        &app,
        "/api/v1/auth/login",
        json!({ "email": "ann@example.com", "password": "wrong password here" }),
        401,
        "login_ip",
    )
    .await;
    app.stop().await;
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/api/v1/auth/refresh", &json!({ "refresh_token": token }))
        .await
}

/// A session's refresh token, signed in on `app` (whose clock the test holds).
async fn session(app: &TestApp) -> String {
    app.create_user("ann@example.com", &[]).await;
    app.login("ann@example.com", PASSWORD).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_idle_session_expires_and_activity_keeps_it_alive() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_on(clock.clone(), |s| {
        s.refresh_idle_ttl_secs = 3_600;
        s.refresh_absolute_ttl_secs = 30 * 86_400;
    })
    .await;
    let mut token = session(&app).await;
    // Used every 50 minutes, it lives on past several idle windows.
    for _ in 0..4 {
        clock.advance(chrono::Duration::minutes(50));
        let response = refresh(&app, &token).await;
        assert_eq!(response.status(), 200);
        token = response.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    // Then an hour and a minute of silence.
    clock.advance(chrono::Duration::minutes(61));
    assert_eq!(refresh(&app, &token).await.status(), 401, "idle too long");
    app.stop().await;
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_however_active() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_on(clock.clone(), |s| {
        s.refresh_idle_ttl_secs = 3_600;
        s.refresh_absolute_ttl_secs = 3 * 3_600;
    })
    .await;
    let mut token = session(&app).await;
    let mut alive = 0;
    for _ in 0..5 {
        clock.advance(chrono::Duration::minutes(45));
        let response = refresh(&app, &token).await;
        if response.status() != 200 {
            assert_eq!(response.status(), 401);
            break;
        }
        alive += 1;
        token = response.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    assert_eq!(alive, 3, "45, 90, 135 minutes refresh; 180 is the end");
    app.stop().await;
}

#[tokio::test]
async fn access_tokens_expire_on_the_injected_clock() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_on(clock.clone(), |s| s.access_token_ttl_secs = 900).await;
    app.create_user("ann@example.com", &[]).await;
    let access = app.login("ann@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = || app.call("GET", "/api/v1/users/me", Some(&access), None);
    clock.advance(chrono::Duration::minutes(14));
    assert_eq!(me().await.status(), 200);
    clock.advance(chrono::Duration::minutes(2));
    assert_eq!(me().await.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn a_reset_link_works_until_its_lifetime_and_not_after() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_on(clock.clone(), |s| s.password_reset_ttl_secs = 1_800).await;
    app.create_user("ann@example.com", &[]).await;
    let forgot_body = json!({ "email": "ann@example.com" });
    let forgot = || app.post_json("/api/v1/auth/password/forgot", &forgot_body);
    let reset = |token: String| {
        let app = &app;
        async move {
            app.post_json(
                "/api/v1/auth/password/reset",
                &json!({ "token": token, "new_password": "kettle mango violin 87" }),
            )
            .await
        }
    };
    // No workers on an injected clock: the test sends the queued mail itself.
    assert_eq!(forgot().await.status(), 202);
    app.context.mail().send_due(10).await.unwrap();
    let stale = crate::users::emailed_token(&app, "ann@example.com").await;
    clock.advance(chrono::Duration::minutes(31));
    assert_envelope(
        reset(stale.clone()).await,
        400,
        "bad_request",
        "auth.invalid_reset_token",
    )
    .await;

    assert_eq!(forgot().await.status(), 202);
    app.context.mail().send_due(10).await.unwrap();
    let fresh = crate::users::emailed_token_other_than(&app, "ann@example.com", &stale).await;
    clock.advance(chrono::Duration::minutes(29));
    assert_eq!(reset(fresh).await.status(), 204, "within its lifetime");
    app.stop().await;
}

#[tokio::test]
async fn mfa_challenge_and_enrolment_tokens_expire_after_five_minutes() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_on(clock.clone(), |_| {}).await;
    // Enrolment: a role that requires MFA hands out an enrolment token at sign-in.
    app.create_role("guarded", &["users.read"]).await;
    app.context
        .roles()
        .update(
            crate::helpers::SETUP,
            app.context
                .roles()
                .list()
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.name == "guarded")
                .unwrap()
                .id,
            depot_app::roles::RolePatch {
                mfa_required: Some(true),
                ..Default::default()
            },
            &depot_app::ClientInfo::default(),
        )
        .await
        .unwrap();
    app.create_user("ann@example.com", &["guarded"]).await;
    // Challenge: ann enrols now (codes follow the real time the clock started at), then her
    // password step hands out a challenge token that is late six minutes on.
    let refused = app.try_login("ann@example.com", PASSWORD).await;
    let refused = assert_envelope(refused, 403, "forbidden", "auth.mfa_enrolment_required").await;
    let enrolment = refused["details"]["enrolment_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, recovery) = crate::auth_mfa::enrol(&app, &enrolment).await;
    let challenge = app.login("ann@example.com", PASSWORD).await["challenge_token"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(chrono::Duration::minutes(6));
    let late = app
        .post_json(
            "/api/v1/auth/mfa/verify",
            &json!({ "challenge_token": challenge, "recovery_code": recovery[0] }),
        )
        .await;
    assert_envelope(late, 401, "unauthorized", "auth.invalid_token").await;

    // Enrolment: bob's enrolment token, six minutes later, is refused.
    app.create_user("bob@example.com", &["guarded"]).await;
    let refused = app.try_login("bob@example.com", PASSWORD).await;
    let refused = assert_envelope(refused, 403, "forbidden", "auth.mfa_enrolment_required").await;
    let enrolment = refused["details"]["enrolment_token"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(chrono::Duration::minutes(6));
    let late = app
        .call(
            "POST",
            "/api/v1/auth/mfa/totp/enroll",
            Some(&enrolment),
            None,
        )
        .await;
    assert_eq!(late.status(), 401, "an enrolment token lives five minutes");
    app.stop().await;
}

#[tokio::test]
async fn the_api_limits_requests_per_ip_and_per_user_but_not_the_operations_endpoints() {
    // Per IP: every /api request counts, signed in or not; the probes and the document do not.
    let app = spawn_app_with(|s| s.api_rate_limit_per_ip = Some(3)).await;
    for i in 0..3 {
        let response = app.get("/api/v1/products").await;
        assert_eq!(response.status(), 401, "attempt {i}");
    }
    let limited = app.get("/api/v1/products").await;
    assert_eq!(
        limited.headers()["ratelimit-policy"].to_str().unwrap(),
        "\"api_ip\";q=3;w=60"
    );
    assert!(limited.headers().contains_key("retry-after"));
    assert_envelope(limited, 429, "rate_limited", "rate_limited").await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    app.stop().await;

    // Per user: one user's requests spend only that user's budget.
    let app = spawn_app_with(|s| s.api_rate_limit_per_user = Some(3)).await;
    app.create_user("ann@example.com", &["viewer"]).await;
    app.create_user("bob@example.com", &["viewer"]).await;
    let ann = app.login("ann@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = app.login("bob@example.com", PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = |token: String| {
        app.client
            .get(app.url("/api/v1/products"))
            .bearer_auth(token)
            .send()
    };
    for i in 0..3 {
        assert_eq!(list(ann.clone()).await.unwrap().status(), 200, "{i}");
    }
    let limited = list(ann.clone()).await.unwrap();
    assert_eq!(
        limited.headers()["ratelimit-policy"].to_str().unwrap(),
        "\"api_user\";q=3;w=60"
    );
    assert_envelope(limited, 429, "rate_limited", "rate_limited").await;
    assert_eq!(list(bob).await.unwrap().status(), 200, "another user");
    app.stop().await;
}

#[tokio::test]
async fn with_redis_a_users_api_budget_is_shared_by_every_instance() {
    if depot_testkit::redis_or_skip("limits::with_redis_a_users_api_budget_is_shared").is_none() {
        return;
    }
    let app = spawn_app_with(|s| s.api_rate_limit_per_user = Some(4)).await;
    let peer = app.spawn_peer().await;
    app.create_user("ann@example.com", &["viewer"]).await;
    let login = app.login("ann@example.com", PASSWORD).await;
    let token = login["access_token"].as_str().unwrap();
    for i in 0..2 {
        let here = app.call("GET", "/api/v1/products", Some(token), None).await;
        let there = peer
            .call("GET", "/api/v1/products", Some(token), None)
            .await;
        assert_eq!(
            (here.status().as_u16(), there.status().as_u16()),
            (200, 200),
            "round {i}"
        );
    }
    let fifth = peer
        .call("GET", "/api/v1/products", Some(token), None)
        .await;
    assert_eq!(
        fifth.status(),
        429,
        "the peer counts the first instance's requests"
    );
    peer.stop().await;
    app.stop().await;
}
