//! FEFO stock removals over HTTP against the database's own ceiling for the same work.
//!
//! Boots the real application (API and workers, release build) on a fresh database, creates a
//! location and 1,000 products with three batches each, signs a stock clerk in, and then has
//! `CLIENTS` keep-alive clients POST `/api/v1/stock/adjustments` (remove 1, FEFO) for
//! `SECONDS`:
//!
//! - (a) each request on a random one of the 1,000 products,
//! - (b) every request on one product.
//!
//! After each load it reports the outbox backlog (every removal emits `stock.changed`) and how
//! long the relay takes to drain it, runs the ledger check (`depot verify`'s), and at the end
//! runs `../shared/bench/sql-limit` for the same backend and prints each API figure as a ratio
//! of that ceiling, plus the process's peak RSS (server and client share the process).
//!
//! Database: a fresh SQLite file, or PostgreSQL when `DEPOT_TEST_DATABASE_URL` is set; RabbitMQ
//! as the broker when `AMQP_URL` is set.
//!
//!     cargo run --release -p depot-bench --bin stock -- [SECONDS] [CLIENTS]

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program: fail loudly

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use depot::{Application, Role};
use depot_app::ClientInfo;
use depot_app::catalog::{NewLocation, NewProduct};
use depot_app::config::{Secret, ServiceUrl, Settings};
use depot_app::stock::Adjustment;
use depot_bench::{peak_rss_mib, sign_in};
use depot_domain::Actor;
use depot_domain::stock::{AdjustmentReason, ProductStatus, Unit};
use depot_testkit::TestDatabase;
use sea_orm::{ConnectionTrait, Statement};
use uuid::Uuid;

const SETUP: Actor = Actor::System("bench");
const PRODUCTS: usize = 1_000;

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    insufficient: AtomicU64,
    other: AtomicU64,
    /// Every request's latency, in microseconds.
    latencies: std::sync::Mutex<Vec<u64>>,
}

impl Counts {
    /// The `q` quantile (0–1) of the latencies, in milliseconds.
    fn latency_ms(&self, q: f64) -> f64 {
        let mut all = self.latencies.lock().unwrap().clone();
        if all.is_empty() {
            return 0.0;
        }
        all.sort_unstable();
        let at = ((all.len() as f64 - 1.0) * q).round() as usize;
        all[at] as f64 / 1_000.0
    }
}

/// Where the load goes: the adjustments URL, the clerk's token, the stock.
struct Target {
    url: String,
    token: String,
    location: Uuid,
    products: Vec<Uuid>,
}

