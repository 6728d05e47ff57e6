//! Reports on a large ledger (PostgreSQL): export throughput and the worker's memory.
//!
//! Seeds a fresh database — 1,000 products and 10 locations through the import, then
//! `BATCHES` batches and `MOVEMENTS` receipt movements (spread evenly over the last 300
//! days, `MOVEMENTS / BATCHES` per batch, so the ledger and the batches agree) and the levels
//! in SQL — and runs each report in a process of its own, the way a worker would
//! (`ReportService::request`, then the runner writes the CSV into the local object store):
//!
//! - `movements` over 30 days (≈ 1/10 of the ledger) and over 30 days at one location
//!   (≈ 1/100): rows, seconds, rows/s, bytes;
//! - `stock_valuation` (by product, and as of 60 days ago) and `stock_on_hand` (now, and as
//!   of 60 days ago): seconds;
//!
//! with each process's peak RSS (`VmHWM`).
//!
//!     DEPOT_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!       cargo run --release -p depot-bench --bin reports -- [BATCHES] [MOVEMENTS]

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program: fail loudly

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use depot_app::client::ClientInfo;
use depot_app::config::{Secret, ServiceUrl, Settings};
use depot_app::imports::{ImportRequest, Submitted};
use depot_bench::peak_rss_mib;
use depot_domain::Actor;
use depot_domain::import::{ImportKind, ImportMode};
use depot_testkit::TestDatabase;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

const PRODUCTS: usize = 1_000;
const LOCATIONS: usize = 10;

fn settings(url: &str, data_dir: &std::path::Path) -> Settings {
    Settings {
        data_dir: data_dir.to_path_buf(),
        database_url: Some(ServiceUrl::new(url)),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: None,
        log_filter: "warn".into(),
        jwt_secret: Some(Secret::new("bench-jwt-secret-0123456789-abcdefghijklmn")),
        app_secret: Some(Secret::new("bench-app-secret-9876543210-zyxwvutsrqponm")),
        namespace: format!("depot-bench-{}", Uuid::now_v7().simple()),
        import_max_bytes: 64 * 1024 * 1024,
        import_sync_max_bytes: 64 * 1024 * 1024,
        report_max_rows: 100_000_000,
        report_max_bytes: 1 << 40,
        ..Settings::default()
    }
}

async fn import(ctx: &depot_app::AppContext, kind: ImportKind, csv: String) {
    let request = ImportRequest {
        kind,
        mode: ImportMode::Apply,
        replace: false,
        file_name: None,
        content: csv.into_bytes(),
    };
    let done = ctx
        .imports()
        .submit(
            Actor::System("bench"),
            request,
            &ClientInfo::default(),
            true,
        )
        .await
        .unwrap();
    let Submitted::Finished(view) = done else {
        panic!("an inline import was queued")
    };
    assert_eq!(view.error_count, 0, "{:?}", view.errors);
}

/// The catalogue through the import, then batches, movements and levels in SQL.
async fn seed(url: &str, data_dir: &std::path::Path, batches: u64, movements: u64) {
    let started = Instant::now();
    let mut s = settings(url, data_dir);
    s.auto_migrate = Some(true);
    let app = depot::Application::start(s, depot::Role::Api)
        .await
        .unwrap();
    let ctx = app.context().clone();
    let mut products = String::from("sku,name,unit\n");
    for i in 0..PRODUCTS {
        writeln!(products, "SKU-{i:05},Product {i},pcs").unwrap();
    }
    import(&ctx, ImportKind::Products, products).await;
    let mut locations = String::from("code,name\n");
    for i in 0..LOCATIONS {
        writeln!(locations, "WH{i:02},Warehouse {i}").unwrap();
    }
    import(&ctx, ImportKind::Locations, locations).await;
    app.shutdown_handle().shutdown();
    let db = depot_store::Db::connect_lazy(&depot_store::DbOptions::new(url)).unwrap();
    let conn = db.reader();
    let per = (movements / batches).max(1);
    let statements = [
        format!(
            "WITH p AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM products), \
             l AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM locations) \
             INSERT INTO batches (id, product_id, location_id, lot, expiry, received_at, \
               unit_cost, currency, quantity, reserved, status, created_at, updated_at) \
             SELECT gen_random_uuid(), p.id, l.id, 'L' || g, CURRENT_DATE + (g % 700)::int, \
               now() - interval '300 days', 100 + g % 900, 'USD', {per} * 1000, 0, 'open', \
               now() - interval '300 days', now() \
             FROM generate_series(0, {batches} - 1) g \
             JOIN p ON p.n = g % {PRODUCTS} JOIN l ON l.n = (g / {PRODUCTS}) % {LOCATIONS} \
             ORDER BY g",
        ),
        format!(
            "INSERT INTO stock_movements (id, product_id, location_id, batch_id, kind, quantity, \
               balance_after, actor_name, created_at) \
             SELECT gen_random_uuid(), b.product_id, b.location_id, b.id, 'receipt', 1000, \
               1000 * (k + 1), 'bench', \
               now() - interval '300 days' + ((row_number() OVER ()) * ({spread} / {total}::float8) * interval '1 second') \
             FROM batches b CROSS JOIN generate_series(0, {per} - 1) k",
            spread = 300 * 86_400 - 60,
            total = per * batches,
        ),
        "INSERT INTO stock_levels (product_id, location_id, on_hand, reserved, updated_at) \
         SELECT product_id, location_id, SUM(quantity), 0, now() FROM batches \
         GROUP BY product_id, location_id"
            .to_owned(),
        "ANALYZE".to_owned(),
    ];
    for sql in statements {
        let step = Instant::now();
        conn.execute_unprepared(&sql).await.unwrap();
        println!(
            "  seeded in {:>6.1} s: {}",
            step.elapsed().as_secs_f64(),
            sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        );
    }
    db.close().await;
    println!(
        "seeded {batches} batches, {} movements in {:.0} s",
        per * batches,
        started.elapsed().as_secs_f64()
    );
}

