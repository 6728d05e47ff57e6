//! `depot migrate up|down|status`.

use clap::Subcommand;
use std::sync::Arc;

use depot_adapters::SystemClock;
use depot_app::config::Settings;
use depot_app::schema::SchemaService;

#[derive(Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Roll back the latest migrations (dev profile only).
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List applied and pending migrations.
    Status,
}

/// Runs on the database alone, without building the application context (a prod
/// deployment migrates before its secrets need to be complete); `up` also seeds.
pub async fn run(settings: &Settings, action: MigrateAction) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    settings.database_max_connections = 2;
    let db = depot::wiring::database(&settings).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let schema = SchemaService::standalone(db, Arc::new(SystemClock));
    let state = match action {
        MigrateAction::Up => schema.migrate_up().await,
        MigrateAction::Down { .. } if settings.is_prod() => {
            anyhow::bail!("`migrate down` is refused in the prod profile")
        }
        MigrateAction::Down { steps } => schema.migrate_down(steps).await,
        MigrateAction::Status => schema.state().await,
    }
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for name in &state.applied {
        println!("applied  {name}");
    }
    for name in &state.pending {
        println!("pending  {name}");
    }
    println!(
        "{} applied, {} pending",
        state.applied.len(),
        state.pending.len()
    );
    schema.close().await;
    Ok(())
}
