//! The realtime socket through a real WebSocket client: tickets (single use, short-lived, bound
//! to their Origin), each user receiving only their own notifications — across two instances
//! through Redis —, logout and shutdown closing sockets, and a client that does not read
//! being dropped.

use std::time::{Duration, Instant};

use depot::Role;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use uuid::Uuid;

use crate::helpers::{Http, Session, spawn_app, spawn_app_with, wait_in_sync};
use crate::notifications::{call, raise_low_stock};
use crate::stock::Desk;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const ORIGIN: &str = "https://app.depot.example";

async fn ticket(app: &impl Http, who: &Session, origin: Option<&str>) -> (u16, Value) {
    let (client, addr) = app.endpoint();
    let mut request = client
        .post(format!("http://{addr}/api/v1/ws/ticket"))
        .bearer_auth(&who.access_token);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Opens the socket with `ticket`; the HTTP status when the handshake is refused.
async fn open(app: &impl Http, ticket: &str, origin: Option<&str>) -> Result<Socket, u16> {
    let (_, addr) = app.endpoint();
    let mut request = format!("ws://{addr}/api/v1/ws?ticket={ticket}")
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("handshake failed: {other}"),
    }
}

async fn socket_for(app: &impl Http, who: &Session) -> Socket {
    let (status, body) = ticket(app, who, None).await;
    assert_eq!(status, 201, "{body}");
    open(app, body["ticket"].as_str().unwrap(), None)
        .await
        .expect("socket opens")
}

