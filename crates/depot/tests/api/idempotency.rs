//! `Idempotency-Key` on POST: one effect per (user, key), the first response replayed.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use depot_app::idempotency as idem;
use depot_domain::Clock;
use depot_domain::clock::ManualClock;
use depot_store::repo::idempotency as repo;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{Http, PASSWORD, TestApp, assert_envelope, spawn_app, spawn_app_on};

/// What a client saw.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    status: u16,
    replayed: bool,
    body: Value,
}

async fn post(app: &TestApp, token: &str, path: &str, key: &str, body: &Value) -> Seen {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let replayed = match response.headers().get("idempotent-replayed") {
        None => false,
        Some(v) => {
            assert_eq!(v, "true");
            true
        }
    };
    let body = response.json().await.expect("JSON body");
    Seen {
        status,
        replayed,
        body,
    }
}

/// `POST /api/v1/users` creating `email`, under `key`.
async fn post_user(app: &TestApp, token: &str, key: &str, email: &str) -> Seen {
    post(app, token, "/api/v1/users", key, &new_user(email)).await
}

async fn users_with_email(app: &TestApp, email: &str) -> u64 {
    use depot_store::entity::user;
    user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .count(app.store.reader())
        .await
        .unwrap()
}

fn new_user(email: &str) -> Value {
    json!({ "email": email, "display_name": "New Person", "password": PASSWORD, "roles": [] })
}

