//! `depot verify`: recomputes every batch and level from the stock ledger and lists each
//! disagreement; exits non-zero when there is one.

use std::sync::Arc;

use depot_adapters::SystemClock;
use depot_app::config::Settings;
use depot_app::stock::StockService;

/// Runs on the database alone (like `migrate`), in one consistent snapshot.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    settings.database_max_connections = 2;
    let db = depot::wiring::database(&settings).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let stock = StockService::standalone(db.clone(), Arc::new(SystemClock));
    let report = stock.verify().await.map_err(|e| anyhow::anyhow!("{e:?}"));
    db.close().await;
    let report = report?;
    for mismatch in &report.mismatches {
        println!("MISMATCH {mismatch}");
    }
    println!(
        "checked {} batches, {} levels, {} movements: {} mismatches",
        report.batches,
        report.levels,
        report.movements,
        report.mismatches.len()
    );
    if report.mismatches.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "the stock ledger and balances disagree in {} places",
            report.mismatches.len()
        )
    }
}
