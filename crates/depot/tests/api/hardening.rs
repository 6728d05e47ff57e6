//! Findings of the outside probe, each kept as a regression test: forged cursors, strings the
//! database refuses, search wildcards.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

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