#[tokio::test]
async fn concurrent_copies_of_a_request_create_one_user_and_get_one_response() {
    let app = spawn_app().await;
    let admin = app
        .sign_in_with("root@example.com", &["users.manage", "users.read"])
        .await;
    let seen = futures::future::join_all(
        (0..10).map(|_| post_user(&app, &admin.access_token, "create-new", "new@example.com")),
    )
    .await;

    let first = &seen[0];
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.body["email"], "new@example.com");
    for other in &seen {
        assert_eq!(
            (other.status, &other.body),
            (first.status, &first.body),
            "every copy gets the first response"
        );
    }
    assert_eq!(
        seen.iter().filter(|s| !s.replayed).count(),
        1,
        "exactly one copy ran"
    );
    assert_eq!(users_with_email(&app, "new@example.com").await, 1);
    let listed = app
        .call(
            "GET",
            "/api/v1/users?q=new@example.com",
            Some(&admin.access_token),
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");

    // Later repeats replay too, and still create nothing.
    let again = post_user(&app, &admin.access_token, "create-new", "new@example.com").await;
    assert!(again.replayed);
    assert_eq!((again.status, &again.body), (201, &first.body));
    assert_eq!(users_with_email(&app, "new@example.com").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_key_reused_for_another_request_or_malformed_is_refused() {
    let app = spawn_app().await;
    let admin = app
        .sign_in_with("root@example.com", &["users.manage", "roles.manage"])
        .await;
    let token = admin.access_token.as_str();
    let first = post_user(&app, token, "k-1", "a@example.com").await;
    assert_eq!(first.status, 201);

    let other_body = app
        .client
        .post(app.url("/api/v1/users"))
        .bearer_auth(token)
        .header("Idempotency-Key", "k-1")
        .json(&new_user("b@example.com"))
        .send()
        .await
        .unwrap();
    assert!(other_body.headers().get("idempotent-replayed").is_none());
    assert_envelope(other_body, 422, "validation", "idempotency.key_reused").await;
    assert_eq!(users_with_email(&app, "b@example.com").await, 0);
    // The key still answers its own request.
    let again = post_user(&app, token, "k-1", "a@example.com").await;
    assert!(again.replayed);
    assert_eq!(again.body, first.body);

    // Keys are per operation: the same key on another route is another key.
    let role = post(
        &app,
        token,
        "/api/v1/roles",
        "k-1",
        &json!({ "name": "packers" }),
    )
    .await;
    assert_eq!((role.status, role.replayed), (201, false), "{role:?}");

    for bad in ["", &"k".repeat(256), "caf\u{e9}"] {
        let response = app
            .client
            .post(app.url("/api/v1/users"))
            .bearer_auth(token)
            .header("Idempotency-Key", bad.as_bytes())
            .json(&new_user("c@example.com"))
            .send()
            .await
            .unwrap();
        assert_envelope(response, 400, "bad_request", "idempotency.invalid_key").await;
    }
    let twice = app
        .client
        .post(app.url("/api/v1/users"))
        .bearer_auth(token)
        .header("Idempotency-Key", "k-2")
        .header("Idempotency-Key", "k-3")
        .json(&new_user("c@example.com"))
        .send()
        .await
        .unwrap();
    assert_envelope(twice, 400, "bad_request", "idempotency.invalid_key").await;
    assert_eq!(users_with_email(&app, "c@example.com").await, 0);

    // Authentication comes first; without the header nothing changes.
    let anonymous = app
        .client
        .post(app.url("/api/v1/users"))
        .header("Idempotency-Key", "k-4")
        .json(&new_user("c@example.com"))
        .send()
        .await
        .unwrap();
    assert_envelope(anonymous, 401, "unauthorized", "auth.required").await;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let plain = app
            .call(
                "POST",
                "/api/v1/roles",
                Some(token),
                Some(&json!({ "name": "pickers" })),
            )
            .await;
        assert!(plain.headers().get("idempotent-replayed").is_none());
        statuses.push(plain.status().as_u16());
    }
    assert_eq!(statuses, [201, 409], "without a key, a repeat runs again");
    app.stop().await;
}

#[tokio::test]
async fn an_expired_key_is_free_again_and_purged() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_on(clock.clone(), |_| {}).await;
    let admin = app
        .sign_in_with("root@example.com", &["users.manage"])
        .await;
    let scope = idem::scope(admin.user_id, "POST", "/api/v1/users");
    let first = post_user(&app, &admin.access_token, "k-1", "a@example.com").await;
    assert_eq!((first.status, first.replayed), (201, false));
    let row = repo::get(app.store.reader(), &scope, "k-1")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(row.status, repo::COMPLETED);
    let stored_for = row.expires_at - clock.now();
    assert!(
        stored_for > chrono::Duration::hours(23) && stored_for <= chrono::Duration::hours(24),
        "kept for 24 h from the injected clock: {stored_for}"
    );

    // Within the 24 hours: replayed, and the key cannot serve another request.
    clock.advance(chrono::Duration::hours(23));
    let token = fresh_token(&app, &admin.email).await;
    let replay = post_user(&app, &token, "k-1", "a@example.com").await;
    assert!(replay.replayed);
    assert_eq!(replay.body, first.body);
    let reused = post_user(&app, &token, "k-1", "b@example.com").await;
    assert_eq!(reused.status, 422);

    // Past them: the row is still there (not purged yet) but the key is free.
    clock.advance(chrono::Duration::hours(2));
    assert!(
        repo::get(app.store.reader(), &scope, "k-1")
            .await
            .unwrap()
            .is_some()
    );
    let token = fresh_token(&app, &admin.email).await;
    let fresh = post_user(&app, &token, "k-1", "b@example.com").await;
    assert_eq!((fresh.status, fresh.replayed), (201, false), "{fresh:?}");
    assert_eq!(fresh.body["email"], "b@example.com");
    assert_eq!(users_with_email(&app, "b@example.com").await, 1);

    // The purge job removes what expired, and nothing live.
    let purged = app.run_job("purge_idempotency_keys").await;
    assert_eq!(purged, 0, "the renewed key is live");
    clock.advance(chrono::Duration::hours(25));
    let purged = app.run_job("purge_idempotency_keys").await;
    assert_eq!(purged, 1);
    assert!(
        repo::get(app.store.reader(), &scope, "k-1")
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}

async fn fresh_token(app: &TestApp, email: &str) -> String {
    app.login(email, PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn two_users_use_the_same_key_independently() {
    let app = spawn_app().await;
    let ann = app.sign_in_with("ann@example.com", &["users.manage"]).await;
    let bob = app.sign_in_with("bob@example.com", &["users.manage"]).await;
    let by_ann = post_user(&app, &ann.access_token, "same-key", "x@example.com").await;
    let by_bob = post_user(&app, &bob.access_token, "same-key", "y@example.com").await;
    assert_eq!((by_ann.status, by_ann.replayed), (201, false), "{by_ann:?}");
    assert_eq!((by_bob.status, by_bob.replayed), (201, false), "{by_bob:?}");
    assert_ne!(by_ann.body["id"], by_bob.body["id"]);

    // Each replays their own response.
    let ann_again = post_user(&app, &ann.access_token, "same-key", "x@example.com").await;
    assert!(ann_again.replayed);
    assert_eq!(ann_again.body, by_ann.body);
    let bob_again = post_user(&app, &bob.access_token, "same-key", "y@example.com").await;
    assert!(bob_again.replayed);
    assert_eq!(bob_again.body, by_bob.body);
    // Bob sending Ann's request under the same key is Bob's first such request.
    let bob_as_ann = post_user(&app, &bob.access_token, "same-key", "x@example.com").await;
    assert_eq!(bob_as_ann.status, 422, "{bob_as_ann:?}");
    assert_eq!(users_with_email(&app, "x@example.com").await, 1);
    assert_eq!(users_with_email(&app, "y@example.com").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_4xx_is_replayed_and_a_5xx_is_not_stored() {
    let app = spawn_app().await;
    let admin = app
        .sign_in_with(
            "root@example.com",
            &["users.manage", "roles.manage", "roles.read"],
        )
        .await;
    let token = admin.access_token.as_str();

    // A 409: replayed even after the conflict is gone, so the request never runs twice.
    let existing = app.create_role("dup", &[]).await;
    let conflict = post(
        &app,
        token,
        "/api/v1/roles",
        "k-409",
        &json!({ "name": "dup" }),
    )
    .await;
    assert_eq!(conflict.status, 409, "{conflict:?}");
    assert_eq!(conflict.body["code"], "roles.name_taken");
    let deleted = app
        .call(
            "DELETE",
            &format!("/api/v1/roles/{existing}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    let response = app
        .client
        .post(app.url("/api/v1/roles"))
        .bearer_auth(token)
        .header("Idempotency-Key", "k-409")
        .json(&json!({ "name": "dup" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["idempotent-replayed"], "true");
    let replayed = assert_envelope(response, 409, "conflict", "roles.name_taken").await;
    assert_eq!(replayed["message"], conflict.body["message"]);
    assert_ne!(
        replayed["request_id"], conflict.body["request_id"],
        "the envelope names the request it answers"
    );
    let roles = app
        .call("GET", "/api/v1/roles", Some(token), None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert!(
        roles["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"] != "dup"),
        "no second effect: {roles}"
    );

    // A 422 from the handler is stored too.
    let invalid = post_user(&app, token, "k-422", "not an email").await;
    assert_eq!(invalid.status, 422);
    let again = post_user(&app, token, "k-422", "not an email").await;
    assert!(again.replayed);
    assert_eq!(again.body["code"], invalid.body["code"]);
    assert_eq!(again.body["details"], invalid.body["details"]);

    // A 5xx is not stored: the retry runs again, and succeeds once the fault is gone.
    set_fault(&app, true).await;
    let body = new_user("boom@example.com");
    for _ in 0..2 {
        let failed = post(&app, token, "/api/v1/users", "k-500", &body).await;
        assert_eq!((failed.status, failed.replayed), (500, false), "{failed:?}");
        assert_eq!(failed.body["code"], "internal");
    }
    set_fault(&app, false).await;
    let created = post(&app, token, "/api/v1/users", "k-500", &body).await;
    assert_eq!(
        (created.status, created.replayed),
        (201, false),
        "{created:?}"
    );
    let replay = post(&app, token, "/api/v1/users", "k-500", &body).await;
    assert_eq!((replay.status, replay.replayed), (201, true));
    assert_eq!(replay.body, created.body);
    assert_eq!(users_with_email(&app, "boom@example.com").await, 1);
    app.stop().await;
}

/// Makes inserting the user `boom@example.com` fail inside the database (an internal error).
async fn set_fault(app: &TestApp, on: bool) {
    let statements: &[&str] = match (app.store.backend(), on) {
        (depot_store::Backend::Sqlite, true) => &["CREATE TRIGGER boom BEFORE INSERT ON users \
             WHEN NEW.email = 'boom@example.com' BEGIN SELECT RAISE(ABORT, 'boom'); END"],
        (depot_store::Backend::Sqlite, false) => &["DROP TRIGGER boom"],
        (depot_store::Backend::Postgres, true) => &[
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.email = 'boom@example.com' THEN RAISE EXCEPTION 'boom'; END IF; \
             RETURN NEW; END $$",
            "CREATE TRIGGER boom BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION boom()",
        ],
        (depot_store::Backend::Postgres, false) => {
            &["DROP TRIGGER boom ON users", "DROP FUNCTION boom()"]
        }
    };
    for sql in statements {
        let tx = app.store.begin().await.unwrap();
        tx.execute_unprepared(sql).await.unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn a_copy_waits_for_the_first_within_a_bound() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_on(clock.clone(), |settings| {
        settings.idempotency_wait_ms = 300;
    })
    .await;
    let admin = app
        .sign_in_with("root@example.com", &["users.manage"])
        .await;
    let body = serde_json::to_vec(&new_user("slow@example.com")).unwrap();
    let send = || {
        app.client
            .post(app.url("/api/v1/users"))
            .bearer_auth(&admin.access_token)
            .header("Idempotency-Key", "k-1")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    // Another copy of this very request holds the key.
    let scope = idem::scope(admin.user_id, "POST", "/api/v1/users");
    let fingerprint = idem::fingerprint("POST", "/api/v1/users", &body);
    let now = clock.now();
    let claim = claim_directly(&app, &scope, "k-1", &fingerprint, now).await;
    let started = std::time::Instant::now();
    let waited = send().await.unwrap();
    assert_eq!(waited.status(), 409);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(waited.headers()["retry-after"], "1");
    assert_envelope(waited, 409, "conflict", "idempotency.in_progress").await;

    // The first completes while a copy waits: the copy replays its response.
    let copy = tokio::spawn(send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stored = json!({ "id": "from-the-first", "email": "slow@example.com" });
    app.context
        .idempotency()
        .complete(
            &claim,
            idem::StoredResponse {
                status: 201,
                body: Some(stored.clone()),
            },
        )
        .await
        .unwrap();
    let copy = copy.await.unwrap().unwrap();
    assert_eq!(copy.status(), 201);
    assert_eq!(copy.headers()["idempotent-replayed"], "true");
    assert_eq!(copy.json::<Value>().await.unwrap(), stored);
    assert_eq!(users_with_email(&app, "slow@example.com").await, 0);

    // An abandoned claim (its process died) is free once its lease ends.
    let other = serde_json::to_vec(&new_user("late@example.com")).unwrap();
    let fingerprint = idem::fingerprint("POST", "/api/v1/users", &other);
    claim_directly(&app, &scope, "k-2", &fingerprint, now).await;
    clock.advance(chrono::Duration::minutes(6));
    let token = fresh_token(&app, &admin.email).await;
    let late = app
        .client
        .post(app.url("/api/v1/users"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "k-2")
        .header("content-type", "application/json")
        .body(other)
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 201);
    assert_eq!(users_with_email(&app, "late@example.com").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_header_where_it_is_taken() {
    let app = spawn_app().await;
    let doc = app.get_json("/openapi.json", 200).await;
    for path in ["/api/v1/users", "/api/v1/roles"] {
        let post = &doc["paths"][path]["post"];
        let params = post["parameters"].as_array().expect("parameters");
        let header = params
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .unwrap_or_else(|| panic!("POST {path} documents Idempotency-Key"));
        assert_eq!(header["in"], "header");
        assert_eq!(header["required"], false);
        assert_eq!(header["schema"]["maxLength"], 255);
        for (status, code) in [
            ("400", "idempotency.invalid_key"),
            ("409", "idempotency.in_progress"),
            ("422", "idempotency.key_reused"),
        ] {
            let description = post["responses"][status]["description"]
                .as_str()
                .unwrap_or_default();
            assert!(
                description.contains(code),
                "POST {path} {status}: {description}"
            );
        }
        assert!(post["responses"]["201"]["headers"]["Idempotent-Replayed"].is_object());
        let get = &doc["paths"][path]["get"];
        assert!(
            get["parameters"]
                .as_array()
                .is_none_or(|ps| ps.iter().all(|p| p["name"] != "Idempotency-Key")),
            "GET {path} takes no key"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_cancelled_request_releases_its_key() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    let app = spawn_app().await;
    let admin = app
        .sign_in_with("root@example.com", &["users.manage"])
        .await;
    // Any route can be made idempotent; this one is slow on its first run.
    let runs = Arc::new(AtomicUsize::new(0));
    let handler = {
        let runs = runs.clone();
        move || async move {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            if run == 1 {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            (StatusCode::CREATED, axum::Json(json!({ "run": run })))
        }
    };
    let router = axum::Router::new()
        .route(
            "/slow",
            axum::routing::post(handler).layer(axum::middleware::from_fn(
                depot_http::idempotency::middleware,
            )),
        )
        .layer(depot_http::idempotency::provide(&app.context));
    let request = || {
        Request::post("/slow")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", admin.access_token),
            )
            .header("Idempotency-Key", "k-1")
            .body(Body::from("{}"))
            .unwrap()
    };

    // The caller gives up while the handler runs: the request future is dropped.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        router.clone().oneshot(request()),
    )
    .await;
    assert!(cancelled.is_err());
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler had started");
    let scope = idem::scope(admin.user_id, "POST", "/slow");
    let mut released = false;
    for _ in 0..100 {
        if repo::get(app.store.reader(), &scope, "k-1")
            .await
            .unwrap()
            .is_none()
        {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(released, "the claim is released");

    // So the retry runs, and is then replayed.
    let retry = router.clone().oneshot(request()).await.unwrap();
    assert_eq!(retry.status(), 201);
    assert!(retry.headers().get("idempotent-replayed").is_none());
    let replay = router.oneshot(request()).await.unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let body = axum::body::to_bytes(replay.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({ "run": 2 })
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    app.stop().await;
}

/// Claims `key` straight through the repository (as another process would), for 5 minutes.
async fn claim_directly(
    app: &TestApp,
    scope: &str,
    key: &str,
    fingerprint: &str,
    now: chrono::DateTime<Utc>,
) -> repo::Claim {
    let tx = app.store.begin().await.unwrap();
    let claim = repo::claim(
        &*tx,
        scope,
        key,
        fingerprint,
        now,
        now + chrono::Duration::minutes(5),
        now + chrono::Duration::hours(24),
    )
    .await
    .unwrap()
    .expect("claimed");
    tx.commit().await.unwrap();
    claim
}

/// A request whose unit of work committed, in a process that died before it stored the
/// response (here: the request is dropped while the layer after the handler still runs), is
/// never run again: a copy waits while the claim's lease runs, then learns that the response
/// is lost (409 `idempotency.response_lost`) — and the effect exists once.
#[tokio::test]
async fn a_request_that_took_effect_never_runs_again_even_when_its_response_is_lost() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use depot_app::catalog::NewLocation;
    use depot_http::auth::Client;
    use tower::ServiceExt;

    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = spawn_app_on(clock.clone(), |settings| {
        settings.idempotency_wait_ms = 300;
    })
    .await;
    let admin = app
        .sign_in_with("root@example.com", &["warehouses.manage"])
        .await;
    let handler = {
        let ctx = app.context.clone();
        move |Client(client): Client| async move {
            let created = ctx
                .catalog()
                .create_location(
                    crate::helpers::SETUP,
                    NewLocation {
                        code: "ONCE".into(),
                        name: "Created once".into(),
                        address: None,
                        active: true,
                    },
                    &client,
                )
                .await
                .expect("created");
            (StatusCode::CREATED, axum::Json(json!({ "id": created.id })))
        }
    };
    // Between the handler and the idempotency layer: the process "dies" after the commit.
    let dies_after_commit = |request: Request<Body>, next: axum::middleware::Next| async move {
        let response = next.run(request).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        response
    };
    let router = axum::Router::new()
        .route(
            "/once",
            axum::routing::post(handler)
                .layer(axum::middleware::from_fn(dies_after_commit))
                .layer(axum::middleware::from_fn(
                    depot_http::idempotency::middleware,
                )),
        )
        .layer(depot_http::idempotency::provide(&app.context));
    let request = || {
        Request::post("/once")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", admin.access_token),
            )
            .header("Idempotency-Key", "k-once")
            .body(Body::from("{}"))
            .unwrap()
    };
    let locations = || app.scalar("SELECT COUNT(*) FROM locations WHERE code = 'ONCE'");

    let died = tokio::time::timeout(
        Duration::from_millis(500),
        router.clone().oneshot(request()),
    )
    .await;
    assert!(died.is_err(), "the first request never answered");
    assert_eq!(locations().await, 1, "its unit of work committed");
    let scope = idem::scope(admin.user_id, "POST", "/once");
    // Dropping the request tries to release the claim: a committed one is kept.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let row = repo::get(app.store.reader(), &scope, "k-once")
        .await
        .unwrap()
        .expect("the key is kept");
    assert_eq!(row.status, repo::COMMITTED);

    // While the claim's lease runs, a copy waits and is told to retry later.
    let copy = router.clone().oneshot(request()).await.unwrap();
    assert_eq!(copy.status(), 409);
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(copy.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["code"], "idempotency.in_progress", "{body}");

    // Once the lease has ended the process is known dead: the request does not run again,
    // whatever the time, and the purge keeps the key for its retention.
    clock.advance(chrono::Duration::minutes(10));
    let token = fresh_token(&app, &admin.email).await;
    let late = || {
        Request::post("/once")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("Idempotency-Key", "k-once")
            .body(Body::from("{}"))
            .unwrap()
    };
    let lost = router.clone().oneshot(late()).await.unwrap();
    assert_eq!(lost.status(), 409);
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(lost.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["code"], "idempotency.response_lost", "{body}");
    assert_eq!(app.run_job("purge_idempotency_keys").await, 0);
    assert!(
        repo::get(app.store.reader(), &scope, "k-once")
            .await
            .unwrap()
            .is_some(),
        "kept through the purge"
    );
    assert_eq!(locations().await, 1, "the effect exists once");
    app.stop().await;
}
