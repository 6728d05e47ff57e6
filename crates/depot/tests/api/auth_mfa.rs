//! TOTP: enrolment, sign-in with a code, replay, recovery codes, MFA-required roles.

use depot_domain::auth::totp;
use serde_json::{Value, json};

use crate::helpers::{Http, PASSWORD, TestApp, assert_envelope, spawn_app};

pub(crate) fn step_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap() / totp::STEP_SECS
}

pub(crate) fn code(secret: &str, step: u64) -> String {
    totp::code_at_step(&totp::decode_base32(secret).unwrap(), step)
}

/// Enrols `token`'s user; returns the secret and the recovery codes. Confirms with the code of
/// the previous step so the current one is still unused afterwards.
pub(crate) async fn enrol(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let enrolment: Value = app
        .call("POST", "/api/v1/auth/mfa/totp/enroll", Some(token), None)
        .await
        .json()
        .await
        .unwrap();
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Depot:"), "{uri}");
    assert!(
        uri.contains(&format!("secret={secret}")) && uri.contains("period=30"),
        "{uri}"
    );
    let enabled = app
        .call(
            "POST",
            "/api/v1/auth/mfa/totp/enable",
            Some(token),
            Some(&json!({ "code": code(&secret, step_now() - 1) })),
        )
        .await;
    assert_eq!(enabled.status(), 200);
    let body: Value = enabled.json().await.unwrap();
    let codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

async fn password_step(app: &TestApp, email: &str) -> String {
    let body = app.login(email, PASSWORD).await;
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(
        body.get("access_token").is_none(),
        "no tokens before the second factor"
    );
    body["challenge_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn totp_sign_in_refuses_a_replayed_code_and_accepts_recovery_codes_once() {
    let app = spawn_app().await;
    let s = app.sign_in("ann@example.com", &["viewer"]).await;
    let (secret, recovery) = enrol(&app, &s.access_token).await;
    assert_eq!(recovery.len(), 10);
    // At rest the seed is sealed, and recovery codes are only hashes.
    let row = depot_store::repo::users::get(app.store.reader(), s.user_id)
        .await
        .unwrap()
        .unwrap();
    let stored = row.mfa_secret.unwrap();
    assert!(
        stored.starts_with("v1.") && !stored.contains(&secret),
        "{stored}"
    );
    assert!(row.mfa_enabled && row.mfa_pending_secret.is_none());
    use depot_store::entity::recovery_code;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let mut hashes: Vec<String> = recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(s.user_id))
        .all(app.store.reader())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.code_hash)
        .collect();
    let mut expected: Vec<String> = recovery
        .iter()
        .map(|c| {
            let normalized = depot_app::auth::secrets::normalize_recovery_code(c);
            depot_app::auth::secrets::digest(&normalized)
        })
        .collect();
    hashes.sort();
    expected.sort();
    assert_eq!(
        hashes, expected,
        "recovery codes are stored as digests only"
    );
    assert!(recovery.iter().all(|c| !hashes.contains(c)));

    let challenge = password_step(&app, &s.email).await;
    let now_code = code(&secret, step_now());
    let verify = |challenge: String, body: Value| {
        let app = &app;
        async move {
            let mut body = body;
            body["challenge_token"] = json!(challenge);
            app.post_json("/api/v1/auth/mfa/verify", &body).await
        }
    };
    let ok = verify(challenge.clone(), json!({ "code": now_code })).await;
    assert_eq!(ok.status(), 200);
    let tokens: Value = ok.json().await.unwrap();
    assert_eq!(
        app.call(
            "GET",
            "/api/v1/users/me",
            tokens["access_token"].as_str(),
            None
        )
        .await
        .status(),
        200
    );

    // The challenge that signed in cannot sign in again, even with a new code.
    let spent = verify(challenge.clone(), json!({ "code": now_code })).await;
    assert_envelope(spent, 401, "unauthorized", "auth.invalid_token").await;

    // The same code again (even with a fresh challenge): refused exactly like a wrong code, so
    // a guesser cannot tell a right-but-used code from a wrong one; the audit log can.
    let challenge = password_step(&app, &s.email).await;
    let replay = verify(challenge.clone(), json!({ "code": now_code })).await;
    let replay = assert_envelope(replay, 401, "unauthorized", "auth.invalid_mfa_code").await;
    let wrong = verify(challenge.clone(), json!({ "code": "000000" })).await;
    let wrong = assert_envelope(wrong, 401, "unauthorized", "auth.invalid_mfa_code").await;
    assert_eq!(replay["message"], wrong["message"]);
    assert_eq!(replay["details"], wrong["details"]);
    let reasons: Vec<String> = depot_store::repo::audit::list(
        app.store.reader(),
        &depot_domain::audit::AuditFilter {
            actor_id: Some(s.user_id),
            action: Some("login.failure".into()),
        },
        &depot_domain::pagination::PageRequest::default(),
    )
    .await
    .unwrap()
    .data
    .into_iter()
    .map(|e| format!("{:?}", e.details))
    .collect();
    assert!(
        reasons.iter().any(|r| r.contains("mfa_code_reused"))
            && reasons.iter().any(|r| r.contains("mfa_invalid_code")),
        "{reasons:?}"
    );

    // A recovery code works once, typed with any case and spacing.
    let typed = recovery[0].to_uppercase().replace('-', " ");
    assert_eq!(
        verify(challenge.clone(), json!({ "recovery_code": typed }))
            .await
            .status(),
        200
    );
    let challenge = password_step(&app, &s.email).await;
    let again = verify(challenge, json!({ "recovery_code": recovery[0] })).await;
    assert_envelope(again, 401, "unauthorized", "auth.invalid_mfa_code").await;

    // The challenge token is not an access token.
    let challenge = password_step(&app, &s.email).await;
    assert_eq!(
        app.call("GET", "/api/v1/users/me", Some(&challenge), None)
            .await
            .status(),
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn disabling_mfa_needs_the_password_and_a_code() {
    let app = spawn_app().await;
    let s = app.sign_in("ann@example.com", &["viewer"]).await;
    let (secret, _) = enrol(&app, &s.access_token).await;
    let disable = |password: &str, code: String| {
        let (app, token) = (&app, s.access_token.clone());
        let body = json!({ "password": password, "code": code });
        async move {
            app.call(
                "POST",
                "/api/v1/auth/mfa/totp/disable",
                Some(&token),
                Some(&body),
            )
            .await
        }
    };
    let wrong_password = disable("not my password at all", code(&secret, step_now())).await;
    assert_envelope(wrong_password, 422, "validation", "validation.failed").await;
    assert_eq!(disable(PASSWORD, "123456".into()).await.status(), 401);
    assert_eq!(
        disable(PASSWORD, code(&secret, step_now())).await.status(),
        204
    );
    // Password alone signs in again.
    let body = app.login(&s.email, PASSWORD).await;
    assert!(body["access_token"].is_string(), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_role_that_requires_mfa_blocks_tokens_until_the_user_enrols() {
    let app = spawn_app().await;
    // `admin` requires MFA out of the box.
    app.create_user("root@example.com", &["admin"]).await;
    let response = app.try_login("root@example.com", PASSWORD).await;
    let body = assert_envelope(response, 403, "forbidden", "auth.mfa_enrolment_required").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/auth/mfa/totp/enroll")
    );
    assert!(body.get("access_token").is_none() && body["details"].get("access_token").is_none());
    let enrolment = body["details"]["enrolment_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The enrolment token opens nothing but enrolment.
    assert_eq!(
        app.call("GET", "/api/v1/users/me", Some(&enrolment), None)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.call("GET", "/api/v1/users", Some(&enrolment), None)
            .await
            .status(),
        401
    );
    let (secret, _) = enrol(&app, &enrolment).await;

    // Now: password, then code, then an admin's tokens.
    let challenge = password_step(&app, "root@example.com").await;
    let tokens: Value = app
        .post_json(
            "/api/v1/auth/mfa/verify",
            &json!({ "challenge_token": challenge, "code": code(&secret, step_now()) }),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.call("GET", "/api/v1/users", Some(token), None)
            .await
            .status(),
        200
    );
    // And they cannot switch MFA off while the role requires it.
    let off = app
        .call(
            "POST",
            "/api/v1/auth/mfa/totp/disable",
            Some(token),
            Some(&json!({ "password": PASSWORD, "code": code(&secret, step_now() + 1) })),
        )
        .await;
    assert_envelope(off, 409, "conflict", "mfa.required_by_role").await;
    app.stop().await;
}
