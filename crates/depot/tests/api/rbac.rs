//! Permissions, ownership, role changes and the audit log.

use serde_json::{Value, json};

use crate::helpers::{Http, assert_envelope, spawn_app, wait_in_sync};

/// Operations anyone may call (sign-in and its helpers, the payment gateway's callbacks).
/// Everything else must name a permission or require a signed-in user.
const PUBLIC: [&str; 10] = [
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/mfa/verify",
    "POST /api/v1/auth/refresh",
    "POST /api/v1/auth/csrf",
    "POST /api/v1/auth/password/forgot",
    "POST /api/v1/auth/password/reset",
    "POST /api/v1/payments/sslcommerz/ipn",
    "GET /api/v1/payments/sslcommerz/{outcome}",
    "POST /api/v1/payments/sslcommerz/{outcome}",
    "GET /api/v1/ws",
];

/// How many /api/v1 operations need a token (all but [`PUBLIC`]).
const PROTECTED_OPERATIONS: usize = 131;

#[tokio::test]
async fn every_route_declares_and_enforces_its_permission() {
    let app = spawn_app().await;
    let nobody = app.sign_in_with("nobody@example.com", &[]).await;
    let doc = app.get_json("/openapi.json", 200).await;
    let mut checked = 0;
    let mut public_seen = Vec::new();
    let mut holders = std::collections::HashMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} declares no security"));
            let public = security.iter().any(|r| r.as_object().unwrap().is_empty())
                || security.iter().all(|r| r.get("bearer").is_none());
            if public {
                assert!(
                    PUBLIC.contains(&name.as_str()),
                    "{name} is public but not listed"
                );
                public_seen.push(name);
                continue;
            }
            let scopes: Vec<&str> = security
                .iter()
                .filter_map(|r| r.get("bearer"))
                .flat_map(|s| s.as_array().unwrap())
                .map(|s| s.as_str().unwrap())
                .collect();
            let url = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
            let body = (method != "get" && method != "delete").then(|| json!({}));
            // No token: 401.
            let anonymous = app
                .call(&method.to_uppercase(), &url, None, body.as_ref())
                .await;
            assert_eq!(anonymous.status(), 401, "{name} without a token");
            match scopes.as_slice() {
                [] => {}
                [permission] => {
                    assert!(
                        depot_domain::auth::Permission::parse(permission).is_some(),
                        "{name}: {permission} is not in the catalogue"
                    );
                    // A signed-in user without the permission: 403 naming it.
                    let response = app
                        .call(
                            &method.to_uppercase(),
                            &url,
                            Some(&nobody.access_token),
                            body.as_ref(),
                        )
                        .await;
                    let envelope =
                        assert_envelope(response, 403, "forbidden", "auth.forbidden").await;
                    assert_eq!(envelope["details"]["permission"], *permission, "{name}");
                    // Holding it, the permission check passes (whatever the route answers next).
                    // One holder per permission (sign-ins are rate limited per address).
                    if !holders.contains_key(*permission) {
                        let email = format!("{}@example.com", uuid::Uuid::now_v7().simple());
                        let holder = app.sign_in_with(&email, &[permission]).await;
                        holders.insert((*permission).to_owned(), holder);
                    }
                    let holder = &holders[*permission];
                    let response = app
                        .call(
                            &method.to_uppercase(),
                            &url,
                            Some(&holder.access_token),
                            body.as_ref(),
                        )
                        .await;
                    assert!(
                        ![401, 403].contains(&response.status().as_u16()),
                        "{name} with {permission}: {}",
                        response.status()
                    );
                }
                more => panic!("{name} names several permissions {more:?}; use one"),
            }
            checked += 1;
        }
    }
    // Every protected /api/v1 operation of this build, each checked above: a route that drops
    // out of the document (or a new one) changes the count. Update it with the route table.
    assert_eq!(
        checked, PROTECTED_OPERATIONS,
        "protected operations checked"
    );
    public_seen.sort();
    let mut public = PUBLIC.map(str::to_owned).to_vec();
    public.sort();
    assert_eq!(public_seen, public, "every public operation is documented");
    app.stop().await;
}