/// `clients` loops removing one unit (of the first product when `hot`, else of a random one),
/// for `seconds`; returns completed requests per second.
async fn load(
    client: &reqwest::Client,
    target: &Target,
    clients: usize,
    seconds: u64,
    hot: bool,
) -> (f64, Arc<Counts>) {
    let location = target.location;
    let counts = Arc::new(Counts::default());
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks = (0..clients).map(|c| {
        let counts = counts.clone();
        let client = client.clone();
        let (url, token) = (target.url.clone(), target.token.clone());
        let products = target.products.clone();
        tokio::spawn(async move {
            let mut n = c * 7919;
            let mut mine = Vec::new();
            while Instant::now() < until {
                let sent = Instant::now();
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407)
                    % (1 << 31);
                let product = if hot {
                    products[0]
                } else {
                    products[n % products.len()]
                };
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({
                        "product_id": product, "location_id": location,
                        "quantity": -1, "reason": "damaged",
                    }))
                    .send()
                    .await
                    .expect("request");
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                mine.push(sent.elapsed().as_micros() as u64);
                match status {
                    201 => counts.ok.fetch_add(1, Ordering::Relaxed),
                    409 if body["code"] == "stock.insufficient" => {
                        counts.insufficient.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => {
                        eprintln!("unexpected {status}: {body}");
                        counts.other.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            counts.latencies.lock().unwrap().extend(mine);
        })
    });
    futures::future::join_all(tasks).await;
    let done = counts.ok.load(Ordering::Relaxed) + counts.insufficient.load(Ordering::Relaxed);
    (done as f64 / started.elapsed().as_secs_f64(), counts)
}

async fn pending_outbox(db: &depot_store::Db) -> i64 {
    let row = db
        .reader()
        .query_one_raw(Statement::from_string(
            db.reader().get_database_backend(),
            "SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// The backlog when the load stopped, and how long the relay took to publish it.
async fn drain(db: &depot_store::Db) -> (i64, Duration) {
    let backlog = pending_outbox(db).await;
    let started = Instant::now();
    while pending_outbox(db).await > 0 && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (backlog, started.elapsed())
}

/// Runs `sql-limit` for `backend`; returns (distinct-products, one-hot-product) tx/s.
fn sql_limit(backend: &str, clients: usize, seconds: u64) -> Option<(f64, f64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/bench/sql-limit");
    let mut command = std::process::Command::new(script);
    command.arg(backend);
    if backend == "postgres" {
        command.arg(clients.to_string());
    }
    command.arg(seconds.to_string());
    let out = command.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    let figure = |label: &str| {
        text.lines()
            .find(|l| l.contains(label))
            .and_then(|l| l.split(": ").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((figure("distinct-products")?, figure("one-hot-product")?))
}

/// What the scale phases need of the running application.
struct Rig<'a> {
    ctx: &'a depot_app::AppContext,
    store: &'a depot_store::Db,
    client: &'a reqwest::Client,
    token: &'a str,
    addr: std::net::SocketAddr,
    location: Uuid,
}

async fn sql(store: &depot_store::Db, text: &str) {
    store
        .reader()
        .execute_unprepared(text)
        .await
        .unwrap_or_else(|e| panic!("{e}: {text}"));
}

/// Loads products `from..to` with `per` open batches each (expiries spread over two years),
/// their receipt movements and levels, straight into PostgreSQL (setup, not the work measured).
async fn bulk_load(store: &depot_store::Db, location: Uuid, from: usize, to: usize, per: usize) {
    let range = format!("p.sku_key >= 'sku-{from:06}' AND p.sku_key < 'sku-{to:06}'");
    sql(store, &format!(
        "INSERT INTO products (id, sku, sku_key, name, unit, tracks_expiry, status, search, created_at, updated_at) \
         SELECT gen_random_uuid(), 'SKU-' || lpad(n::text, 6, '0'), 'sku-' || lpad(n::text, 6, '0'), \
                'Product ' || n || ' ' || md5(n::text), 'pcs', true, 'active', \
                lower('SKU-' || lpad(n::text, 6, '0') || E'\\n' || 'Product ' || n || ' ' || md5(n::text) || E'\\n'), now(), now() \
         FROM generate_series({from}, {to} - 1) n")).await;
    sql(store, &format!(
        "INSERT INTO batches (id, product_id, location_id, lot, expiry, received_at, quantity, status, created_at, updated_at) \
         SELECT gen_random_uuid(), p.id, '{location}'::uuid, 'L' || b, \
                current_date + ((hashtext(p.id::text || b::text) & 1048575) % 720), now() - b * interval '1 day', \
                1000000, 'open', now(), now() \
         FROM products p, generate_series(1, {per}) b WHERE {range}")).await;
    sql(store, &format!(
        "INSERT INTO stock_movements (id, product_id, location_id, batch_id, kind, quantity, balance_after, reason, actor_name, created_at) \
         SELECT gen_random_uuid(), b.product_id, b.location_id, b.id, 'adjustment', b.quantity, b.quantity, 'initial', 'bench', now() \
         FROM batches b JOIN products p ON p.id = b.product_id WHERE {range}")).await;
    sql(
        store,
        &format!(
            "INSERT INTO stock_levels (product_id, location_id, on_hand, reserved, updated_at) \
         SELECT b.product_id, b.location_id, SUM(b.quantity), 0, now() \
         FROM batches b JOIN products p ON p.id = b.product_id WHERE {range} GROUP BY 1, 2"
        ),
    )
    .await;
    sql(store, "ANALYZE").await;
}

async fn product_ids(store: &depot_store::Db) -> Vec<Uuid> {
    store
        .reader()
        .query_all_raw(Statement::from_string(
            store.reader().get_database_backend(),
            "SELECT id FROM products ORDER BY sku_key",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<Uuid>("", "id").unwrap())
        .collect()
}

/// `n` GETs built by `path(i)` with `concurrency` in flight; returns (p50, p99) in ms.
async fn reads(
    rig: &Rig<'_>,
    n: usize,
    concurrency: usize,
    path: impl Fn(usize) -> String,
) -> (f64, f64) {
    use futures::StreamExt;
    let mut latencies: Vec<Duration> = futures::stream::iter(0..n)
        .map(|i| {
            let url = format!("http://{}{}", rig.addr, path(i));
            async move {
                let t = Instant::now();
                let response = rig
                    .client
                    .get(&url)
                    .bearer_auth(rig.token)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), 200, "{url}");
                response.bytes().await.expect("body");
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    latencies.sort();
    let at =
        |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

/// Removal throughput at 10,000 and at 1,000,000 batches, and read latency at 1,000,000
/// batches / 100,000 products (PostgreSQL).
async fn scale(rig: &Rig<'_>, clients: usize, seconds: u64) -> anyhow::Result<()> {
    let t = Instant::now();
    bulk_load(rig.store, rig.location, 0, 1_000, 10).await;
    println!(
        "loaded 1,000 products / 10,000 batches in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let target = |products: Vec<Uuid>| Target {
        url: format!("http://{}/api/v1/stock/adjustments", rig.addr),
        token: rig.token.to_owned(),
        location: rig.location,
        products,
    };
    let small = target(product_ids(rig.store).await);
    let (rate_small, counts) = load(rig.client, &small, clients, seconds, false).await;
    println!(
        "removals at 10,000 batches:     {rate_small:>7.0} /s (other errors {})",
        counts.other.load(Ordering::Relaxed)
    );
    let t = Instant::now();
    bulk_load(rig.store, rig.location, 1_000, 100_000, 10).await;
    println!(
        "loaded 100,000 products / 1,000,000 batches in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (rate_same, counts) = load(rig.client, &small, clients, seconds, false).await;
    println!(
        "removals at 1,000,000 batches, the same 1,000 products: {rate_same:>7.0} /s (other errors {})   ratio {:.2}",
        counts.other.load(Ordering::Relaxed),
        rate_same / rate_small
    );
    let large = target(product_ids(rig.store).await);
    let (rate_large, counts) = load(rig.client, &large, clients, seconds, false).await;
    println!(
        "removals at 1,000,000 batches, any of 100,000 products: {rate_large:>7.0} /s (other errors {})   ratio {:.2}",
        counts.other.load(Ordering::Relaxed),
        rate_large / rate_small
    );
    let soon = (chrono::Utc::now().date_naive() + chrono::Days::new(30)).to_string();
    let ids = &large.products;
    for (label, (p50, p99)) in [
        (
            "GET /stock/batches?expiring_before",
            reads(rig, 4_000, 16, |_| {
                format!("/api/v1/stock/batches?expiring_before={soon}")
            })
            .await,
        ),
        (
            "GET /products?q=<5 digits>",
            reads(rig, 4_000, 16, |i| {
                format!("/api/v1/products?q={:05}", (i * 7_919) % 100_000)
            })
            .await,
        ),
        (
            "GET /stock/levels?product_id=",
            reads(rig, 4_000, 16, |i| {
                format!(
                    "/api/v1/stock/levels?product_id={}",
                    ids[(i * 7_919) % ids.len()]
                )
            })
            .await,
        ),
    ] {
        println!("{label:<36} p50 {p50:>6.2} ms   p99 {p99:>6.2} ms   (16 clients)");
    }
    let t = Instant::now();
    let report = rig
        .ctx
        .stock()
        .verify()
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    println!(
        "verify over {} batches / {} movements: {} mismatches in {:.1} s",
        report.batches,
        report.movements,
        report.mismatches.len(),
        t.elapsed().as_secs_f64()
    );
    println!(
        "peak RSS of the process (server and clients): {:.0} MiB",
        peak_rss_mib()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let scale_mode = args.first().is_some_and(|a| a == "scale");
    if scale_mode {
        args.remove(0);
    }
    let seconds: u64 = args.first().map_or(Ok(15), |a| a.parse())?;
    let clients: usize = args.get(1).map_or(Ok(32), |a| a.parse())?;
    let db = TestDatabase::fresh().await;
    let amqp = std::env::var("AMQP_URL").ok().filter(|u| !u.is_empty());
    let settings = Settings {
        data_dir: db.dir().join("data"),
        database_url: Some(ServiceUrl::new(db.url())),
        http_addr: "127.0.0.1:0".parse()?,
        metrics_addr: None,
        log_filter: "warn".into(),
        jwt_secret: Some(Secret::new("bench-jwt-secret-0123456789-abcdefghijklmn")),
        app_secret: Some(Secret::new("bench-app-secret-9876543210-zyxwvutsrqponm")),
        amqp_url: amqp.clone().map(ServiceUrl::new),
        namespace: format!("depot-bench-{}", Uuid::now_v7().simple()),
        database_max_connections: 40,
        http_max_connections: 1024,
        // STOCK_GROUP_MAX_SIZE=1 measures without group commit.
        stock_group_max_size: std::env::var("STOCK_GROUP_MAX_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(Settings::default().stock_group_max_size),
        // STOCK_GROUP_LANES=n spreads the keys over n lanes (0, the default: by backend).
        stock_group_lanes: std::env::var("STOCK_GROUP_LANES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(Settings::default().stock_group_lanes),
        ..Settings::default()
    };
    let (group, lanes) = (settings.stock_group_max_size, settings.stock_group_lanes);
    let app = Application::start(settings, Role::All).await?;
    let addr = app.api_addr().expect("api listener");
    let ctx = app.context().clone();
    let shutdown = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let store = depot_store::Db::connect_lazy(&depot_store::DbOptions::new(db.url()))?;
    let local = ClientInfo::default();
    let fail = |e: depot_domain::AppError| anyhow::anyhow!("{e:?}");

    let location = ctx
        .catalog()
        .create_location(
            SETUP,
            NewLocation {
                code: "WH1".into(),
                name: "Main".into(),
                address: None,
                active: true,
            },
            &local,
        )
        .await
        .map_err(fail)?
        .id;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let token = sign_in(
        &ctx,
        &client,
        &format!("http://{addr}"),
        "clerk@example.com",
        &["stock.adjust", "stock.read", "products.read"],
    )
    .await?;
    if scale_mode {
        let rig = Rig {
            ctx: &ctx,
            store: &store,
            client: &client,
            token: &token,
            addr,
            location,
        };
        scale(&rig, clients, seconds).await?;
        shutdown.shutdown();
        let _ = server.await;
        return Ok(());
    }
    let mut products = Vec::with_capacity(PRODUCTS);
    for n in 0..PRODUCTS {
        let product = ctx
            .catalog()
            .create_product(
                SETUP,
                NewProduct {
                    sku: format!("SKU-{n:05}"),
                    name: format!("Product {n}"),
                    unit: Unit::Pieces,
                    category_id: None,
                    barcode: None,
                    reorder_point: None,
                    reorder_quantity: None,
                    tracks_expiry: true,
                    depletion_policy: None,
                    status: ProductStatus::Active,
                },
                &local,
            )
            .await
            .map_err(fail)?
            .id;
        for (lot, days) in [("A", 30), ("B", 60), ("C", 90)] {
            ctx.stock()
                .adjust(
                    SETUP,
                    Adjustment {
                        product_id: product,
                        location_id: location,
                        quantity: 1_000_000.into(),
                        reason: AdjustmentReason::Initial,
                        lot: Some(lot.into()),
                        expiry: Some(chrono::Utc::now().date_naive() + chrono::Days::new(days)),
                        unit_cost: None,
                        currency: None,
                        note: None,
                        allow_expired: false,
                    },
                    &local,
                )
                .await
                .map_err(fail)?;
        }
        products.push(product);
    }
    let target = Target {
        url: format!("http://{addr}/api/v1/stock/adjustments"),
        token,
        location,
        products,
    };
    let (_, settled) = drain(&store).await;
    println!(
        "database={} broker={} clients={clients} seconds={seconds} products={PRODUCTS} stock_group_max_size={group} stock_group_lanes={lanes} (setup events drained in {:.1} s)",
        db.backend(),
        if amqp.is_some() {
            "rabbitmq"
        } else {
            "database"
        },
        settled.as_secs_f64()
    );

    let mut figures = Vec::new();
    for (label, hot) in [
        ("(a) across 1,000 products", false),
        ("(b) one hot product", true),
    ] {
        let (rate, counts) = load(&client, &target, clients, seconds, hot).await;
        let (backlog, drained) = drain(&store).await;
        let report = ctx.stock().verify().await.map_err(fail)?;
        println!(
            "{label:<28} {rate:>7.0} removals/s   p50 {:.1} ms p99 {:.1} ms   ok {} insufficient {} other errors {}   outbox backlog {backlog} drained in {:.2} s   verify: {} mismatches",
            counts.latency_ms(0.5),
            counts.latency_ms(0.99),
            counts.ok.load(Ordering::Relaxed),
            counts.insufficient.load(Ordering::Relaxed),
            counts.other.load(Ordering::Relaxed),
            drained.as_secs_f64(),
            report.mismatches.len(),
        );
        figures.push(rate);
    }
    println!(
        "peak RSS of the process (server and clients): {:.0} MiB",
        peak_rss_mib()
    );
    shutdown.shutdown();
    let _ = server.await;

    let backend = if db.backend() == "postgres" {
        "postgres"
    } else {
        "sqlite"
    };
    match sql_limit(backend, clients, seconds) {
        Some((distinct, hot)) => {
            println!(
                "ratio to the database's ceiling: (a) {:.2}   (b) {:.2}",
                figures[0] / distinct,
                figures[1] / hot
            );
        }
        None => println!("sql-limit did not run (needs pgbench / python3); no ratio"),
    }
    Ok(())
}
