//! `depot import KIND FILE [--apply] [--replace]` and `depot export KIND [FILE]`: the bulk
//! CSV services on the database alone, as the system actor `cli`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use depot_adapters::SystemClock;
use depot_app::client::ClientInfo;
use depot_app::config::Settings;
use depot_app::imports::{ExportService, ImportRequest, ImportService, Submitted};
use depot_domain::Actor;
use depot_domain::import::{ExportKind, ImportKind, ImportMode, ImportStatus};
use futures::StreamExt;

/// Reads a kind named on the command line.
pub fn import_kind(text: &str) -> Result<ImportKind, String> {
    ImportKind::parse(text)
        .ok_or_else(|| format!("expected one of {}", ImportKind::VALUES.join(", ")))
}

/// Reads an export kind named on the command line.
pub fn export_kind(text: &str) -> Result<ExportKind, String> {
    ExportKind::parse(text)
        .ok_or_else(|| format!("expected one of {}", ExportKind::VALUES.join(", ")))
}

/// A service's error as the command reports it: its code and safe message on stderr; the cause
/// chain (a database error, say) in the log.
fn failed(e: depot_domain::AppError) -> anyhow::Error {
    tracing::error!(
        code = e.code(),
        cause = e.cause_chain(),
        "the command failed"
    );
    anyhow::anyhow!("{}: {}", e.code(), e.message())
}

fn database(settings: &Settings) -> anyhow::Result<depot_store::Db> {
    let mut settings = settings.clone();
    settings.database_max_connections = 2;
    depot::wiring::database(&settings).map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// Validates (or applies) a file; prints every error as `row N, column C: message`.
pub async fn import(
    settings: &Settings,
    kind: ImportKind,
    file: &Path,
    apply: bool,
    replace: bool,
) -> anyhow::Result<()> {
    let content =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let db = database(settings)?;
    let service = ImportService::standalone(db.clone(), Arc::new(SystemClock), settings);
    let request = ImportRequest {
        kind,
        mode: if apply {
            ImportMode::Apply
        } else {
            ImportMode::Validate
        },
        replace,
        file_name: file.file_name().map(|n| n.to_string_lossy().into_owned()),
        content,
    };
    let result = service
        .submit(Actor::System("cli"), request, &ClientInfo::local(), true)
        .await;
    db.close().await;
    let view = match result.map_err(failed)? {
        Submitted::Finished(view) | Submitted::Queued(view) => view,
    };
    let mut out = std::io::stdout().lock();
    for error in &view.errors {
        writeln!(out, "{error}")?;
    }
    let summary = view.summary;
    writeln!(
        out,
        "{} rows, {} errors: {} ({} new, {} changed, {} unchanged, {} movements); import {}",
        view.rows,
        view.error_count,
        match (view.status, apply) {
            (ImportStatus::Succeeded, true) => "applied",
            (ImportStatus::Succeeded, false) => "valid, nothing written",
            _ => "nothing written",
        },
        summary.created,
        summary.updated,
        summary.unchanged,
        summary.movements,
        view.id,
    )?;
    if view.error_count > 0 {
        anyhow::bail!("{} errors in {}", view.error_count, file.display());
    }
    if view.status != ImportStatus::Succeeded {
        anyhow::bail!(
            "the import failed: {}",
            view.failure.map(|f| f.message).unwrap_or_default()
        );
    }
    Ok(())
}

/// Writes the CSV of `kind` to `file`, or to standard output.
pub async fn export(
    settings: &Settings,
    kind: ExportKind,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    let db = database(settings)?;
    let service = ExportService::standalone(db.clone(), Arc::new(SystemClock));
    let mut out: Box<dyn Write> = match file {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut stream = service.stream(kind);
    let mut result = Ok(());
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => out.write_all(&bytes)?,
            Err(e) => {
                result = Err(failed(e));
                break;
            }
        }
    }
    out.flush()?;
    db.close().await;
    result
}
