//! WebSockets: memory per idle socket, fan-out latency, and a flood of clients that never read.
//!
//! The server is the real `depot serve` binary in its own process (so its memory is its own),
//! on a fresh SQLite database, with Redis for the realtime fan-out. This program creates the
//! users on the same database, signs them in over HTTP, takes a ticket per socket and opens
//! them, then:
//!
//! 1. holds `SOCKETS` idle sockets (10 users × `SOCKETS / 10`) and reads the server's RSS
//!    before and after: memory per socket;
//! 2. publishes 30 events, one at a time, to the user holding `SOCKETS / 10` sockets (1,000 by
//!    default) through Redis pub/sub — as another instance would — and times each socket's
//!    receipt from the publish: fan-out latency p50/p99/max; the other users' sockets must
//!    receive nothing;
//! 3. opens 200 sockets that never read and pushes 2,000 messages of 16 KiB to them: every
//!    one must be dropped, and the server's peak RSS must not grow by the 6 GiB they were
//!    sent.
//!
//! Needs the release `depot` binary beside this one, Redis (`DEPOT_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`) and, in each of the two processes, a file descriptor per socket
//! (`ulimit -n` ≥ 11,200 for 10,000):
//!
//!     cargo build --release -p depot --bin depot -p depot-bench --bin sockets
//!     $CARGO_TARGET_DIR/release/sockets [SOCKETS]

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program: fail loudly

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use depot_app::config::{Secret, ServiceUrl, Settings};
use depot_bench::sign_in;
use depot_testkit::TestDatabase;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const USERS: usize = 10;
const ROUNDS: usize = 30;
const SLOW_SOCKETS: usize = 200;
const SLOW_MESSAGES: usize = 2_000;
const JWT: &str = "bench-jwt-secret-0123456789-abcdefghijklmn";
const APP: &str = "bench-app-secret-9876543210-zyxwvutsrqponm";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(client: &reqwest::Client, base: &str, token: &str) -> Socket {
    let ticket: serde_json::Value = client
        .post(format!("{base}/api/v1/ws/ticket"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "{}/api/v1/ws?ticket={}",
        base.replace("http", "ws"),
        ticket["ticket"].as_str().expect("ticket")
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("socket")
        .0
}

async fn open_many(client: &reqwest::Client, base: &str, token: &str, n: usize) -> Vec<Socket> {
    futures::stream::iter(0..n)
        .map(|_| open(client, base, token))
        .buffer_unordered(64)
        .collect()
        .await
}

async fn gauge(client: &reqwest::Client, metrics: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn user_id(client: &reqwest::Client, base: &str, token: &str) -> Uuid {
    let me: serde_json::Value = client
        .get(format!("{base}/api/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["id"].as_str().expect("id").parse().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sockets: usize = std::env::args().nth(1).map_or(Ok(10_000), |a| a.parse())?;
    let per_user = sockets / USERS;
    // Each process holds one end of every socket (the server's limit is inherited).
    let needed = (sockets + SLOW_SOCKETS + 1_000) as u64;
    anyhow::ensure!(
        open_files_limit() >= needed,
        "needs {needed} open files in each process: raise `ulimit -n` first"
    );
    let redis = std::env::var("DEPOT_TEST_REDIS_URL").unwrap_or("redis://127.0.0.1:6379".into());
    let db = TestDatabase::fresh().await;
    let namespace = format!("depot-bench-{}", Uuid::now_v7().simple());
    let settings = Settings {
        data_dir: db.dir().join("data"),
        database_url: Some(ServiceUrl::new(db.url())),
        http_addr: "127.0.0.1:0".parse()?,
        metrics_addr: None,
        log_filter: "warn".into(),
        jwt_secret: Some(Secret::new(JWT)),
        app_secret: Some(Secret::new(APP)),
        redis_url: Some(ServiceUrl::new(redis.clone())),
        namespace: namespace.clone(),
        ..Settings::default()
    };
    // This process's context: the schema, the users, and the publisher (as another instance).
    let ctx = depot::wiring::build_context(settings.clone()).await?;
    ctx.schema().migrate_up().await?;

    let (api, metrics) = (free_port(), free_port());
    let exe = std::env::current_exe()?.with_file_name("depot");
    anyhow::ensure!(
        exe.exists(),
        "build the server first: cargo build --release -p depot"
    );
    let server = Server(
        Command::new(exe)
            .arg("serve")
            .env("DEPOT_DATABASE_URL", db.url())
            .env("DEPOT_DATA_DIR", db.dir().join("data"))
            .env("DEPOT_HTTP_ADDR", format!("127.0.0.1:{api}"))
            .env("DEPOT_METRICS_ADDR", format!("127.0.0.1:{metrics}"))
            .env("DEPOT_REDIS_URL", &redis)
            .env("DEPOT_NAMESPACE", &namespace)
            .env("DEPOT_JWT_SECRET", JWT)
            .env("DEPOT_APP_SECRET", APP)
            .env("DEPOT_LOG_FILTER", "warn")
            .env("DEPOT_HTTP_MAX_CONNECTIONS", "30000")
            .env("DEPOT_WS_MAX_SOCKETS", "30000")
            .env("DEPOT_WS_SEND_QUEUE", "64")
            .env("DEPOT_AUTH_RATE_LIMIT_PER_IP", "100000")
            .stdout(Stdio::null())
            .spawn()?,
    );
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{api}");
    let metrics = format!("http://127.0.0.1:{metrics}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    for _ in 0..300 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut users = Vec::new();
    for u in 0..USERS {
        let email = format!("listener{u}@bench.example");
        let token = sign_in(&ctx, &client, &base, &email, &[]).await?;
        let id = user_id(&client, &base, &token).await;
        users.push((id, token));
    }
    // Warm the server's paths once, then settle.
    drop(open(&client, &base, &users[0].1).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_mib(pid, "VmRSS:");

    // 1. Idle sockets. Each one's reader reports (user, seq, when) for what arrives.
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<(usize, u64, Instant)>();
    let started = Instant::now();
    for (u, (_, token)) in users.iter().enumerate() {
        for socket in open_many(&client, &base, token, per_user).await {
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let (_, mut read) = socket.split();
                while let Some(Ok(frame)) = read.next().await {
                    if let Message::Text(text) = frame {
                        let at = Instant::now();
                        let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                        let seq = v["data"]["seq"].as_u64().unwrap_or(u64::MAX);
                        let _ = seen_tx.send((u, seq, at));
                    }
                }
            });
        }
    }
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let open_now = gauge(&client, &metrics, "realtime_open_sockets").await;
    let after = rss_mib(pid, "VmRSS:");
    println!(
        "idle sockets  {sockets} open (server gauge {open_now}) in {:.1} s; server RSS {before:.1} → {after:.1} MiB = {:.1} KiB per socket",
        opened_in.as_secs_f64(),
        (after - before) * 1024.0 / sockets as f64
    );

    // 2. Fan-out: one event to the `per_user` sockets of user 0, published through Redis.
    let target = users[0].0;
    let mut latencies = Vec::with_capacity(ROUNDS * per_user);
    let mut strays = 0usize;
    for seq in 0..ROUNDS as u64 {
        let sent = Instant::now();
        ctx.realtime()
            .push(target, "bench", &serde_json::json!({ "seq": seq }))
            .await;
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got < per_user {
            match tokio::time::timeout_at(deadline, seen.recv()).await {
                Ok(Some((u, s, at))) if u == 0 && s == seq => {
                    latencies.push(at - sent);
                    got += 1;
                }
                Ok(Some(_)) => strays += 1,
                _ => anyhow::bail!("round {seq}: only {got} of {per_user} sockets heard it"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), seen.recv()).await {
        strays += 1;
    }
    latencies.sort();
    println!(
        "fan-out       {ROUNDS} events × {per_user} subscribers through Redis: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; messages to other users' sockets: {strays}",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );

    // 3. Clients that never read.
    let email = "slow@bench.example";
    let token = sign_in(&ctx, &client, &base, email, &[]).await?;
    let slow_id = user_id(&client, &base, &token).await;
    let slow = open_many(&client, &base, &token, SLOW_SOCKETS).await;
    let peak_before = rss_mib(pid, "VmHWM:");
    let rss_before = rss_mib(pid, "VmRSS:");
    let filler = "x".repeat(16 * 1024);
    let started = Instant::now();
    for _ in 0..SLOW_MESSAGES {
        ctx.realtime()
            .push(
                slow_id,
                "bench.filler",
                &serde_json::json!({ "fill": filler }),
            )
            .await;
    }
    let mut open_after = gauge(&client, &metrics, "realtime_open_sockets").await;
    while open_after > sockets as f64 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        open_after = gauge(&client, &metrics, "realtime_open_sockets").await;
    }
    let mut drops = HashMap::new();
    for reason in ["slow_client", "send_failed", "send_timeout"] {
        let name = format!("realtime_drops_total{{reason=\"{reason}\"}}");
        drops.insert(reason, gauge(&client, &metrics, &name).await);
    }
    println!(
        "slow clients  {SLOW_SOCKETS} sockets never reading, {SLOW_MESSAGES} × 16 KiB pushed ({:.0} MiB in all): dropped in {:.1} s ({drops:?}), {} still open; server RSS {rss_before:.1} → {:.1} MiB, peak {peak_before:.1} → {:.1} MiB",
        (SLOW_SOCKETS * SLOW_MESSAGES * 16) as f64 / 1024.0,
        started.elapsed().as_secs_f64(),
        open_after - sockets as f64,
        rss_mib(pid, "VmRSS:"),
        rss_mib(pid, "VmHWM:"),
    );
    drop(slow);
    drop(server);
    Ok(())
}
