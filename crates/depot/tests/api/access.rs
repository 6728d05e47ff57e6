//! Who may hand out access: no escalation through `users.manage` or `roles.manage`, and the
//! last administrator cannot be removed.

use serde_json::{Value, json};

use crate::helpers::{Http, TestApp, spawn_app};

async fn call(app: &TestApp, method: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let response = app.call(method, path, Some(token), Some(&body)).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn roles_of(app: &TestApp, token: &str, user: uuid::Uuid) -> Value {
    app.call("GET", &format!("/api/v1/users/{user}"), Some(token), None)
        .await
        .json::<Value>()
        .await
        .unwrap()["roles"]
        .clone()
}

#[tokio::test]
async fn a_user_manager_cannot_grant_themselves_or_others_more_than_they_hold() {
    let app = spawn_app().await;
    let mallory = app
        .sign_in_with("mallory@example.com", &["users.manage", "users.read"])
        .await;
    let token = mallory.access_token.as_str();
    let own_role = roles_of(&app, token, mallory.user_id).await;
    let own_role = own_role[0].as_str().unwrap().to_owned();

    let (status, body) = call(
        &app,
        "PATCH",
        &format!("/api/v1/users/{}", mallory.user_id),
        token,
        json!({ "roles": [own_role, "admin"] }),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "auth.permission_not_held");
    assert!(
        body["details"]["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("roles.manage")),
        "{body}"
    );
    assert_eq!(
        roles_of(&app, token, mallory.user_id).await,
        json!([own_role])
    );

    // Nor to a new account, nor to an accomplice.
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/users",
        token,
        json!({ "email": "eve@example.com", "display_name": "Eve", "roles": ["admin"] }),
    )
    .await;
    assert_eq!(status, 403);
    let eve = app.create_user("eve@example.com", &[]).await;
    let (status, _) = call(
        &app,
        "PATCH",
        &format!("/api/v1/users/{eve}"),
        token,
        json!({ "roles": ["clerk"] }),
    )
    .await;
    assert_eq!(status, 403, "clerk carries stock permissions mallory lacks");

    // An account more powerful than one's own cannot be taken over by re-emailing it.
    let admin = app.create_user("admin@example.com", &["admin"]).await;
    for (method, path, body) in [
        (
            "PATCH",
            format!("/api/v1/users/{admin}"),
            json!({ "email": "mallory+1@example.com" }),
        ),
        ("POST", format!("/api/v1/users/{admin}/disable"), json!({})),
        (
            "POST",
            format!("/api/v1/users/{admin}/sessions/revoke"),
            json!({}),
        ),
        ("POST", format!("/api/v1/users/{admin}/unlock"), json!({})),
    ] {
        let (status, body) = call(&app, method, &path, token, body).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
    }

    // Within what one holds, management still works.
    app.create_role("helpdesk", &["users.read"]).await;
    let (status, body) = call(
        &app,
        "PATCH",
        &format!("/api/v1/users/{eve}"),
        token,
        json!({ "roles": ["helpdesk"] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["roles"], json!(["helpdesk"]));
}

#[tokio::test]
async fn a_role_manager_cannot_put_permissions_they_lack_into_a_role() {
    let app = spawn_app().await;
    let rita = app
        .sign_in_with(
            "rita@example.com",
            &["roles.manage", "roles.read", "users.read"],
        )
        .await;
    let token = rita.access_token.as_str();

    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/roles",
        token,
        json!({ "name": "sneaky", "permissions": ["users.manage"] }),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["details"]["permissions"], json!(["users.manage"]));

    // Her own role cannot grow either.
    let roles = app
        .call("GET", "/api/v1/roles", Some(token), None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let own = roles["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"].as_str().unwrap().starts_with("r-"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(
        &app,
        "PATCH",
        &format!("/api/v1/roles/{own}"),
        token,
        json!({ "permissions": ["roles.manage", "roles.read", "users.read", "users.manage"] }),
    )
    .await;
    assert_eq!(status, 403);

    // Nor can a role carrying more than she holds be edited or deleted.
    let clerk = roles["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "clerk")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(
        &app,
        "PATCH",
        &format!("/api/v1/roles/{clerk}"),
        token,
        json!({ "mfa_required": false, "description": "weakened" }),
    )
    .await;
    assert_eq!(status, 403);

    // Within her permissions she can.
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/roles",
        token,
        json!({ "name": "readers", "permissions": ["users.read"] }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn the_last_administrator_cannot_be_removed() {
    let app = spawn_app().await;
    // The built-in admin role requires MFA; a custom role makes an administrator just the same.
    let root = app
        .sign_in_with(
            "root@example.com",
            &["users.manage", "roles.manage", "users.read", "roles.read"],
        )
        .await;
    let token = root.access_token.as_str();
    let me = format!("/api/v1/users/{}", root.user_id);

    app.create_role("readers", &["users.read"]).await;
    for roles in [json!([]), json!(["readers"])] {
        let (status, body) = call(&app, "PATCH", &me, token, json!({ "roles": roles })).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["code"], "users.last_admin");
    }
    let held = roles_of(&app, token, root.user_id).await;
    assert_eq!(held.as_array().map(Vec::len), Some(1), "{held}");

    // A custom role that is the only path to administration cannot lose it either.
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/roles",
        token,
        json!({ "name": "keepers", "permissions": ["users.manage", "roles.manage"] }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let keepers = body["id"].as_str().unwrap().to_owned();
    let kim = app.create_user("kim@example.com", &["keepers"]).await;
    let (status, _) = call(&app, "PATCH", &me, token, json!({ "roles": ["readers"] })).await;
    assert_eq!(status, 200, "kim remains an administrator");
    let kim_session = app.login("kim@example.com", crate::helpers::PASSWORD).await;
    let kim_token = kim_session["access_token"].as_str().unwrap();
    let (status, body) = call(
        &app,
        "PATCH",
        &format!("/api/v1/roles/{keepers}"),
        kim_token,
        json!({ "permissions": ["users.manage"] }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "users.last_admin");
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("/api/v1/roles/{keepers}"),
        kim_token,
        json!({}),
    )
    .await;
    assert_eq!(status, 409);

    // With a second administrator in place, the change goes through.
    app.create_user("second@example.com", &["admin"]).await;
    let (status, body) = call(
        &app,
        "PATCH",
        &format!("/api/v1/users/{kim}"),
        kim_token,
        json!({ "roles": [] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
