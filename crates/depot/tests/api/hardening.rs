//! Findings of the outside probe, each kept as a regression test: forged cursors, strings the
//! database refuses, search wildcards.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::{Http, assert_envelope, spawn_app};

/// A cursor built by hand: a sort key PostgreSQL cannot store (year −200000), unsigned or with a
/// tag copied from a real cursor.
fn forged_cursors(real: &str) -> Vec<String> {
    let payload = URL_SAFE_NO_PAD
        .encode(br#"["-200000-01-01T00:00:00Z","01a22806-8914-7620-a217-5ee74822c184"]"#);
    let tag = real.split_once('.').map(|(_, t)| t).unwrap_or("AAAA");
    vec![
        payload.clone(),
        format!("{payload}.{tag}"),
        format!("{payload}."),
    ]
}

#[tokio::test]
async fn forged_cursors_are_a_400_on_every_list() {
    let app = spawn_app().await;
    let admin = app
        .sign_in_with(
            "root@example.com",
            &["users.read", "audit.read", "users.manage"],
        )
        .await;
    let token = Some(admin.access_token.as_str());
    for n in 0..2 {
        app.create_user(&format!("u{n}@example.com"), &[]).await;
        app.login("root@example.com", crate::helpers::PASSWORD)
            .await;
    }
    for list in ["/api/v1/users", "/api/v1/audit", "/api/v1/auth/sessions"] {
        let first: Value = app
            .call("GET", &format!("{list}?limit=1"), token, None)
            .await
            .json()
            .await
            .unwrap();
        let real = first["next_cursor"]
            .as_str()
            .expect("a second page")
            .to_owned();
        let second = app
            .call("GET", &format!("{list}?limit=1&cursor={real}"), token, None)
            .await;
        assert_eq!(
            second.status(),
            200,
            "{list}: the server's own cursor works"
        );
        for forged in forged_cursors(&real) {
            let response = app
                .call(
                    "GET",
                    &format!("{list}?limit=1&cursor={forged}"),
                    token,
                    None,
                )
                .await;
            assert_envelope(response, 400, "bad_request", "pagination.invalid_cursor").await;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn search_wildcards_match_themselves() {
    let app = spawn_app().await;
    let admin = app.sign_in_with("root@example.com", &["users.read"]).await;
    let token = Some(admin.access_token.as_str());
    app.create_user("ann@example.com", &[]).await;
    app.create_user("under_score@example.com", &[]).await;
    let found = |q: &'static str| {
        let app = &app;
        async move {
            let body: Value = app
                .call("GET", &format!("/api/v1/users?q={q}"), token, None)
                .await
                .json()
                .await
                .unwrap();
            let mut emails: Vec<String> = body["data"]
                .as_array()
                .unwrap_or_else(|| panic!("{body}"))
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_owned())
                .collect();
            emails.sort();
            emails
        }
    };
    assert_eq!(
        found("%25").await,
        Vec::<String>::new(),
        "q=% is a literal percent"
    );
    assert_eq!(
        found("_").await,
        vec!["under_score@example.com"],
        "q=_ is a literal underscore"
    );
    assert_eq!(
        found("%5C").await,
        Vec::<String>::new(),
        "a backslash is literal too"
    );
    assert_eq!(
        found("ANN").await,
        vec!["ann@example.com"],
        "still case-insensitive"
    );
    app.stop().await;
}

/// The probe's NUL findings, one by one (three of them need no sign-in): each is a 422 naming
/// the field, on SQLite and on PostgreSQL (where each used to be a 500).
#[tokio::test]
async fn a_nul_byte_anywhere_is_a_422_naming_the_field() {
    let app = spawn_app().await;
    let admin = app
        .sign_in_with(
            "root@example.com",
            &["users.read", "audit.read", "roles.manage", "roles.read"],
        )
        .await;
    let token = admin.access_token.as_str();
    // (method, path, body, token, the field the 422 names)
    type Case<'a> = (&'a str, String, Option<Value>, Option<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/api/v1/auth/login".into(),
            Some(json!({ "email": "a\u{0}@x.io", "password": "whatever it is here" })),
            None,
            "email",
        ),
        (
            "POST",
            "/api/v1/auth/login".into(),
            Some(
                json!({ "email": "root@example.com", "password": crate::helpers::PASSWORD, "device_name": "ph\u{0}one" }),
            ),
            None,
            "device_name",
        ),
        (
            "POST",
            "/api/v1/auth/refresh".into(),
            Some(json!({ "refresh_token": "a\u{0}b" })),
            None,
            "refresh_token",
        ),
        (
            "POST",
            "/api/v1/auth/password/forgot".into(),
            Some(json!({ "email": "a\u{0}@x.io" })),
            None,
            "email",
        ),
        (
            "PATCH",
            "/api/v1/users/me".into(),
            Some(json!({ "display_name": "a\u{0}b" })),
            Some(token),
            "display_name",
        ),
        (
            "PATCH",
            "/api/v1/users/me".into(),
            Some(json!({ "display_name": "two\nlines" })),
            Some(token),
            "display_name",
        ),
        ("GET", "/api/v1/users?q=%00".into(), None, Some(token), "q"),
        (
            "GET",
            "/api/v1/users?status=%00".into(),
            None,
            Some(token),
            "status",
        ),
        (
            "GET",
            "/api/v1/audit?action=%00".into(),
            None,
            Some(token),
            "action",
        ),
        (
            "POST",
            "/api/v1/roles".into(),
            Some(json!({ "name": "nul", "description": "a\u{0}b", "permissions": [] })),
            Some(token),
            "description",
        ),
        (
            "POST",
            "/api/v1/roles".into(),
            Some(
                json!({ "name": "huge", "description": "x".repeat(1_000_001), "permissions": [] }),
            ),
            Some(token),
            "description",
        ),
    ];
    for (method, path, body, token, field) in cases {
        let response = app.call(method, &path, token, body.as_ref()).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let fields: Vec<&str> = body["details"]["fields"]
            .as_array()
            .map(|f| f.iter().filter_map(|f| f["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            (status == 422 && fields == [field]) || (status == 413 && field == "description"),
            "{method} {path}: {status} {body}"
        );
    }
    // Device fields are single lines of at most 200 characters (refused, not truncated).
    for device_name in ["x".repeat(201), "two\nlines".to_owned()] {
        let response = app
            .post_json(
                "/api/v1/auth/login",
                &json!({ "email": "root@example.com", "password": crate::helpers::PASSWORD, "device_name": device_name }),
            )
            .await;
        let body = assert_envelope(response, 422, "validation", "validation.failed").await;
        assert_eq!(body["details"]["fields"][0]["field"], "device_name");
    }
    // A role description within its limit may span lines.
    let response = app
        .call(
            "POST",
            "/api/v1/roles",
            Some(token),
            Some(
                &json!({ "name": "multi", "description": "line one\nline two", "permissions": [] }),
            ),
        )
        .await;
    assert_eq!(response.status(), 201);
    let response = app
        .call(
            "POST",
            "/api/v1/roles",
            Some(token),
            Some(&json!({ "name": "long", "description": "x".repeat(1_001), "permissions": [] })),
        )
        .await;
    assert_envelope(response, 422, "validation", "validation.failed").await;
    app.stop().await;
}

/// Resolves a `$ref` into the document's components.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or_default();
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// The JSON types a schema allows (`type` may be a list in OpenAPI 3.1; `oneOf` of refs too).
fn types_of(doc: &Value, schema: &Value) -> Vec<String> {
    let schema = resolve(doc, schema);
    match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => schema["oneOf"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| types_of(doc, s))
            .collect(),
    }
}

/// A plausible value of a field: the base every hostile variant of another field rides on.
fn plausible(doc: &Value, schema: &Value) -> Value {
    let types = types_of(doc, schema);
    if types.iter().any(|t| t == "string") {
        json!("plausible")
    } else if types.iter().any(|t| t == "integer" || t == "number") {
        json!(1)
    } else if types.iter().any(|t| t == "boolean") {
        json!(false)
    } else if types.iter().any(|t| t == "array") {
        json!([])
    } else {
        Value::Null
    }
}

/// Hostile values for a field of the given types.
fn hostile(types: &[String]) -> Vec<Value> {
    let mut values = Vec::new();
    if types.iter().any(|t| t == "string") {
        values.extend([
            json!("a\u{0}b"),
            json!("bell\u{7}"),
            json!("esc\u{1b}[2J"),
            json!("del\u{7f}"),
            json!("x".repeat(20_000)),
        ]);
    }
    if types.iter().any(|t| t == "integer" || t == "number") {
        values.extend([
            json!(1e308),
            json!(-1e308),
            json!(18_446_744_073_709_551_615u64),
            json!(-9_223_372_036_854_775_808i64),
            json!(1.5),
        ]);
    }
    if types.iter().any(|t| t == "array") {
        values.push(json!(["a\u{0}b"]));
    }
    values
}

/// Walks the OpenAPI document: every string and number field of every JSON body, and every
/// query parameter, gets NUL, other control characters, over-long strings and out-of-range
/// numbers. Nothing answers 5xx, and nothing hostile is accepted.
#[tokio::test]
async fn every_field_of_every_route_refuses_hostile_values_without_a_5xx() {
    let app = spawn_app().await;
    let everything: Vec<&str> = depot_domain::auth::Permission::ALL
        .iter()
        .map(|p| p.code())
        .collect();
    let admin = app.sign_in_with("root@example.com", &everything).await;
    let mut token = admin.access_token.clone();
    let doc: Value = app.get_json("/openapi.json", 200).await;
    let target = uuid::Uuid::now_v7();
    let mut sent = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let url = path.replace("{id}", &target.to_string());
            let mut requests: Vec<(String, Option<Value>, String)> = Vec::new();
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            if !body.is_null() {
                let schema = resolve(&doc, body);
                let properties = schema["properties"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                let base: serde_json::Map<String, Value> = properties
                    .iter()
                    .map(|(name, s)| (name.clone(), plausible(&doc, s)))
                    .collect();
                for (name, s) in &properties {
                    for value in hostile(&types_of(&doc, s)) {
                        let mut body = base.clone();
                        body.insert(name.clone(), value);
                        requests.push((url.clone(), Some(Value::Object(body)), name.clone()));
                    }
                }
            }
            for param in op["parameters"].as_array().into_iter().flatten() {
                if param["in"] != "query" {
                    continue;
                }
                let name = param["name"].as_str().unwrap();
                for raw in [
                    "a%00b",
                    "bell%07",
                    "del%7F",
                    &"x".repeat(5_000),
                    "1e308",
                    "-99999999999999999999",
                ] {
                    requests.push((format!("{url}?{name}={raw}"), None, name.to_owned()));
                }
            }
            for (url, body, field) in requests {
                let mut response = app.call(&method, &url, Some(&token), body.as_ref()).await;
                if response.status() == 401 {
                    // An earlier request ended the session (logout, password change): sign in again.
                    let fresh = app
                        .login("root@example.com", crate::helpers::PASSWORD)
                        .await;
                    token = fresh["access_token"].as_str().unwrap().to_owned();
                    response = app.call(&method, &url, Some(&token), body.as_ref()).await;
                }
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                assert!(status < 500, "{method} {url} ({field}): {status} {text}");
                let accepted = (200..300).contains(&status);
                let harmless_query = body.is_none()
                    && ["1e308", "-99999999999999999999"]
                        .iter()
                        .any(|n| url.ends_with(n))
                    && field != "limit";
                assert!(
                    !accepted || harmless_query,
                    "{method} {url} ({field}) accepted a hostile value: {status} {text}"
                );
                sent += 1;
            }
        }
    }
    assert!(sent > 100, "the walk sent {sent} requests");
    app.stop().await;
}

