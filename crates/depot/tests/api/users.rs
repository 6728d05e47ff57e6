//! User administration, self-service, and the revocations they cause.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Http, PASSWORD, TestApp, assert_envelope, spawn_app};
use crate::process::{run, text};

async fn me(app: &TestApp, token: &str) -> u16 {
    app.call("GET", "/api/v1/users/me", Some(token), None)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn disabling_a_user_or_changing_their_roles_revokes_their_sessions() {
    let app = spawn_app().await;
    let admin = app
        .sign_in_with("root@example.com", &["users.manage", "users.read"])
        .await;
    let token = Some(admin.access_token.as_str());
    let ann = app.sign_in("ann@example.com", &[]).await;
    // A role root may hand out: it carries only what root holds.
    app.create_role("helpdesk", &["users.read"]).await;

    let patched = app
        .call(
            "PATCH",
            &format!("/api/v1/users/{}", ann.user_id),
            token,
            Some(&json!({ "roles": ["helpdesk"] })),
        )
        .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(
        patched.json::<Value>().await.unwrap()["roles"],
        json!(["helpdesk"])
    );
    assert_eq!(
        me(&app, &ann.access_token).await,
        401,
        "role change signs out"
    );
    let refreshed = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({ "refresh_token": ann.refresh_token }),
        )
        .await;
    assert_eq!(refreshed.status(), 401);

    let again = app.login("ann@example.com", PASSWORD).await;
    let access = again["access_token"].as_str().unwrap();
    assert_eq!(me(&app, access).await, 200);
    let disabled = app
        .call(
            "POST",
            &format!("/api/v1/users/{}/disable", ann.user_id),
            token,
            None,
        )
        .await;
    assert_eq!(
        disabled.json::<Value>().await.unwrap()["status"],
        "disabled"
    );
    assert_eq!(me(&app, access).await, 401, "disabling signs out");
    let login = app.try_login("ann@example.com", PASSWORD).await;
    assert_envelope(login, 401, "unauthorized", "auth.invalid_credentials").await;
    let self_disable = app
        .call(
            "POST",
            &format!("/api/v1/users/{}/disable", admin.user_id),
            token,
            None,
        )
        .await;
    assert_envelope(self_disable, 409, "conflict", "users.cannot_disable_self").await;

    app.call(
        "POST",
        &format!("/api/v1/users/{}/enable", ann.user_id),
        token,
        None,
    )
    .await;
    app.login("ann@example.com", PASSWORD).await;

    let list: Value = app
        .call("GET", "/api/v1/users?q=ANN", token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert!(list["data"][0].get("password_hash").is_none());
    let missing = app
        .call(
            "GET",
            &format!("/api/v1/users/{}", uuid::Uuid::now_v7()),
            token,
            None,
        )
        .await;
    assert_envelope(missing, 404, "not_found", "users.not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_signs_out_other_sessions() {
    let app = spawn_app().await;
    let ann = app.sign_in("ann@example.com", &["viewer"]).await;
    let other = app.login("ann@example.com", PASSWORD).await;
    let change = |current: &str, new: &str| {
        let (app, token) = (&app, ann.access_token.clone());
        let body = json!({ "current_password": current, "new_password": new });
        async move {
            app.call(
                "POST",
                "/api/v1/users/me/password",
                Some(&token),
                Some(&body),
            )
            .await
        }
    };
    let wrong = change("not the password at all", "a brand new passphrase 7").await;
    let body = assert_envelope(wrong, 422, "validation", "validation.failed").await;
    assert_eq!(body["details"]["fields"][0]["field"], "current_password");
    let weak = change(PASSWORD, "short").await;
    let body = assert_envelope(weak, 422, "validation", "validation.failed").await;
    assert_eq!(body["details"]["fields"][0]["field"], "new_password");

    assert_eq!(
        change(PASSWORD, "a brand new passphrase 7").await.status(),
        204
    );
    assert_eq!(me(&app, &ann.access_token).await, 200, "this session stays");
    assert_eq!(
        me(&app, other["access_token"].as_str().unwrap()).await,
        401,
        "others end"
    );
    app.login("ann@example.com", "a brand new passphrase 7")
        .await;

    let me_patch = app
        .call(
            "PATCH",
            "/api/v1/users/me",
            Some(&ann.access_token),
            Some(&json!({ "phone": "+8801712345678" })),
        )
        .await;
    assert_eq!(
        me_patch.json::<Value>().await.unwrap()["phone"],
        "+8801712345678"
    );
    app.stop().await;
}

/// The reset token from the newest `.eml` file addressed to `to`.
pub(crate) async fn emailed_token(app: &TestApp, to: &str) -> String {
    emailed_token_other_than(app, to, "").await
}

/// The reset token of an email to `to` that is not `seen` (a newer link).
pub(crate) async fn emailed_token_other_than(app: &TestApp, to: &str, seen: &str) -> String {
    let dir = app.context.settings().data_dir.join("mail");
    for _ in 0..100 {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let raw = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let unfolded = raw
                    .replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=");
                if unfolded.contains(to)
                    && let Some(at) = unfolded.find("reset-password?token=")
                {
                    let rest = &unfolded[at + "reset-password?token=".len()..];
                    let token: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    if token != seen {
                        return token;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no new reset email for {to} in {}", dir.display());
}

#[tokio::test]
async fn a_password_reset_link_is_emailed_works_once_and_signs_out_everywhere() {
    let app = spawn_app().await;
    let ann = app.sign_in("ann@example.com", &["viewer"]).await;
    let mut answers = Vec::new();
    for email in ["ann@example.com", "nobody@example.com"] {
        let response = app
            .post_json("/api/v1/auth/password/forgot", &json!({ "email": email }))
            .await;
        let status = response.status().as_u16();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| !["x-request-id", "date"].contains(&name.as_str()))
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_owned()))
            .collect();
        headers.sort();
        answers.push((status, headers, response.bytes().await.unwrap()));
    }
    assert_eq!(
        answers[0], answers[1],
        "the same answer whether or not the account exists"
    );
    assert_eq!(answers[0].0, 202);
    let token = emailed_token(&app, "ann@example.com").await;
    // Mail was queued for ann only.
    use depot_store::entity::outbound_email;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    for (to, queued) in [("ann@example.com", 1), ("nobody@example.com", 0)] {
        let n = outbound_email::Entity::find()
            .filter(outbound_email::Column::ToAddress.eq(to))
            .count(app.store.reader())
            .await
            .unwrap();
        assert_eq!(n, queued, "mail queued for {to}");
    }
    assert!(token.len() >= 40, "{token}");
    let reset = |token: &str, password: &str| {
        let app = &app;
        let body = json!({ "token": token, "new_password": password });
        async move { app.post_json("/api/v1/auth/password/reset", &body).await }
    };
    let weak = reset(&token, "qwerty123456").await;
    assert_envelope(weak, 422, "validation", "validation.failed").await;
    let own_email = reset(&token, "ANN@EXAMPLE.COM").await;
    let body = assert_envelope(own_email, 422, "validation", "validation.failed").await;
    assert_eq!(body["details"]["fields"][0]["code"], "password.context");
    assert_eq!(
        reset(&token, "the reset passphrase is long").await.status(),
        204
    );
    let twice = reset(&token, "another reset passphrase 9").await;
    assert_envelope(twice, 400, "bad_request", "auth.invalid_reset_token").await;
    assert_eq!(me(&app, &ann.access_token).await, 401, "every session ends");
    app.login("ann@example.com", "the reset passphrase is long")
        .await;
    app.stop().await;
}

#[tokio::test]
async fn cli_bootstraps_the_first_admin_who_must_enrol_mfa() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = &app.context.settings();
    let env = [
        ("DATABASE_URL", settings.database_url()),
        (
            "DEPOT_JWT_SECRET",
            "test-jwt-secret-0123456789-abcdefghijklmnop".to_owned(),
        ),
        (
            "DEPOT_APP_SECRET",
            "test-app-secret-9876543210-zyxwvutsrqponmlk".to_owned(),
        ),
        ("DEPOT_NAMESPACE", settings.namespace.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run(
        dir.path(),
        &env,
        &[
            "admin",
            "create-user",
            "--email",
            "Root@Example.com",
            "--role",
            "admin",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.lines().count() == 2 && stdout.starts_with("created user "),
        "stdout holds only the result; logs go to stderr:\n{stdout}"
    );
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once): "))
        .expect("generated password printed once")
        .to_owned();
    assert!(password.chars().count() >= 12);
    let response = app.try_login("root@example.com", &password).await;
    let refused = assert_envelope(response, 403, "forbidden", "auth.mfa_enrolment_required").await;

    // Root enrols and signs in with a recovery code: an enrolled account with a live session.
    let enrolment = refused["details"]["enrolment_token"].as_str().unwrap();
    let (_, recovery) = crate::auth_mfa::enrol(&app, enrolment).await;
    let challenge = app.login("root@example.com", &password).await;
    let signed: Value = app
        .post_json(
            "/api/v1/auth/mfa/verify",
            &json!({ "challenge_token": challenge["challenge_token"], "recovery_code": recovery[0] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let root_token = signed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &root_token).await, 200);

    let weak = run(
        dir.path(),
        &env,
        &[
            "admin",
            "create-user",
            "--email",
            "b@example.com",
            "--role",
            "viewer",
            "--password-stdin",
        ],
    );
    assert!(!weak.status.success(), "empty stdin password refused");

    // Lock root with wrong passwords; `admin unlock` clears the lock and the count.
    let root = |app: &TestApp| {
        let store = app.store.clone();
        async move {
            let found = depot_store::repo::users::by_email(store.reader(), "root@example.com")
                .await
                .unwrap()
                .unwrap();
            depot_store::repo::users::get(store.reader(), found.id)
                .await
                .unwrap()
                .unwrap()
        }
    };
    for _ in 0..20 {
        if root(&app).await.locked_until.is_some() {
            break;
        }
        app.try_login("root@example.com", "definitely not the password")
            .await;
    }
    assert!(root(&app).await.locked_until.is_some(), "root is locked");
    let unlock = run(
        dir.path(),
        &env,
        &["admin", "unlock", "--email", "root@example.com"],
    );
    assert!(unlock.status.success(), "{}", text(&unlock.stderr));
    let unlocked = root(&app).await;
    assert_eq!((unlocked.locked_until, unlocked.failed_logins), (None, 0));
    let challenge = app.login("root@example.com", &password).await;
    assert_eq!(
        challenge["mfa_required"], true,
        "unlocked: the password step works again"
    );

    // `admin reset-mfa` turns MFA off and ends every session of the user.
    assert!(root(&app).await.mfa_enabled);
    let reset = run(
        dir.path(),
        &env,
        &["admin", "reset-mfa", "--email", "root@example.com"],
    );
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    assert!(!root(&app).await.mfa_enabled);
    // The CLI is another process: without Redis the server learns of it when its cached
    // grant expires (at most a second), with Redis through the sync channel.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while me(&app, &root_token).await != 401 {
        assert!(std::time::Instant::now() < deadline, "sessions end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = app.try_login("root@example.com", &password).await;
    assert_envelope(again, 403, "forbidden", "auth.mfa_enrolment_required").await;
    app.stop().await;
}
