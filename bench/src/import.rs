//! Bulk import over HTTP: a products file and an opening-stock file, validated and applied.
//!
//! Boots the real application (release build) on a fresh database, signs an importer in and
//! POSTs `/api/v1/imports` with CSV bodies (inline: `import_sync_max_bytes` is raised so the
//! request itself is what is timed):
//!
//! 1. locations (2 rows), then `PRODUCTS` products (half in kg with expiry tracking),
//! 2. opening stock: every product at both locations (`2 × PRODUCTS` rows, lots and expiries
//!    for the tracked half, a unit cost on every row),
//!
//! each `validate`, then `apply`, then `apply` again (must change nothing); then the ledger
//! check (`depot verify`'s), an export of the batches, and the process's peak RSS (server and
//! client share the process, so it is an upper bound for the server).
//!
//! Database: a fresh SQLite file, or PostgreSQL when `DEPOT_TEST_DATABASE_URL` is set.
//!
//!     cargo run --release -p depot-bench --bin import -- [PRODUCTS]

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program: fail loudly

use std::fmt::Write as _;
use std::time::Instant;

use depot::{Application, Role};
use depot_app::config::{Secret, ServiceUrl, Settings};
use depot_bench::{peak_rss_mib, rss_mib, sign_in};
use depot_testkit::TestDatabase;
use uuid::Uuid;

fn products_csv(n: usize) -> String {
    let mut csv = String::from("sku,name,unit,reorder_point,tracks_expiry\n");
    for i in 0..n {
        let (unit, tracks, point) = if i % 2 == 0 {
            ("pcs", "false", "5")
        } else {
            ("kg", "true", "2.5")
        };
        writeln!(
            csv,
            "SKU-{i:06},Product {i} of the bench,{unit},{point},{tracks}"
        )
        .unwrap();
    }
    csv
}

fn stock_csv(n: usize) -> String {
    let mut csv = String::from("sku,location_code,quantity,lot,expiry,unit_cost,currency\n");
    let today = chrono::Utc::now().date_naive();
    for i in 0..n {
        for (w, location) in ["WH1", "WH2"].iter().enumerate() {
            if i % 2 == 0 {
                writeln!(
                    csv,
                    "SKU-{i:06},{location},{},,,{},USD",
                    10 + i % 90,
                    100 + i % 900
                )
                .unwrap();
            } else {
                let expiry = today + chrono::Days::new(90 + ((i * 7 + w) % 600) as u64);
                writeln!(
                    csv,
                    "SKU-{i:06},{location},{}.{},L{}-{w},{expiry},{},USD",
                    1 + i % 50,
                    i % 1000,
                    i % 97,
                    250 + i % 500
                )
                .unwrap();
            }
        }
    }
    csv
}

struct Importer {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Importer {
    /// POSTs a file; returns the answer and the seconds it took.
    async fn post(&self, kind: &str, mode: &str, csv: &str) -> (serde_json::Value, f64) {
        let started = Instant::now();
        let response = self
            .client
            .post(format!(
                "{}/api/v1/imports?kind={kind}&mode={mode}",
                self.base
            ))
            .bearer_auth(&self.token)
            .header("content-type", "text/csv")
            .body(csv.to_owned())
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("JSON");
        let took = started.elapsed().as_secs_f64();
        assert_eq!(status, 200, "{kind} {mode}: {body}");
        assert_eq!(body["status"], "succeeded", "{kind} {mode}: {body}");
        (body, took)
    }