/// Passwords the probe found accepted: the account's own email (any case), twelve spaces,
/// `aaaaaaaaaaaa`, `password1234`, and the product name dressed up. Refused when an account is
/// created and when a password is changed (reset: `users::a_password_reset_link_…`).
#[tokio::test]
async fn passwords_from_the_accounts_details_breach_lists_or_low_variety_are_refused() {
    let app = spawn_app().await;
    let admin = app
        .sign_in_with("root@example.com", &["users.manage", "users.read"])
        .await;
    let token = Some(admin.access_token.as_str());
    let bad = [
        ("bea.jones@example.com", "password.context"),
        ("BEA.JONES@EXAMPLE.COM", "password.context"),
        ("Bea Jones 1999!", "password.context"),
        ("Depot2026Depot", "password.context"),
        ("            ", "password.weak"),
        ("aaaaaaaaaaaa", "password.common"),
        ("password1234", "password.common"),
    ];
    for (password, code) in bad {
        let response = app
            .call(
                "POST",
                "/api/v1/users",
                token,
                Some(&json!({ "email": "bea.jones@example.com", "display_name": "Bea Jones", "password": password, "roles": [] })),
            )
            .await;
        let body = assert_envelope(response, 422, "validation", "validation.failed").await;
        assert_eq!(
            body["details"]["fields"][0]["field"], "password",
            "{password:?}"
        );
        assert_eq!(body["details"]["fields"][0]["code"], code, "{password:?}");
    }
    for password in ["ROOT@EXAMPLE.COM", "            ", "password1234"] {
        let change = app
            .call(
                "POST",
                "/api/v1/users/me/password",
                token,
                Some(&json!({ "current_password": crate::helpers::PASSWORD, "new_password": password })),
            )
            .await;
        assert_eq!(change.status(), 422, "{password:?}");
    }
    let created = app
        .call(
            "POST",
            "/api/v1/users",
            token,
            Some(&json!({ "email": "bea.jones@example.com", "display_name": "Bea Jones", "password": "kettle mango violin 87", "roles": [] })),
        )
        .await;
    assert_eq!(created.status(), 201);
    app.stop().await;
}

