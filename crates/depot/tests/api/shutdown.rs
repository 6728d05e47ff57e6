//! SIGTERM: readiness flips, in-flight requests finish, new connections are refused, exit 0.

use std::time::{Duration, Instant};

use crate::process::Server;

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    // On the configured backend (PostgreSQL in CI's second pass).
    let db = depot_testkit::TestDatabase::fresh().await;
    let mut server = Server::start(
        db.dir(),
        &[
            ("DATABASE_URL", db.url()),
            ("DEPOT_DEBUG_ROUTES", "true"),
            ("DEPOT_SHUTDOWN_DRAIN_DELAY_MS", "700"),
        ],
        &["serve"],
    );
    let client = crate::helpers::client();
    assert_eq!(
        client
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let slow = tokio::spawn(
        client
            .get(server.url("/api/v1/_debug/sleep?ms=2500"))
            .send(),
    );
    // The request is in flight once its handler says so.
    let mut seen = Vec::new();
    until("the slow request to start", || {
        seen.extend(server.json_logs());
        seen.iter().any(|l| l["message"] == "debug sleep started")
    })
    .await;
    server.terminate();

    // During the drain delay the listener still answers, and readiness says draining.
    let mut draining = None;
    let deadline = Instant::now() + Duration::from_millis(650);
    while draining.is_none() && Instant::now() < deadline {
        let response = crate::helpers::client()
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            draining = Some(response.json::<serde_json::Value>().await.unwrap());
        }
    }
    let body = draining.expect("readiness reports draining during the drain delay");
    assert_eq!(body["status"], "draining");

    // After it, new connections are refused while the slow request is still running.
    let mut refused = false;
    while !refused && !slow.is_finished() {
        refused = tokio::net::TcpStream::connect(server.addr).await.is_err();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused,
        "new connections must be refused after draining, before the slow request ends"
    );

    let response = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["slept_ms"], 2500);

    assert_eq!(server.wait(Duration::from_secs(15)), Some(0));

    // Every request log line carries its request id; the shutdown was clean.
    let mut logs = seen;
    logs.extend(server.json_logs());
    let served = logs
        .iter()
        .find(|l| l["message"] == "request served" && l["route"] == "/api/v1/_debug/sleep")
        .unwrap_or_else(|| panic!("no access log for the slow request: {logs:?}"));
    assert!(
        served["span"]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{served}"
    );
    assert!(logs.iter().any(|l| l["message"] == "SIGTERM received"));
    assert!(
        logs.iter()
            .any(|l| l["message"] == "depot stopped" && l["clean"] == true),
        "{logs:?}"
    );
}

/// Polls `done` until it holds (at most 20 s).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