#[tokio::test]
async fn a_clerk_calling_an_admin_route_is_forbidden() {
    let app = spawn_app().await;
    let clerk = app.sign_in("clerk@example.com", &["clerk"]).await;
    for (method, path) in [
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/roles"),
        ("GET", "/api/v1/audit"),
    ] {
        let response = app
            .call(method, path, Some(&clerk.access_token), Some(&json!({})))
            .await;
        assert_envelope(response, 403, "forbidden", "auth.forbidden").await;
    }
    assert_eq!(
        app.call("GET", "/api/v1/users/me", Some(&clerk.access_token), None)
            .await
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn another_users_session_is_not_found_unless_the_caller_manages_all() {
    let app = spawn_app().await;
    let ann = app.sign_in("ann@example.com", &["sales"]).await;
    let bob = app.sign_in("bob@example.com", &["sales"]).await;
    let path = format!("/api/v1/auth/sessions/{}", bob.session_id);
    let response = app
        .call("DELETE", &path, Some(&ann.access_token), None)
        .await;
    assert_envelope(response, 404, "not_found", "sessions.not_found").await;
    // Not leaked through the list either.
    let list: Value = app
        .call(
            "GET",
            "/api/v1/auth/sessions",
            Some(&ann.access_token),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["user_id"] == ann.user_id.to_string())
    );
    let everyone = app
        .call(
            "GET",
            "/api/v1/auth/sessions?all_users=true",
            Some(&ann.access_token),
            None,
        )
        .await;
    assert_eq!(everyone.status(), 403);
    assert_eq!(
        app.call("GET", "/api/v1/users/me", Some(&bob.access_token), None)
            .await
            .status(),
        200,
        "bob's session is untouched"
    );

    // Support may end another user's session when it holds everything that user holds.
    let mut powers: Vec<&str> = depot_domain::auth::BuiltInRole::Sales
        .default_permissions()
        .into_iter()
        .map(|p| p.code())
        .collect();
    powers.push("sessions.manage_all");
    let support = app.sign_in_with("support@example.com", &powers).await;
    assert_eq!(
        app.call("DELETE", &path, Some(&support.access_token), None)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.call("GET", "/api/v1/users/me", Some(&bob.access_token), None)
            .await
            .status(),
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn a_role_change_takes_effect_on_the_next_request_on_every_instance() {
    let app = spawn_app().await;
    let peer = app.spawn_peer().await;
    let shared = depot_testkit::redis_url().is_some();
    let admin = app
        .sign_in_with(
            "root@example.com",
            &["roles.manage", "users.read", "audit.read"],
        )
        .await;
    let role = app.create_role("auditor", &["users.read"]).await;
    let ann = app.sign_in("ann@example.com", &["auditor"]).await;
    let status = |on_peer: bool| {
        let token = ann.access_token.clone();
        let (app, peer) = (&app, &peer);
        async move {
            let r = if on_peer {
                peer.call("GET", "/api/v1/audit", Some(&token), None).await
            } else {
                app.call("GET", "/api/v1/audit", Some(&token), None).await
            };
            r.status().as_u16()
        }
    };
    // Both instances answer from local state kept in step by the sync channel (with Redis):
    // no Redis read per request, and still no stale answer.
    wait_in_sync(&[&app.context, &peer.context]).await;
    // (That in-sync grants are read locally is counted in `counters::in_sync_grants_…`.)
    assert_eq!(status(false).await, 403);
    assert_eq!(status(false).await, 403);
    if shared {
        assert_eq!(status(true).await, 403, "the peer has cached the grant");
        assert_eq!(status(true).await, 403);
    }
    let patch = app
        .call(
            "PATCH",
            &format!("/api/v1/roles/{role}"),
            Some(&admin.access_token),
            Some(&json!({ "permissions": ["users.read", "audit.read"] })),
        )
        .await;
    assert_eq!(patch.status(), 200);
    assert_eq!(status(false).await, 200, "same instance, next request");
    if shared {
        assert_eq!(status(true).await, 200, "other instance, next request");
    } else {
        depot_testkit::skip(
            "rbac::cross-instance role change",
            "redis",
            "DEPOT_TEST_REDIS_URL",
        );
    }
    // And back.
    app.call(
        "PATCH",
        &format!("/api/v1/roles/{role}"),
        Some(&admin.access_token),
        Some(&json!({ "permissions": ["users.read"] })),
    )
    .await;
    assert_eq!(status(false).await, 403);
    if shared {
        assert_eq!(status(true).await, 403);
    }
    peer.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn roles_are_managed_and_audited() {
    let app = spawn_app().await;
    let admin = app
        .sign_in_with("root@example.com", &every_permission())
        .await;
    let token = Some(admin.access_token.as_str());
    let list: Value = app
        .call("GET", "/api/v1/roles", token, None)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for built_in in ["admin", "manager", "clerk", "sales", "viewer"] {
        assert!(names.contains(&built_in), "{built_in} in {names:?}");
    }
    let admin_role = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "admin")
        .unwrap();
    assert_eq!(admin_role["mfa_required"], true);

    let bad = app
        .call(
            "POST",
            "/api/v1/roles",
            token,
            Some(&json!({ "name": "x", "permissions": ["stock.fly"] })),
        )
        .await;
    assert_envelope(bad, 422, "validation", "validation.failed").await;
    let created = app
        .call(
            "POST",
            "/api/v1/roles",
            token,
            Some(&json!({ "name": "packer", "permissions": ["stock.read"] })),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dup = app
        .call(
            "POST",
            "/api/v1/roles",
            token,
            Some(&json!({ "name": "packer" })),
        )
        .await;
    assert_envelope(dup, 409, "conflict", "roles.name_taken").await;
    let delete_builtin = app
        .call(
            "DELETE",
            &format!("/api/v1/roles/{}", admin_role["id"].as_str().unwrap()),
            token,
            None,
        )
        .await;
    assert_envelope(delete_builtin, 409, "conflict", "roles.built_in").await;
    assert_eq!(
        app.call("DELETE", &format!("/api/v1/roles/{id}"), token, None)
            .await
            .status(),
        204
    );

    let audit: Value = app
        .call("GET", "/api/v1/audit?action=role.created", token, None)
        .await
        .json()
        .await
        .unwrap();
    let entries = audit["data"].as_array().unwrap();
    let entry = entries
        .iter()
        .find(|e| e["target_id"] == id.as_str())
        .expect("audited");
    assert_eq!(entry["actor_id"], admin.user_id.to_string());
    assert_eq!(entry["after"]["permissions"], json!(["stock.read"]));
    assert!(
        entry["request_id"].is_string() && entry["ip"] == "127.0.0.1",
        "{entry}"
    );
    let deleted: Value = app
        .call(
            "GET",
            "/api/v1/audit?action=role.deleted&limit=1",
            token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["data"][0]["before"]["name"], "packer");
    app.stop().await;
}

/// Every permission code: an administrator through a custom role (no MFA requirement), who may
/// hand out anything.
fn every_permission() -> Vec<&'static str> {
    depot_domain::auth::Permission::ALL
        .iter()
        .map(|p| p.code())
        .collect()
}
