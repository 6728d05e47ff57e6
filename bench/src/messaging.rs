//! Outbox → consumer throughput and end-to-end latency.
//!
//! Emits N events into the outbox (in transactions of 50, as services would), lets the real
//! relay publish them and the real consumer runtime (processed-message claim + handler
//! transaction) consume them, and reports events/s from the first emit to the last consumption
//! and the latency from `occurred_at` to handling (p50/p99/max).
//!
//! Backend: the database queue by default; RabbitMQ when `AMQP_URL` is set. Database: a fresh
//! SQLite file, or a fresh PostgreSQL database when `DEPOT_TEST_DATABASE_URL` is set.
//!
//!     cargo run --release -p depot-bench --bin messaging -- [EVENTS] [RATE]
//!
//! Without RATE the events are emitted as one burst (throughput; latency then includes the
//! time spent in the backlog). With RATE (events/s) they are emitted one per transaction at
//! that pace (latency of a system that keeps up).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark program: fail loudly

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use depot_adapters::SystemClock;
use depot_app::AppContext;
use depot_app::config::{Secret, ServiceUrl, Settings};
use depot_app::messaging::{ConsumerPolicy, Handler};
use depot_domain::AppResult;
use depot_domain::message::Message;
use depot_store::DatabaseTransaction;
use depot_testkit::TestDatabase;

struct Recorder {
    latencies: Mutex<Vec<Duration>>,
}

#[async_trait]
impl Handler for Recorder {
    fn queue(&self) -> &'static str {
        "bench"
    }

    fn bindings(&self) -> Vec<String> {
        vec!["debug.ping".into()]
    }

    fn policy(&self) -> ConsumerPolicy {
        ConsumerPolicy {
            concurrency: 16,
            ..ConsumerPolicy::default()
        }
    }

    async fn handle(&self, _tx: &DatabaseTransaction, message: &Message) -> AppResult<()> {
        let latency = (Utc::now() - message.occurred_at)
            .to_std()
            .unwrap_or_default();
        self.latencies.lock().unwrap().push(latency);
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let events: usize = std::env::args().nth(1).map_or(Ok(2000), |a| a.parse())?;
    let rate: Option<f64> = std::env::args().nth(2).map(|a| a.parse()).transpose()?;
    let db = TestDatabase::fresh().await;
    let amqp = std::env::var("AMQP_URL").ok().filter(|u| !u.is_empty());
    let settings = Settings {
        data_dir: db.dir().join("data"),
        database_url: Some(ServiceUrl::new(db.url())),
        database_max_connections: 20,
        jwt_secret: Some(Secret::new("bench-jwt-secret-0123456789-abcdefghijklmn")),
        app_secret: Some(Secret::new("bench-app-secret-9876543210-zyxwvutsrqponm")),
        amqp_url: amqp.clone().map(ServiceUrl::new),
        namespace: format!("depot-bench-{}", uuid::Uuid::now_v7().simple()),
        ..Settings::default()
    };
    let recorder = Arc::new(Recorder {
        latencies: Mutex::new(Vec::with_capacity(events)),
    });
    // The benchmark writes the outbox itself, as a service's unit of work would.
    let store = depot::wiring::database(&settings).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let ctx: AppContext =
        depot::wiring::build_context_with(settings, Arc::new(SystemClock), vec![recorder.clone()])
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    ctx.schema()
        .migrate_up()
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let workers = depot_worker::Workers::start(&ctx);

    let started = Instant::now();
    let mut emitted = 0;
    let pace = rate.map(|r| Duration::from_secs_f64(1.0 / r));
    while emitted < events {
        let batch = if pace.is_some() {
            1
        } else {
            (events - emitted).min(50)
        };
        if let Some(pace) = pace {
            let due = started + pace.mul_f64(emitted as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        emit_batch(&store, batch)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        emitted += batch;
    }
    let emit_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(300);
    while recorder.latencies.lock().unwrap().len() < events {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out waiting for consumption"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = started.elapsed().as_secs_f64();
    workers.stop(Duration::from_secs(10)).await;

    let mut latencies = recorder.latencies.lock().unwrap().clone();
    latencies.sort();
    println!(
        "messaging backend={} database={} events={events} mode={}",
        if amqp.is_some() {
            "rabbitmq"
        } else {
            "database-queue"
        },
        db.backend(),
        rate.map_or_else(|| "burst".to_owned(), |r| format!("steady {r}/s"))
    );
    println!(
        "  emit (outbox insert):   {:.0} events/s",
        events as f64 / emit_secs
    );
    println!(
        "  outbox→consumer:        {:.0} events/s (first emit to last consumed, {total:.2} s)",
        events as f64 / total
    );
    println!(
        "  end-to-end latency:     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    ctx.close().await;
    store.close().await;
    Ok(())
}

/// Appends `batch` pings to the outbox in one transaction.
async fn emit_batch(store: &depot_store::Db, batch: usize) -> AppResult<()> {
    let tx = store.begin().await?;
    for _ in 0..batch {
        depot_store::repo::outbox::append(&*tx, &ping(), None).await?;
    }
    tx.commit().await
}

fn ping() -> Message {
    Message::new(
        "debug.ping",
        ("bench", "bench"),
        serde_json::json!({}),
        Utc::now(),
    )
}
