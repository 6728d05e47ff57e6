//! `depot backup --to DIR` and `depot restore --from DIR` (see `depot_app::backup`).

use std::path::Path;
use std::sync::Arc;

use depot_adapters::SystemClock;
use depot_app::backup::{BackupService, Manifest};
use depot_app::config::Settings;
use depot_domain::AppError;

fn failed(err: AppError) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", err.code(), err.message())
}

/// On the database alone (like `migrate`): a snapshot while the server runs.
pub async fn backup(settings: &Settings, to: &Path) -> anyhow::Result<()> {
    let (service, db) = service(settings)?;
    let manifest = service.backup(to).await.map_err(failed);
    db.close().await;
    print(&manifest?, to);
    Ok(())
}

/// Into the configured database, which must be empty; then `depot migrate up`.
pub async fn restore(settings: &Settings, from: &Path) -> anyhow::Result<()> {
    let (service, db) = service(settings)?;
    let manifest = service.restore(from).await.map_err(failed);
    db.close().await;
    let manifest = manifest?;
    print(&manifest, from);
    println!("restored: run `depot migrate up` to bring it to this build's schema");
    Ok(())
}

fn service(settings: &Settings) -> anyhow::Result<(BackupService, depot_store::Db)> {
    let mut settings = settings.clone();
    settings.database_max_connections = 2;
    let db = depot::wiring::database(&settings).map_err(failed)?;
    let service =
        BackupService::standalone(db.clone(), settings.database_url(), Arc::new(SystemClock));
    Ok((service, db))
}

fn print(manifest: &Manifest, dir: &Path) {
    println!(
        "{} backup of {} taken {}: {} ({} bytes, sha256 {}), {} migrations",
        manifest.backend,
        dir.display(),
        manifest.created_at.to_rfc3339(),
        manifest.file,
        manifest.bytes,
        manifest.sha256,
        manifest.migrations.len()
    );
}
