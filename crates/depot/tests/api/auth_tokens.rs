//! Access tokens, refresh rotation, logout and the denylist.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{
    Http, Session, TestApp, assert_envelope, spawn_app, spawn_app_with, wait_in_sync,
};

const JWT_SECRET: &str = "test-jwt-secret-0123456789-abcdefghijklmnop";

/// Claims of a valid access token for `s`, which each case then spoils in one way.
fn claims(s: &Session) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": "depot", "aud": "depot-api", "sub": s.user_id, "sid": s.session_id,
        "jti": uuid::Uuid::now_v7(), "iat": now, "nbf": now, "exp": now + 600, "use": "access",
    })
}

fn sign(claims: &Value, key: &str, kid: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key.as_bytes())).unwrap()
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.call("GET", "/api/v1/users/me", Some(token), None)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn forged_expired_and_misdirected_tokens_are_all_401() {
    let app = spawn_app().await;
    let s = app.sign_in("ann@example.com", &["viewer"]).await;
    // Control: a token we mint the way the server does is accepted, so each failure below is
    // caused by the one thing it spoils.
    assert_eq!(
        me_status(&app, &sign(&claims(&s), JWT_SECRET, "k1")).await,
        200
    );
    assert_eq!(me_status(&app, &s.access_token).await, 200);

    let now = chrono::Utc::now().timestamp();
    let with = |key: &str, value: Value| {
        let mut c = claims(&s);
        c[key] = value;
        c
    };
    let alg_none = {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims(&s).to_string());
        format!("{header}.{body}.")
    };
    let cases = [
        ("alg none", alg_none),
        (
            "another key",
            sign(&claims(&s), "some-other-secret-0123456789-abcdefghij", "k1"),
        ),
        ("unknown kid", sign(&claims(&s), JWT_SECRET, "k9")),
        (
            "wrong iss",
            sign(&with("iss", json!("evil")), JWT_SECRET, "k1"),
        ),
        (
            "wrong aud",
            sign(&with("aud", json!("other-api")), JWT_SECRET, "k1"),
        ),
        (
            "expired",
            sign(&with("exp", json!(now - 3600)), JWT_SECRET, "k1"),
        ),
        (
            "future nbf",
            sign(&with("nbf", json!(now + 3600)), JWT_SECRET, "k1"),
        ),
        ("no nbf", {
            let mut c = claims(&s);
            c.as_object_mut().unwrap().remove("nbf");
            sign(&c, JWT_SECRET, "k1")
        }),
        (
            "MFA challenge used as access",
            sign(&with("use", json!("mfa_challenge")), JWT_SECRET, "k1"),
        ),
        ("refresh token as access token", s.refresh_token.clone()),
        ("garbage", "not.a.token".into()),
    ];
    for (case, token) in cases {
        let response = app
            .call("GET", "/api/v1/users/me", Some(&token), None)
            .await;
        let body = assert_envelope(response, 401, "unauthorized", "auth.invalid_token").await;
        assert!(!body.to_string().contains(JWT_SECRET), "{case}");
    }
    let response = app.call("GET", "/api/v1/users/me", None, None).await;
    assert_envelope(response, 401, "unauthorized", "auth.required").await;
    app.stop().await;
}