/// Enabling an active account or unlocking one that is not locked changes nothing, so it
/// writes no audit row; the real changes still do.
#[tokio::test]
async fn calls_that_change_nothing_write_no_audit_row() {
    let app = spawn_app().await;
    let admin = app
        .sign_in_with(
            "root@example.com",
            &["users.manage", "users.read", "audit.read"],
        )
        .await;
    let token = Some(admin.access_token.as_str());
    let ann = app.create_user("ann@example.com", &[]).await;
    let audited = |action: &'static str| {
        let app = &app;
        async move {
            let body: Value = app
                .call(
                    "GET",
                    &format!("/api/v1/audit?action={action}"),
                    token,
                    None,
                )
                .await
                .json()
                .await
                .unwrap();
            body["data"].as_array().map_or(0, Vec::len)
        }
    };
    for path in ["enable", "unlock", "enable", "unlock"] {
        let response = app
            .call("POST", &format!("/api/v1/users/{ann}/{path}"), token, None)
            .await;
        assert_eq!(response.status(), 200, "{path}");
    }
    assert_eq!(audited("user.enabled").await, 0);
    assert_eq!(audited("user.unlocked").await, 0);

    let _ = app
        .try_login("ann@example.com", "not the password at all")
        .await;
    app.call("POST", &format!("/api/v1/users/{ann}/unlock"), token, None)
        .await;
    app.call("POST", &format!("/api/v1/users/{ann}/disable"), token, None)
        .await;
    app.call("POST", &format!("/api/v1/users/{ann}/enable"), token, None)
        .await;
    assert_eq!(
        audited("user.unlocked").await,
        1,
        "a failure count was cleared"
    );
    assert_eq!(audited("user.enabled").await, 1);
    app.stop().await;
}

/// A body that says two things (`{"roles":["admin"],"roles":[]}`) means different things to
/// different parsers: refused, not resolved to the last value.
#[tokio::test]
async fn duplicate_keys_in_a_body_are_refused() {
    let app = spawn_app().await;
    for (path, body) in [
        (
            "/api/v1/auth/login",
            r#"{"email":"a@example.com","email":"b@example.com","password":"whatever it is"}"#,
        ),
        (
            "/api/v1/auth/refresh",
            r#"{"refresh_token":"one","refresh_token":"two"}"#,
        ),
    ] {
        let response = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let envelope: Value = response.json().await.unwrap();
        assert!(
            (status == 422 || status == 400)
                && envelope["details"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("duplicate field")),
            "{path}: {status} {envelope}"
        );
    }
    app.stop().await;
}
