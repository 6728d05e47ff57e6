//! Connection limits, from outside the process: slow and silent clients are dropped, a flood
//! of idle sockets cannot starve `/healthz`, and shutdown does not wait for half-sent requests.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::Server;

/// Reads until the server closes the connection (or `within` passes): true when it closed.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn silent_trickling_and_idle_keep_alive_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[("DEPOT_HTTP_IDLE_TIMEOUT_SECS", "1")],
        &["serve"],
    );

    // Silent: never sends a byte.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Trickling: one header byte every 200 ms, never finishing.
    let mut trickle = TcpStream::connect(server.addr).await.unwrap();
    let trickler = tokio::spawn(async move {
        let started = Instant::now();
        for byte in b"GET /healthz HTTP/1.1\r\nHost: depot\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if trickle.write_all(&[*byte]).await.is_err() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if started.elapsed() > Duration::from_secs(6) {
                return None;
            }
        }
        None
    });
    // Idle keep-alive: one full request, then nothing.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: depot\r\n\r\n")
        .await
        .unwrap();

    assert!(
        closed_within(&mut silent, Duration::from_secs(3)).await,
        "silent socket"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(3)).await,
        "idle keep-alive"
    );
    let cut_after = trickler.await.unwrap();
    assert!(
        cut_after.is_some_and(|t| t < Duration::from_secs(4)),
        "trickling header cut after {cut_after:?}"
    );
}

#[tokio::test]
async fn two_thousand_idle_connections_do_not_starve_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_limited(
        dir.path(),
        &[("DEPOT_HTTP_MAX_CONNECTIONS", "512")],
        &["serve"],
        Some(1024),
    );
    let addr = server.addr;
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..2_000 {
        opening.spawn(async move {
            tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
                .await
                .ok()
                .and_then(Result::ok)
        });
    }
    let mut held = Vec::new();
    while let Some(stream) = opening.join_next().await {
        if let Some(stream) = stream.unwrap() {
            held.push(stream);
        }
    }
    assert!(held.len() > 1_024, "only {} sockets connected", held.len());

    let started = Instant::now();
    let response = crate::helpers::client()
        .get(server.url("/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("/healthz answers under a flood of idle connections");
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(held);
}

#[tokio::test]
async fn sigterm_with_a_half_sent_request_open_exits_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &["serve"]);
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: depot\r\nContent-")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: depot\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    server.terminate();
    assert_eq!(server.wait(Duration::from_secs(5)), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "exited after {:?}",
        started.elapsed()
    );
    assert!(closed_within(&mut half, Duration::from_millis(100)).await);
}

#[tokio::test]
async fn open_connections_are_a_gauge() {
    let app = crate::helpers::spawn_app().await;
    let _held = TcpStream::connect(app.addr).await.unwrap();
    let text = app.metrics_text().await;
    let open: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("depot_http_open_connections "))
        .unwrap_or_else(|| panic!("no gauge in {text}"))
        .trim()
        .parse()
        .unwrap();
    assert!(open >= 1.0, "{open}");
    app.stop().await;
}