#[tokio::test]
async fn a_retired_key_verifies_until_it_is_removed() {
    const OLD: &str = "the-previous-jwt-secret-0123456789-abcdefgh";
    let app = spawn_app_with(|s| {
        s.jwt_key_id = "k2".into();
        s.jwt_previous_keys
            .insert("k1".into(), depot_app::config::Secret::new(OLD));
    })
    .await;
    let s = app.sign_in("ann@example.com", &["viewer"]).await;
    let header = jsonwebtoken::decode_header(&s.access_token).unwrap();
    assert_eq!(
        header.kid.as_deref(),
        Some("k2"),
        "new tokens use the current key"
    );
    assert_eq!(me_status(&app, &sign(&claims(&s), OLD, "k1")).await, 200);
    // The old secret under the new kid is a forgery.
    assert_eq!(me_status(&app, &sign(&claims(&s), OLD, "k2")).await, 401);

    // The same deployment restarted with k1 removed: the same user's token signed with the
    // retired key is refused, while the current key still works.
    let restarted = app
        .spawn_peer_with(|settings| settings.jwt_previous_keys.clear())
        .await;
    let retired = sign(&claims(&s), OLD, "k1");
    assert_eq!(
        restarted
            .call("GET", "/api/v1/users/me", Some(&retired), None)
            .await
            .status(),
        401,
        "removed key"
    );
    assert_eq!(
        restarted
            .call("GET", "/api/v1/users/me", Some(&s.access_token), None)
            .await
            .status(),
        200,
        "the current key is unaffected"
    );
    restarted.stop().await;
    app.stop().await;
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/api/v1/auth/refresh", &json!({ "refresh_token": token }))
        .await
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = spawn_app().await;
    let s = app.sign_in("ann@example.com", &["viewer"]).await;

    let first = refresh(&app, &s.refresh_token).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let r2 = first["refresh_token"].as_str().unwrap().to_owned();
    let a2 = first["access_token"].as_str().unwrap().to_owned();
    assert_ne!(r2, s.refresh_token, "rotated");
    assert_eq!(first["session_id"], s.session_id.as_str(), "same session");
    assert_eq!(me_status(&app, &a2).await, 200);

    // The old token again: reuse. It fails AND the newest token of the family is dead.
    let reused = refresh(&app, &s.refresh_token).await;
    assert_envelope(reused, 401, "unauthorized", "auth.refresh_token_reused").await;
    let newest = refresh(&app, &r2).await;
    assert_envelope(newest, 401, "unauthorized", "auth.invalid_refresh_token").await;
    assert_eq!(
        me_status(&app, &a2).await,
        401,
        "the session's access token dies too"
    );

    // Stored hashed, never in clear.
    let conn = app.store.reader();
    let stored = depot_store::repo::sessions::find_refresh_token(conn, &r2)
        .await
        .unwrap();
    assert!(
        stored.is_none(),
        "the raw token is not a key in the database"
    );
    let by_digest = depot_store::repo::sessions::find_refresh_token(
        conn,
        &depot_app::auth::secrets::digest(&r2),
    )
    .await
    .unwrap();
    assert!(by_digest.is_some(), "the token is stored as its digest");

    let audit = app.store.reader();
    let page = depot_store::repo::audit::list(
        audit,
        &depot_domain::audit::AuditFilter {
            action: Some("auth.token_reuse".into()),
            ..Default::default()
        },
        &depot_domain::pagination::PageRequest::parse(None, None).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(page.data.len(), 1, "the reuse is audited");
    assert_eq!(page.data[0].actor_id, Some(s.user_id));
    app.stop().await;
}

#[tokio::test]
async fn logout_rejects_the_same_access_token_at_once_on_every_instance() {
    let app = spawn_app().await;
    // Several API instances share revocations through Redis; the embedded setup (in-process
    // cache and denylist) is one API process.
    let shared = depot_testkit::redis_url().is_some();
    let peer = if shared {
        Some(app.spawn_peer().await)
    } else {
        None
    };
    let s = app.sign_in("ann@example.com", &["viewer"]).await;
    let other = app.login(&s.email, &s.password).await;
    let other_token = other["access_token"].as_str().unwrap();
    if let Some(peer) = &peer {
        wait_in_sync(&[&app.context, &peer.context]).await;
        // Warm the peer's cache with the session so a stale cache would show.
        let warm = peer
            .call("GET", "/api/v1/users/me", Some(&s.access_token), None)
            .await;
        assert_eq!(warm.status(), 200);
    }

    let out = app
        .call("POST", "/api/v1/auth/logout", Some(&s.access_token), None)
        .await;
    assert_eq!(out.status(), 204);
    assert_eq!(me_status(&app, &s.access_token).await, 401);
    if let Some(peer) = &peer {
        let on_peer = peer
            .call("GET", "/api/v1/users/me", Some(&s.access_token), None)
            .await;
        assert_envelope(on_peer, 401, "unauthorized", "auth.invalid_token").await;
    } else {
        depot_testkit::skip(
            "auth_tokens::logout on another instance",
            "redis",
            "DEPOT_TEST_REDIS_URL",
        );
    }
    // The refresh token of that session is dead; the user's other session is not.
    assert_eq!(refresh(&app, &s.refresh_token).await.status(), 401);
    assert_eq!(me_status(&app, other_token).await, 200);

    // The database keeps the denial (the fallback when Redis is down) until the token expires.
    let jti = jsonwebtoken::dangerous::insecure_decode::<Value>(&s.access_token)
        .unwrap()
        .claims["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let denied = depot_store::repo::sessions::is_access_token_denied(app.store.reader(), &jti)
        .await
        .unwrap();
    assert!(denied);
    if let Some(peer) = peer {
        peer.stop().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn with_redis_down_a_denied_token_is_still_refused() {
    // Redis configured but unreachable: every check falls back to the database.
    let app = spawn_app_with(|s| {
        s.redis_url = Some(depot_app::config::ServiceUrl::new("redis://127.0.0.1:1"));
    })
    .await;
    let s = app.sign_in("ann@example.com", &["viewer"]).await;
    assert_eq!(me_status(&app, &s.access_token).await, 200);
    // A second access token of the same session, which stays live throughout.
    let refreshed = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({ "refresh_token": s.refresh_token }),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let sibling = refreshed["access_token"].as_str().unwrap();
    // Deny only the first token, in the database (as another instance would): no cache can
    // say so, Redis is down, the session is live — only the denylist can refuse it.
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(s.access_token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let tx = app.store.begin().await.unwrap();
    depot_store::repo::sessions::deny_access_token(
        &*tx,
        claims["jti"].as_str().unwrap(),
        chrono::Utc::now() + chrono::Duration::minutes(15),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(me_status(&app, &s.access_token).await, 401, "fail closed");
    assert_eq!(
        me_status(&app, sibling).await,
        200,
        "the session itself is live"
    );
    app.stop().await;
}

#[tokio::test]
async fn sessions_are_listed_revoked_one_by_one_and_all_at_once() {
    let app = spawn_app().await;
    let s = app.sign_in("ann@example.com", &["viewer"]).await;
    let laptop = app
        .post_json(
            "/api/v1/auth/login",
            &json!({ "email": s.email, "password": s.password, "device_id": "lt-1", "device_name": "Laptop" }),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let phone = app.login(&s.email, &s.password).await;

    let list: Value = app
        .call("GET", "/api/v1/auth/sessions", Some(&s.access_token), None)
        .await
        .json()
        .await
        .unwrap();
    let sessions = list["data"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{list}");
    let current: Vec<&Value> = sessions.iter().filter(|x| x["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], s.session_id.as_str());
    assert!(
        sessions
            .iter()
            .any(|x| x["device_name"] == "Laptop" && x["device_id"] == "lt-1")
    );

    // Targeted logout of the laptop.
    let laptop_id = laptop["session_id"].as_str().unwrap();
    let revoked = app
        .call(
            "DELETE",
            &format!("/api/v1/auth/sessions/{laptop_id}"),
            Some(&s.access_token),
            None,
        )
        .await;
    assert_eq!(revoked.status(), 204);
    assert_eq!(
        me_status(&app, laptop["access_token"].as_str().unwrap()).await,
        401
    );
    assert_eq!(
        me_status(&app, phone["access_token"].as_str().unwrap()).await,
        200
    );

    // Everything else.
    let all = app
        .call(
            "POST",
            "/api/v1/auth/logout-all",
            Some(&s.access_token),
            None,
        )
        .await;
    assert_eq!(all.json::<Value>().await.unwrap()["revoked"], 1);
    assert_eq!(
        me_status(&app, phone["access_token"].as_str().unwrap()).await,
        401
    );
    assert_eq!(
        me_status(&app, &s.access_token).await,
        200,
        "the caller's own session stays"
    );
    app.stop().await;
}
