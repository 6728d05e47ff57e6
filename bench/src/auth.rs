//! What authentication costs on a cheap authenticated route.
//!
//! Boots the real application (API only, release build) on a fresh database, creates a user,
//! signs in, and then drives two routes that do the same work — load one user with their
//! roles — over keep-alive HTTP connections:
//!
//! - `GET /api/v1/users/me` with the bearer token (JWT verification, denylist check, session
//!   grant from the cache with its version check),
//! - `GET /api/v1/_debug/users/{id}` without authentication (the same service call).
//!
//! Phases alternate (plain, authed, plain, authed, …) so drift hits both alike. Prints
//! requests/s, p50 and p99 of each and the difference at p50.
//!
//! Database: a fresh SQLite file, or PostgreSQL when `DEPOT_TEST_DATABASE_URL` is set; Redis
//! (cache, denylist, rate limits) when `REDIS_URL` is set.
//!
//!     cargo run --release -p depot-bench --bin auth -- [REQUESTS_PER_PHASE] [CONCURRENCY]

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program: fail loudly

use std::time::{Duration, Instant};

use depot::{Application, Role};
use depot_app::ClientInfo;
use depot_app::config::{Secret, ServiceUrl, Settings};
use depot_app::users::NewUser;
use depot_testkit::TestDatabase;
use futures::StreamExt;

const PASSWORD: &str = "a long and unguessable passphrase 42";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Runs `n` GETs of `url` with `concurrency` in flight; returns the latencies and the wall time.
async fn phase(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    n: usize,
    concurrency: usize,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(0..n)
        .map(|_| async move {
            let t = Instant::now();
            let mut request = client.get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 200, "{url}");
            response.bytes().await.expect("body");
            t.elapsed()
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    (latencies, started.elapsed())
}

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Stats {
    fn add(&mut self, (latencies, wall): (Vec<Duration>, Duration)) {
        self.latencies.extend(latencies);
        self.wall += wall;
    }

    fn report(&mut self, name: &str) -> Duration {
        self.latencies.sort();
        let p50 = percentile(&self.latencies, 0.5);
        println!(
            "{name:<28} {:>8.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms",
            self.latencies.len() as f64 / self.wall.as_secs_f64(),
            p50.as_secs_f64() * 1e3,
            percentile(&self.latencies, 0.99).as_secs_f64() * 1e3,
        );
        p50
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let per_phase: usize = std::env::args().nth(1).map_or(Ok(4000), |a| a.parse())?;
    let concurrency: usize = std::env::args().nth(2).map_or(Ok(8), |a| a.parse())?;
    let db = TestDatabase::fresh().await;
    let redis = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    let settings = Settings {
        data_dir: db.dir().join("data"),
        database_url: Some(ServiceUrl::new(db.url())),
        http_addr: "127.0.0.1:0".parse()?,
        metrics_addr: Some("127.0.0.1:0".parse()?),
        debug_routes: true,
        log_filter: "warn".into(),
        jwt_secret: Some(Secret::new("bench-jwt-secret-0123456789-abcdefghijklmn")),
        app_secret: Some(Secret::new("bench-app-secret-9876543210-zyxwvutsrqponm")),
        redis_url: redis.clone().map(ServiceUrl::new),
        namespace: format!("depot-bench-{}", uuid::Uuid::now_v7().simple()),
        ..Settings::default()
    };
    let app = Application::start(settings, Role::Api).await?;
    let addr = app.api_addr().expect("api listener");
    let ctx = app.context().clone();
    let shutdown = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());

    let user = ctx
        .users()
        .create(
            depot_domain::Actor::System("bench"),
            NewUser {
                email: "bench@example.com".into(),
                display_name: "Bench".into(),
                phone: None,
                password: Some(PASSWORD.into()),
                roles: vec!["viewer".into()],
            },
            &ClientInfo::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let login: serde_json::Value = client
        .post(format!("http://{addr}/api/v1/auth/login"))
        .json(&serde_json::json!({ "email": "bench@example.com", "password": PASSWORD }))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"].as_str().expect("token").to_owned();
    let authed = format!("http://{addr}/api/v1/users/me");
    let plain = format!("http://{addr}/api/v1/_debug/users/{}", user.id);

    println!(
        "database={} cache={} requests/phase={per_phase} concurrency={concurrency}",
        db.backend(),
        if redis.is_some() { "redis" } else { "memory" }
    );
    // Warm up both paths (connections, caches, JIT-free but page caches).
    phase(&client, &plain, None, 500, concurrency).await;
    phase(&client, &authed, Some(&token), 500, concurrency).await;

    let mut without = Stats::default();
    let mut carried = Stats::default();
    let mut with = Stats::default();
    for _ in 0..8 {
        without.add(phase(&client, &plain, None, per_phase / 8, concurrency).await);
        // Same unauthenticated route, but the request carries the token (ignored): separates
        // the cost of sending ~500 more header bytes from the cost of checking them.
        carried.add(phase(&client, &plain, Some(&token), per_phase / 8, concurrency).await);
        with.add(phase(&client, &authed, Some(&token), per_phase / 8, concurrency).await);
    }
    let base = without.report("without auth (_debug/users)");
    let carried_p50 = carried.report("  … token sent, not checked");
    let authed_p50 = with.report("with auth (users/me)");
    let pct = |a: Duration, b: Duration| (a.as_secs_f64() / b.as_secs_f64() - 1.0) * 100.0;
    let ms = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()) * 1e3;
    println!(
        "auth adds {:+.1}% at p50 ({:+.3} ms); checking the token adds {:+.1}% ({:+.3} ms)",
        pct(authed_p50, base),
        ms(authed_p50, base),
        pct(authed_p50, carried_p50),
        ms(authed_p50, carried_p50),
    );

    // The authentication step alone, without HTTP.
    let t = Instant::now();
    for _ in 0..10_000 {
        ctx.authenticator()
            .authenticate(&token)
            .await
            .expect("authenticates");
    }
    println!(
        "AuthService::authenticate alone: {:.1} µs per call",
        t.elapsed().as_secs_f64() * 1e6 / 10_000.0
    );
    if let Some(url) = &redis {
        let redis = depot_adapters::cache::RedisLayer::new(url).expect("redis url");
        // What one Redis round trip costs here, for reading the figures above.
        let keys = vec!["depot-bench:a".to_owned(), "depot-bench:b".to_owned()];
        let mut rtts = Vec::new();
        for _ in 0..2000 {
            let t = Instant::now();
            redis.mget(&keys).await.expect("redis");
            rtts.push(t.elapsed());
        }
        rtts.sort();
        println!(
            "one Redis MGET from the app: p50 {:.3} ms, p99 {:.3} ms",
            percentile(&rtts, 0.5).as_secs_f64() * 1e3,
            percentile(&rtts, 0.99).as_secs_f64() * 1e3
        );
    }
    shutdown.shutdown();
    server.await??;
    Ok(())
}