    async fn run(&self, kind: &str, csv: &str, rows: usize) {
        for (mode, label) in [
            ("validate", "validate"),
            ("apply", "apply"),
            ("apply", "apply again"),
        ] {
            let (body, took) = self.post(kind, mode, csv).await;
            println!(
                "{kind:<14} {label:<12} {rows:>7} rows in {took:>6.2} s = {:>8.0} rows/s   {}   peak RSS {:.0} MiB",
                rows as f64 / took,
                body["summary"],
                peak_rss_mib()
            );
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let products: usize = std::env::args().nth(1).map_or(Ok(100_000), |a| a.parse())?;
    let db = TestDatabase::fresh().await;
    let settings = Settings {
        data_dir: db.dir().join("data"),
        database_url: Some(ServiceUrl::new(db.url())),
        http_addr: "127.0.0.1:0".parse()?,
        metrics_addr: None,
        log_filter: std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        jwt_secret: Some(Secret::new("bench-jwt-secret-0123456789-abcdefghijklmn")),
        app_secret: Some(Secret::new("bench-app-secret-9876543210-zyxwvutsrqponm")),
        namespace: format!("depot-bench-{}", Uuid::now_v7().simple()),
        import_max_bytes: 256 * 1024 * 1024,
        import_sync_max_bytes: 256 * 1024 * 1024,
        request_timeout_secs: 600,
        ..Settings::default()
    };
    let backend = if db.is_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    if std::env::var("BENCH_LOG").is_ok() {
        let _telemetry = depot::telemetry::init(&settings, false, "depot-bench");
    }
    let app = Application::start(settings, Role::All).await?;
    let addr = app.api_addr().expect("api listener");
    let ctx = app.context().clone();
    let shutdown = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let token = sign_in(
        &ctx,
        &client,
        &base,
        "importer@example.com",
        &[
            "products.manage",
            "warehouses.manage",
            "stock.adjust",
            "stock.read",
        ],
    )
    .await?;
    let importer = Importer {
        client,
        base,
        token,
    };
    println!(
        "{backend}: {products} products, {} opening-stock rows; RSS after start {:.0} MiB",
        2 * products,
        rss_mib()
    );
    importer
        .post("locations", "apply", "code,name\nWH1,Main\nWH2,Second\n")
        .await;
    let catalog = products_csv(products);
    println!("products file {:.1} MiB", catalog.len() as f64 / 1048576.0);
    importer.run("products", &catalog, products).await;
    drop(catalog);
    let stock = stock_csv(products);
    println!(
        "opening-stock file {:.1} MiB",
        stock.len() as f64 / 1048576.0
    );
    // `apply again` of opening stock is refused (the levels hold stock): replace it instead.
    for (mode, label) in [("validate", "validate"), ("apply", "apply")] {
        let (body, took) = importer.post("opening_stock", mode, &stock).await;
        println!(
            "{:<14} {label:<12} {:>7} rows in {took:>6.2} s = {:>8.0} rows/s   {}   peak RSS {:.0} MiB",
            "opening_stock",
            2 * products,
            (2 * products) as f64 / took,
            body["summary"],
            peak_rss_mib()
        );
    }
    let started = Instant::now();
    let response = importer
        .client
        .post(format!(
            "{}/api/v1/imports?kind=opening_stock&mode=apply&replace=true",
            importer.base
        ))
        .bearer_auth(&importer.token)
        .header("content-type", "text/csv")
        .body(stock.clone())
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "{:<14} {:<12} {:>7} rows in {took:>6.2} s = {:>8.0} rows/s   {}   peak RSS {:.0} MiB",
        "opening_stock",
        "replace again",
        2 * products,
        (2 * products) as f64 / took,
        body["summary"],
        peak_rss_mib()
    );
    drop(stock);

    let started = Instant::now();
    let report = ctx
        .stock()
        .verify()
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    println!(
        "verify: {} batches, {} levels, {} movements, {} mismatches in {:.1} s",
        report.batches,
        report.levels,
        report.movements,
        report.mismatches.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);

    let started = Instant::now();
    let mut response = importer
        .client
        .get(format!("{}/api/v1/exports/batches.csv", importer.base))
        .bearer_auth(&importer.token)
        .send()
        .await?;
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "export batches: {} rows, {:.1} MiB in {took:.2} s = {:.0} rows/s   peak RSS {:.0} MiB",
        lines - 1,
        bytes as f64 / 1048576.0,
        (lines - 1) as f64 / took,
        peak_rss_mib()
    );
    shutdown.shutdown();
    let _ = server.await;
    Ok(())
}
