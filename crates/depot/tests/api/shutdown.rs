//! SIGTERM: readiness flips, in-flight requests finish, new connections are refused, exit 0.

use std::time::Duration;

use crate::process::Server;

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
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
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // During the drain delay the listener still answers, and readiness says draining.
    let draining = crate::helpers::client()
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(draining.status(), 503);
    let body: serde_json::Value = draining.json().await.unwrap();
    assert_eq!(body["status"], "draining");

    // After it, new connections are refused while the slow request is still running.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let refused = tokio::net::TcpStream::connect(server.addr).await;
    assert!(
        refused.is_err(),
        "new connections must be refused after draining"
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
    let logs = server.json_logs();
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