/// In a process of its own: requests one report, waits for the runner, prints one JSON line.
async fn run_one(url: &str, data_dir: &std::path::Path, kind: &str, params: Value) {
    let ctx = depot::wiring::build_context(settings(url, data_dir))
        .await
        .unwrap();
    let baseline = peak_rss_mib();
    let request = depot_app::reports::ReportRequest {
        kind: kind.to_owned(),
        params,
        format: None,
    };
    let started = Instant::now();
    let (job, _) = ctx
        .reports()
        .request(Uuid::now_v7(), false, request, &ClientInfo::default())
        .await
        .unwrap();
    let done = loop {
        let view = ctx.reports().get(None, job.id).await.unwrap();
        if !view.status.is_active() {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(
        done.status.as_str(),
        "succeeded",
        "{kind}: {:?}",
        done.error
    );
    println!(
        "{}",
        json!({ "rows": done.rows, "bytes": done.bytes, "secs": secs,
                "peak_rss_mib": peak_rss_mib(), "rss_before_mib": baseline })
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--run") {
        let params: Value = serde_json::from_str(&args[5])?;
        run_one(&args[2], std::path::Path::new(&args[3]), &args[4], params).await;
        return Ok(());
    }
    let batches: u64 = args.get(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let movements: u64 = args.get(2).map_or(Ok(10_000_000), |a| a.parse())?;
    let db = TestDatabase::fresh().await;
    assert!(
        db.is_postgres(),
        "set DEPOT_TEST_DATABASE_URL: this benchmark is for PostgreSQL"
    );
    let data_dir = db.dir().join("data");
    seed(db.url(), &data_dir, batches, movements).await;

    let today = chrono::Utc::now().date_naive();
    let back = |days: i64| (today - chrono::Duration::days(days)).to_string();
    let location: Uuid = {
        let conn = depot_store::Db::connect_lazy(&depot_store::DbOptions::new(db.url())).unwrap();
        let row = conn
            .reader()
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT id FROM locations ORDER BY code LIMIT 1",
            ))
            .await?
            .unwrap();
        row.try_get_by_index(0)?
    };
    let count = |sql: String| {
        let url = db.url().to_owned();
        async move {
            let conn = depot_store::Db::connect_lazy(&depot_store::DbOptions::new(&url)).unwrap();
            let row = conn
                .reader()
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    sql,
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    let window = format!(
        "SELECT COUNT(*) FROM stock_movements WHERE created_at >= '{}' AND created_at < '{}'",
        back(100),
        back(70)
    );
    println!(
        "the ledger holds {} movements in the 30-day window, {} of them at one location",
        count(window.clone()).await,
        count(format!("{window} AND location_id = '{location}'")).await
    );
    let cases = [
        ("movements", json!({ "from": back(100), "to": back(71) })),
        (
            "movements",
            json!({ "from": back(100), "to": back(71), "location_id": location }),
        ),
        ("stock_valuation", json!({ "group_by": "product" })),
        (
            "stock_valuation",
            json!({ "group_by": "category", "as_of": back(60) }),
        ),
        ("stock_on_hand", json!({})),
        ("stock_on_hand", json!({ "as_of": back(60) })),
    ];
    println!(
        "{:<16} {:<62} {:>9} {:>8} {:>10} {:>9} {:>9}",
        "report", "params", "rows", "secs", "rows/s", "MiB out", "peak RSS"
    );
    for (kind, params) in cases {
        let output = std::process::Command::new(std::env::current_exe()?)
            .args([
                "--run",
                db.url(),
                &data_dir.display().to_string(),
                kind,
                &params.to_string(),
            ])
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) else {
            panic!(
                "{kind} failed: {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let figures: Value = serde_json::from_str(line)?;
        let rows = figures["rows"].as_f64().unwrap_or(0.0);
        let secs = figures["secs"].as_f64().unwrap_or(0.0);
        println!(
            "{kind:<16} {:<62} {rows:>9} {secs:>8.2} {:>10.0} {:>9.1} {:>7.0} MiB",
            params
                .to_string()
                .replace(&location.to_string(), "<one location>"),
            rows / secs.max(1e-9),
            figures["bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
            figures["peak_rss_mib"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}