/// The next text message within `within`, skipping pings.
async fn next_message(socket: &mut Socket, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??;
        match frame.ok()? {
            Message::Text(text) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// The close code the server sends within `within`.
async fn close_code(socket: &mut Socket, within: Duration) -> Option<CloseCode> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??
        {
            Ok(Message::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fn email(tag: &str) -> String {
    format!("{tag}-{}@example.com", Uuid::now_v7().simple())
}

#[tokio::test]
async fn each_user_receives_only_their_own_notifications() {
    let app = spawn_app().await;
    let desk = Desk::open(&app).await;
    let watcher = app.sign_in_with(&email("watcher"), &["stock.read"]).await;
    let outsider = app
        .sign_in_with(&email("outsider"), &["products.read"])
        .await;
    let mut watching = socket_for(&app, &watcher).await;
    let mut outside = socket_for(&app, &outsider).await;

    raise_low_stock(&desk, "BOLTS").await;
    let message = next_message(&mut watching, Duration::from_secs(10))
        .await
        .expect("the watcher hears of the alert");
    assert_eq!(message["type"], "notification");
    assert_eq!(message["data"]["event_type"], "alert.raised");
    assert_eq!(message["data"]["user_id"], json!(watcher.user_id));
    assert!(
        next_message(&mut outside, Duration::from_millis(700))
            .await
            .is_none(),
        "nothing for a user without stock.read"
    );
    app.stop().await;
}

#[tokio::test]
async fn tickets_are_single_use_short_lived_and_bound_to_their_origin() {
    let app = spawn_app_with(|s| {
        s.ws_ticket_ttl_secs = 1;
        s.cors_origins = vec![ORIGIN.to_owned(), "https://other.depot.example".to_owned()];
    })
    .await;
    let me = app.sign_in_with(&email("me"), &[]).await;

    let (status, body) = ticket(&app, &me, Some(ORIGIN)).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["expires_at"].is_string());
    let good = body["ticket"].as_str().unwrap().to_owned();
    // From another (even allowed) Origin than the one it was asked from: refused.
    assert_eq!(
        open(&app, &good, Some("https://other.depot.example"))
            .await
            .err(),
        Some(403)
    );
    // That used it up.
    assert_eq!(open(&app, &good, Some(ORIGIN)).await.err(), Some(401));

    let (_, body) = ticket(&app, &me, Some(ORIGIN)).await;
    let once = body["ticket"].as_str().unwrap().to_owned();
    let socket = open(&app, &once, Some(ORIGIN)).await;
    assert!(socket.is_ok(), "the right Origin opens it");
    assert_eq!(
        open(&app, &once, Some(ORIGIN)).await.err(),
        Some(401),
        "replayed"
    );

    let (_, body) = ticket(&app, &me, Some(ORIGIN)).await;
    let stale = body["ticket"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        open(&app, &stale, Some(ORIGIN)).await.err(),
        Some(401),
        "expired"
    );

    assert_eq!(open(&app, "made-up", None).await.err(), Some(401));
    let (status, body) = ticket(&app, &me, Some("https://evil.example")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "realtime.origin_refused");
    // A plain GET is no handshake and spends nothing.
    let (_, body) = ticket(&app, &me, None).await;
    let kept = body["ticket"].as_str().unwrap().to_owned();
    let plain = app.get(&format!("/api/v1/ws?ticket={kept}")).await;
    assert_eq!(plain.status(), 400);
    assert!(open(&app, &kept, None).await.is_ok());
    let anonymous = app.call("POST", "/api/v1/ws/ticket", None, None).await;
    assert_eq!(anonymous.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn logout_and_disabling_close_the_sockets_and_shutdown_closes_them_all() {
    let app = spawn_app().await;
    let me = app.sign_in_with(&email("me"), &[]).await;
    let other = app.sign_in_with(&email("other"), &[]).await;
    let mut mine = socket_for(&app, &me).await;
    let mut theirs = socket_for(&app, &other).await;
    let started = Instant::now();
    let (status, _) = call(&app, &me, "POST", "/api/v1/auth/logout", None).await;
    assert_eq!(status, 204);
    assert_eq!(
        close_code(&mut mine, Duration::from_secs(3)).await,
        Some(CloseCode::Policy),
        "logout closes the socket"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // A disabled user's sockets close too.
    let disabled = app.sign_in_with(&email("disabled"), &[]).await;
    let mut theirs_too = socket_for(&app, &disabled).await;
    let admin = app.sign_in_with(&email("admin"), &["users.manage"]).await;
    let started = Instant::now();
    let (status, body) = call(
        &app,
        &admin,
        "POST",
        &format!("/api/v1/users/{}/disable", disabled.user_id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        close_code(&mut theirs_too, Duration::from_secs(3)).await,
        Some(CloseCode::Policy),
        "disabling the user closes the socket"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let stopping = tokio::spawn(async move { app.stop().await });
    assert_eq!(
        close_code(&mut theirs, Duration::from_secs(5)).await,
        Some(CloseCode::Away),
        "shutdown says going away"
    );
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_client_that_does_not_read_is_dropped_not_buffered() {
    let app = spawn_app_with(|s| s.ws_send_queue = 8).await;
    let me = app.sign_in_with(&email("me"), &[]).await;
    let mut socket = socket_for(&app, &me).await;
    let hub = app.context.realtime().hub().clone();
    assert_eq!(hub.open_sockets(), 1);
    // 64 KiB a message, never read: the kernel buffers fill, then the queue, then it goes.
    let big = "x".repeat(64 * 1024);
    let deadline = Instant::now() + Duration::from_secs(20);
    while hub.open_sockets() > 0 && Instant::now() < deadline {
        for _ in 0..32 {
            app.context
                .realtime()
                .push(me.user_id, "test.filler", &json!({ "fill": big }))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hub.open_sockets(), 0, "the slow client was dropped");
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("realtime_drops_total{reason="),
        "{metrics}"
    );
    // Reading now, the client finds the end of the stream (after what was already sent).
    let mut frames = 0;
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_secs(5), socket.next()).await
    {
        frames += 1;
        if frame.is_close() {
            break;
        }
    }
    assert!(frames > 0);
    app.stop().await;
}

#[tokio::test]
async fn an_alert_raised_through_one_instance_reaches_a_socket_on_another_within_a_second() {
    if depot_testkit::redis_or_skip("realtime across instances").is_none() {
        return;
    }
    let app = spawn_app().await;
    let peer = app.spawn_instance(Role::Api, |_| {}).await;
    wait_in_sync(&[&app.context, &peer.context]).await;
    assert_eq!(peer.context.realtime().backend(), "redis");
    let desk = Desk::open(&app).await;
    let watcher = app.sign_in_with(&email("watcher"), &["stock.read"]).await;
    let outsider = app
        .sign_in_with(&email("outsider"), &["products.read"])
        .await;
    let mut on_peer = socket_for(&peer, &watcher).await;
    let mut outsider_on_peer = socket_for(&peer, &outsider).await;
    let mut on_app = socket_for(&app, &watcher).await;

    let here = desk.location("WH1").await;
    let bolts = desk
        .product("BOLTS", "pcs", json!({ "reorder_point": 150 }))
        .await;
    desk.add(bolts, here, json!(200), json!({})).await;
    let started = Instant::now();
    desk.add(bolts, here, json!(-60), json!({ "reason": "damaged" }))
        .await;
    let message = next_message(&mut on_peer, Duration::from_secs(5))
        .await
        .expect("the socket on the other instance hears of it");
    let elapsed = started.elapsed();
    assert_eq!(message["data"]["event_type"], "alert.raised");
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    assert!(
        next_message(&mut on_app, Duration::from_secs(2))
            .await
            .is_some()
    );
    assert!(
        next_message(&mut outsider_on_peer, Duration::from_millis(500))
            .await
            .is_none()
    );
    peer.stop().await;
    app.stop().await;
}

/// Debian's Chromium, when installed (CI installs it).
fn chromium() -> Option<std::path::PathBuf> {
    let path = std::path::PathBuf::from("/usr/bin/chromium");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install chromium (apt-get install chromium)"
    );
    depot_testkit::skip(
        "realtime::a_browser_page_shows_a_notification_arriving_live",
        "chromium",
        "/usr/bin/chromium",
    );
    None
}

struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_browser_page_shows_a_notification_arriving_live() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let Some(chromium) = chromium() else { return };
    let page = MockServer::start().await;
    let page_origin = page.uri();
    let origin = page_origin.clone();
    let app = spawn_app_with(move |s| s.cors_origins = vec![origin]).await;
    let desk = Desk::open(&app).await;
    let watcher = app.sign_in_with(&email("watcher"), &["stock.read"]).await;
    // The page signs its requests with a bearer token, asks for a ticket from its own Origin
    // (CORS), opens the socket and shows each notification's title as it arrives; it reports
    // what it shows to the server that served it.
    let api = format!("http://{}", app.addr);
    let html = format!(
        r#"<!doctype html><html><head><title>Depot inbox</title></head><body>
<h1>Notifications</h1><ul id="inbox"></ul>
<script>
const api = "{api}";
async function run() {{
  const answer = await fetch(api + "/api/v1/ws/ticket", {{
    method: "POST", headers: {{ "authorization": "Bearer {token}" }} }});
  const {{ ticket }} = await answer.json();
  const socket = new WebSocket(api.replace("http", "ws") + "/api/v1/ws?ticket=" + encodeURIComponent(ticket));
  socket.onopen = () => fetch("/ready", {{ method: "POST" }});
  socket.onmessage = (event) => {{
    const message = JSON.parse(event.data);
    const item = document.createElement("li");
    item.textContent = message.data.title;
    document.getElementById("inbox").appendChild(item);
    fetch("/shown", {{ method: "POST", body: document.getElementById("inbox").innerText }});
  }};
}}
run().catch((e) => fetch("/failed", {{ method: "POST", body: String(e) }}));
</script></body></html>"#,
        token = watcher.access_token,
    );
    Mock::given(method("GET"))
        .and(path("/inbox.html"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(html, "text/html"))
        .mount(&page)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&page)
        .await;
    let profile = tempfile::tempdir().unwrap();
    let _browser = Browser(
        std::process::Command::new(chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("{page_origin}/inbox.html"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let posted = |to: &'static str| {
        let page = &page;
        async move {
            page.received_requests()
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.url.path() == to)
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .collect::<Vec<_>>()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while posted("/ready").await.is_empty() {
        assert!(
            posted("/failed").await.is_empty(),
            "{:?}",
            posted("/failed").await
        );
        assert!(
            Instant::now() < deadline,
            "the page never opened its socket"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    raise_low_stock(&desk, "BOLTS").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let shown = posted("/shown").await;
        if shown.iter().any(|s| s.contains("Low stock: BOLTS")) {
            break;
        }
        assert!(Instant::now() < deadline, "the page showed {shown:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_report_job_tells_its_owners_socket_how_it_ends() {
    let app = spawn_app().await;
    let analyst = app.sign_in_with(&email("analyst"), &["reports.read"]).await;
    let mut socket = socket_for(&app, &analyst).await;
    let (status, body) = call(
        &app,
        &analyst,
        "POST",
        "/api/v1/reports",
        Some(json!({ "type": "stock_on_hand", "params": {} })),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let job = body["id"].clone();
    let mut seen = Vec::new();
    while let Some(message) = next_message(&mut socket, Duration::from_secs(10)).await {
        if message["type"] != "report.updated" || message["data"]["id"] != job {
            continue;
        }
        let status = message["data"]["status"].as_str().unwrap().to_owned();
        seen.push(status.clone());
        if status == "succeeded" {
            assert_eq!(message["data"]["progress"], 100);
            assert!(message["data"]["download_path"].is_string());
            break;
        }
    }
    assert_eq!(seen, ["running", "succeeded"]);
}
