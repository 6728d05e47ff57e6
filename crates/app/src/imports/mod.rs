//! Bulk import and export: products, locations, opening stock and counts from CSV, every error
//! of a file found in one pass, applied all or nothing; and the same kinds streamed out as CSV
//! with the columns the import takes.
//!
//! An import is a job row (`imports`). A small file runs while the request waits; a larger one
//! is kept with its job (`import_files`) and answered 202, then run by whichever process claims
//! it first (the API process that took it, right after commit, or the `import_runner` job of
//! any worker — a crashed run's lease runs out and another claims it). Applying is one unit of
//! work that also finishes the job row, so an applied import is never run twice.

mod catalog;
mod csv;
mod export;
mod progress;
mod stock;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use depot_domain::import::{ImportKind, ImportMode, ImportStatus, ImportSummary, RowError};
use depot_domain::message::Message;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::{Actor, AppError, AppResult, ErrorCode};
use depot_store::entity::import_job;
use depot_store::repo::imports;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use export::{ExportService, ExportStream};

use self::csv::CsvFile;
use self::progress::Progress;
use self::stock::Posting;
use crate::audit::AuditEntry;
use crate::auth::secrets::digest;
use crate::background::Background;
use crate::catalog::map_page;
use crate::client::ClientInfo;
use crate::uow::{UnitOfWork, Writer, retry_transient};

/// Default cadence of the runner that picks up queued imports (overridable in
/// `job_schedules`); the process that queued one starts it at once.
pub const RUNNER: &str = "every 10s";
/// How long a claimed import is held before another worker may take it over.
const LEASE_SECS: i64 = 600;
/// Runs after which a queued import is given up.
const MAX_ATTEMPTS: i64 = 3;

/// Applied files at least this long refresh the planner's statistics of what they filled.
const ANALYZE_AFTER_ROWS: u64 = 1_000;

/// A file to import.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub kind: ImportKind,
    pub mode: ImportMode,
    /// Opening stock only: count levels that already hold stock instead of refusing them.
    pub replace: bool,
    pub file_name: Option<String>,
    pub content: Vec<u8>,
}

/// Why an import failed when no row is at fault.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportFailure {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportView {
    pub id: Uuid,
    pub kind: ImportKind,
    pub mode: ImportMode,
    pub replace: bool,
    /// `queued`, `running`, `succeeded` (valid; applied when `apply`) or `failed` (nothing
    /// written).
    pub status: ImportStatus,
    pub file_name: Option<String>,
    /// SHA-256 of the file, hex.
    pub checksum: String,
    pub bytes: i64,
    /// Data rows in the file (the header not counted).
    pub rows: i64,
    /// Rows through the current pass.
    pub rows_done: i64,
    /// 0–100.
    pub progress: u8,
    /// How many errors the file has (`errors` keeps at most `import_max_errors`).
    pub error_count: i64,
    /// Every error found, in row order: the row (the header is row 1), the column, a stable
    /// code and a message.
    pub errors: Vec<RowError>,
    /// What it did (`apply`) or would do (`validate`).
    pub summary: ImportSummary,
    pub failure: Option<ImportFailure>,
    pub owner_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl ImportView {
    /// An `apply` that found errors in the file, as the error it answers with (422
    /// `imports.invalid_rows`, the job in `details`).
    pub fn rejection(&self) -> Option<AppError> {
        (self.mode == ImportMode::Apply && self.status == ImportStatus::Failed).then(|| {
            AppError::new(
                ErrorCode::ImportsInvalidRows,
                format!(
                    "{} errors in the file; nothing was written",
                    self.error_count
                ),
            )
            .with_details(serde_json::to_value(self).unwrap_or_default())
        })
    }
}

/// What became of a submitted file.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// It ran while the caller waited.
    Finished(ImportView),
    /// It waits for a worker (too large to run inline).
    Queued(ImportView),
}

/// One import as it runs.
#[derive(Debug, Clone)]
struct Spec {
    id: Uuid,
    actor: Actor,
    kind: ImportKind,
    mode: ImportMode,
    replace: bool,
    file_name: Option<String>,
    checksum: String,
    bytes: i64,
    created_at: DateTime<Utc>,
    /// Its job row exists already (a queued import, claimed as this attempt); otherwise it is
    /// written when it ends.
    claimed: Option<i64>,
}

impl Spec {
    fn posting(&self) -> Option<Posting> {
        match self.kind {
            ImportKind::OpeningStock if self.replace => Some(Posting::Replace),
            ImportKind::OpeningStock => Some(Posting::Opening),
            ImportKind::StockCounts => Some(Posting::Counts),
            ImportKind::Products | ImportKind::Locations => None,
        }
    }

    /// What the job row says once it ended.
    fn row(
        &self,
        status: ImportStatus,
        outcome: &Outcome,
        failure: Option<&ImportFailure>,
        max_errors: usize,
        now: DateTime<Utc>,
    ) -> import_job::Model {
        let rows = i64::try_from(outcome.rows).unwrap_or(i64::MAX);
        let kept: Vec<&RowError> = outcome.errors.iter().take(max_errors).collect();
        import_job::Model {
            id: self.id,
            owner_id: self.actor.user_id(),
            actor_name: self.actor.system_name().map(str::to_owned),
            kind: self.kind.as_str().to_owned(),
            mode: self.mode.as_str().to_owned(),
            replace_existing: self.replace,
            status: status.as_str().to_owned(),
            file_name: self.file_name.clone(),
            checksum: self.checksum.clone(),
            bytes: self.bytes,
            rows,
            rows_done: if status == ImportStatus::Succeeded {
                rows
            } else {
                0
            },
            error_count: i64::try_from(outcome.errors.len() as u64 + outcome.unkept)
                .unwrap_or(i64::MAX),
            errors: serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into()),
            summary: serde_json::to_string(&outcome.summary).unwrap_or_else(|_| "{}".into()),
            failure: failure.and_then(|f| serde_json::to_string(f).ok()),
            request_id: None,
            lease_until: None,
            attempts: 1,
            created_at: self.created_at,
            started_at: Some(self.created_at),
            finished_at: Some(now),
            updated_at: now,
        }
    }
}

/// What running a file found: its rows, every error, what it did or would do.
#[derive(Debug, Default)]
struct Outcome {
    rows: u64,
    errors: Vec<RowError>,
    /// Errors found beyond those kept (`import_max_errors`).
    unkept: u64,
    summary: ImportSummary,
    /// The job row was finished inside the unit that applied it.
    recorded: bool,
}

fn not_found() -> AppError {
    AppError::new(ErrorCode::ImportsNotFound, "no such import")
}

fn view(row: import_job::Model, live: Option<&Progress>) -> ImportView {
    let status = ImportStatus::parse(&row.status).unwrap_or(ImportStatus::Failed);
    let (rows_done, progress) = match (status, live) {
        (ImportStatus::Running, Some(p)) => p.read(),
        (ImportStatus::Succeeded | ImportStatus::Failed, _) => (row.rows_done, 100),
        _ => (row.rows_done, 0),
    };
    ImportView {
        id: row.id,
        kind: ImportKind::parse(&row.kind).unwrap_or(ImportKind::Products),
        mode: ImportMode::parse(&row.mode).unwrap_or(ImportMode::Validate),
        replace: row.replace_existing,
        status,
        file_name: row.file_name,
        checksum: row.checksum,
        bytes: row.bytes,
        rows: row.rows,
        rows_done,
        progress,
        error_count: row.error_count,
        errors: serde_json::from_str(&row.errors).unwrap_or_default(),
        summary: serde_json::from_str(&row.summary).unwrap_or_default(),
        failure: row.failure.and_then(|f| serde_json::from_str(&f).ok()),
        owner_id: row.owner_id,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
    }
}

/// The `import.applied` event: one per applied file, however many rows it had.
fn applied_event(spec: &Spec, outcome: &Outcome, at: DateTime<Utc>) -> Message {
    Message::new(
        "import.applied",
        ("import", spec.id),
        serde_json::json!({
            "import_id": spec.id,
            "kind": spec.kind,
            "replace": spec.replace,
            "checksum": spec.checksum,
            "rows": outcome.rows,
            "created": outcome.summary.created,
            "updated": outcome.summary.updated,
            "unchanged": outcome.summary.unchanged,
            "movements": outcome.summary.movements,
        }),
        at,
    )
}

#[derive(Clone)]
pub struct ImportService {
    writer: Writer,
    warning_days: u32,
    sync_max_bytes: usize,
    max_errors: usize,
    running: Arc<Mutex<HashMap<Uuid, Arc<Progress>>>>,
}

impl ImportService {
    pub fn new(
        writer: Writer,
        warning_days: u32,
        sync_max_bytes: usize,
        max_errors: usize,
    ) -> Self {
        Self {
            writer,
            warning_days,
            sync_max_bytes,
            max_errors,
            running: Arc::default(),
        }
    }

    /// On the database alone, for the CLI (no relay runs: events wait in the outbox).
    pub fn standalone(
        db: depot_store::Db,
        clock: Arc<dyn depot_domain::Clock>,
        settings: &crate::config::Settings,
    ) -> Self {
        Self::new(
            Writer::new(db, clock, crate::uow::RelayWaker::default()),
            settings.stock_expiry_warning_days,
            settings.import_sync_max_bytes,
            settings.import_max_errors,
        )
    }

    /// Registers the runner of queued imports.
    pub fn register(&self, background: &mut Background) {
        let this = self.clone();
        background.periodic("import_runner", RUNNER, move || {
            let this = this.clone();
            async move { this.run_queued().await }
        });
    }

    /// Imports a file as `actor`: inline when it is small (or `inline`, for the CLI), else
    /// queued for a worker.
    pub async fn submit(
        &self,
        actor: Actor,
        request: ImportRequest,
        client: &ClientInfo,
        inline: bool,
    ) -> AppResult<Submitted> {
        let now = self.writer.now();
        let spec = Spec {
            id: depot_domain::id::new_id(),
            actor,
            kind: request.kind,
            mode: request.mode,
            replace: request.replace && request.kind == ImportKind::OpeningStock,
            file_name: request.file_name,
            checksum: digest(&request.content),
            bytes: i64::try_from(request.content.len()).unwrap_or(i64::MAX),
            created_at: now,
            claimed: None,
        };
        if !inline && request.content.len() > self.sync_max_bytes {
            return self.enqueue(spec, request.content, client).await;
        }
        let progress = Progress::default();
        let view = self.run(&spec, &request.content, client, &progress).await?;
        Ok(Submitted::Finished(view))
    }

    async fn enqueue(
        &self,
        spec: Spec,
        content: Vec<u8>,
        client: &ClientInfo,
    ) -> AppResult<Submitted> {
        let mut uow = self.writer.begin(spec.actor, client).await?;
        let mut row = spec.row(
            ImportStatus::Queued,
            &Outcome::default(),
            None,
            self.max_errors,
            uow.now(),
        );
        row.attempts = 0;
        row.started_at = None;
        row.finished_at = None;
        row.request_id = client.request_id.clone();
        let row = imports::insert(uow.tx(), row).await?;
        imports::store_file(uow.tx(), spec.id, content).await?;
        let this = self.clone();
        let id = spec.id;
        uow.after_commit(move || async move {
            tokio::spawn(async move { this.run_claimed(Some(id)).await });
        });
        uow.commit().await?;
        Ok(Submitted::Queued(view(row, None)))
    }

    pub async fn get(&self, viewer: Option<Uuid>, id: Uuid) -> AppResult<ImportView> {
        let row = imports::get(self.writer.db().reader(), id)
            .await?
            .filter(|row| viewer.is_none_or(|v| row.owner_id == Some(v)))
            .ok_or_else(not_found)?;
        Ok(self.live_view(row))
    }

    /// Imports newest first; only `viewer`'s when given.
    pub async fn list(
        &self,
        viewer: Option<Uuid>,
        page: &PageRequest,
    ) -> AppResult<Page<ImportView>> {
        let page = imports::list(self.writer.db().reader(), viewer, page).await?;
        Ok(map_page(page, |row| self.live_view(row)))
    }

    fn live_view(&self, row: import_job::Model) -> ImportView {
        let live = self
            .running
            .lock()
            .ok()
            .and_then(|running| running.get(&row.id).cloned());
        view(row, live.as_deref())
    }

    /// Runs a file and records how it ended; the view of the finished job.
    async fn run(
        &self,
        spec: &Spec,
        content: &[u8],
        client: &ClientInfo,
        progress: &Progress,
    ) -> AppResult<ImportView> {
        let outcome = match self.execute(spec, content, client, progress).await {
            Ok(outcome) => outcome,
            Err(err) => {
                let failure = ImportFailure {
                    code: err.code().to_owned(),
                    message: err.message().to_owned(),
                };
                // A fault of the moment (the database away) leaves a queued job to be claimed
                // again; anything else ends it.
                let transient = err.category() == depot_domain::ErrorCategory::Unavailable;
                if !(spec.claimed.is_some() && transient) {
                    self.record(spec, &Outcome::default(), Some(&failure), client)
                        .await?;
                }
                return Err(err);
            }
        };
        let row = if outcome.recorded {
            imports::get(self.writer.db().reader(), spec.id)
                .await?
                .ok_or_else(|| AppError::internal("an applied import's job row vanished"))?
        } else {
            self.record(spec, &outcome, None, client).await?
        };
        Ok(view(row, None))
    }

    /// Finishes the job row of an import that wrote nothing.
    async fn record(
        &self,
        spec: &Spec,
        outcome: &Outcome,
        failure: Option<&ImportFailure>,
        client: &ClientInfo,
    ) -> AppResult<import_job::Model> {
        let status = if outcome.errors.is_empty() && outcome.unkept == 0 && failure.is_none() {
            ImportStatus::Succeeded
        } else {
            ImportStatus::Failed
        };
        let uow = self.writer.begin(spec.actor, client).await?;
        let row = spec.row(status, outcome, failure, self.max_errors, uow.now());
        let row = self.put_row(&uow, spec, row).await?;
        uow.commit().await?;
        Ok(row)
    }

    async fn put_row(
        &self,
        uow: &UnitOfWork,
        spec: &Spec,
        mut row: import_job::Model,
    ) -> AppResult<import_job::Model> {
        let Some(attempt) = spec.claimed else {
            return imports::insert(uow.tx(), row).await;
        };
        // Only the run that holds the claim finishes the job: one whose lease ran out and was
        // taken over writes nothing (its unit rolls back).
        let before = imports::lock(uow.tx(), spec.id)
            .await?
            .ok_or_else(|| AppError::internal("a queued import's job row vanished"))?;
        if before.status != ImportStatus::Running.as_str() || before.attempts != attempt {
            return Err(AppError::new(
                ErrorCode::ImportsTakenOver,
                "another run took the import over",
            ));
        }
        row.request_id = before.request_id;
        row.attempts = before.attempts;
        row.started_at = before.started_at;
        imports::delete_file(uow.tx(), spec.id).await?;
        imports::save(uow.tx(), row).await
    }

    /// Checks (and, applying, writes) a file.
    async fn execute(
        &self,
        spec: &Spec,
        content: &[u8],
        client: &ClientInfo,
        progress: &Progress,
    ) -> AppResult<Outcome> {
        let file = match CsvFile::open(spec.kind, content, self.max_errors) {
            Ok(file) => file,
            Err(errors) => {
                return Ok(Outcome {
                    errors,
                    ..Outcome::default()
                });
            }
        };
        let mut rows = 0u64;
        let (_, unreadable) = file.rows(|_, _| rows += 1);
        let rows = rows + unreadable;
        let passes = if spec.mode == ImportMode::Apply { 2 } else { 1 };
        progress.start(rows, passes);
        let mut outcome = match spec.mode {
            ImportMode::Validate => {
                let reader = self.writer.db().reader();
                let now = self.writer.now();
                let (summary, errors) = match spec.kind {
                    ImportKind::Products => {
                        catalog::check_products(reader, &file, now, false, progress).await?
                    }
                    ImportKind::Locations => {
                        catalog::check_locations(reader, &file, now, false, progress).await?
                    }
                    ImportKind::OpeningStock | ImportKind::StockCounts => {
                        let posting = spec.posting().unwrap_or(Posting::Counts);
                        let (plan, mut errors) =
                            stock::check_stock(reader, &file, posting, None, progress).await?;
                        errors.extend(stock::check_holds(reader, &plan, posting).await?);
                        (plan.estimate(), errors)
                    }
                };
                Outcome {
                    rows,
                    errors,
                    unkept: file.dropped(),
                    summary,
                    recorded: false,
                }
            }
            ImportMode::Apply => {
                retry_transient(|| self.apply_once(spec, &file, rows, client, progress)).await?
            }
        };
        outcome.errors.sort_by_key(|e| e.row);
        Ok(outcome)
    }

    /// Applies a file in one unit of work, or finds why not (and writes nothing). A file of
    /// [`ANALYZE_AFTER_ROWS`] rows or more leaves the planner's statistics of the tables it
    /// filled refreshed behind it (in the background, after the commit): an export or a stock
    /// query right after a large import is planned for the tables as they now are.
    async fn apply_once(
        &self,
        spec: &Spec,
        file: &CsvFile<'_>,
        rows: u64,
        client: &ClientInfo,
        progress: &Progress,
    ) -> AppResult<Outcome> {
        progress.start(rows, 2);
        let mut uow = self.writer.begin(spec.actor, client).await?;
        let now = uow.now();
        let invalid = |errors: Vec<RowError>| Outcome {
            rows,
            errors,
            unkept: file.dropped(),
            ..Outcome::default()
        };
        let summary = match spec.kind {
            ImportKind::Products | ImportKind::Locations => {
                // Written as checked, while no row fails: on errors the unit rolls back.
                let (summary, errors) = if spec.kind == ImportKind::Products {
                    catalog::check_products(uow.tx(), file, now, true, progress).await?
                } else {
                    catalog::check_locations(uow.tx(), file, now, true, progress).await?
                };
                if !errors.is_empty() || file.dropped() > 0 {
                    return Ok(invalid(errors));
                }
                progress.advance(rows);
                summary
            }
            ImportKind::OpeningStock | ImportKind::StockCounts => {
                let posting = spec.posting().unwrap_or(Posting::Counts);
                let started = std::time::Instant::now();
                let (plan, errors) =
                    stock::check_stock(uow.tx(), file, posting, Some(now), progress).await?;
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "import: checked, levels locked"
                );
                if !errors.is_empty() {
                    return Ok(invalid(errors));
                }
                let note = format!("import {}", spec.id);
                match stock::write_stock(&mut uow, plan, posting, note, self.warning_days, progress)
                    .await?
                {
                    Ok(summary) => summary,
                    Err(errors) => return Ok(invalid(errors)),
                }
            }
        };
        let outcome = Outcome {
            rows,
            errors: Vec::new(),
            unkept: 0,
            summary,
            recorded: true,
        };
        uow.audit(
            AuditEntry::new("import.applied")
                .target("import", spec.id)
                .details(serde_json::json!({
                    "kind": spec.kind,
                    "replace": spec.replace,
                    "file_name": spec.file_name,
                    "checksum": spec.checksum,
                    "bytes": spec.bytes,
                    "rows": rows,
                    "summary": summary,
                })),
        )
        .await?;
        if summary.created + summary.updated + summary.movements > 0 {
            uow.emit(&applied_event(spec, &outcome, now));
        }
        let row = spec.row(
            ImportStatus::Succeeded,
            &outcome,
            None,
            self.max_errors,
            now,
        );
        self.put_row(&uow, spec, row).await?;
        if rows >= ANALYZE_AFTER_ROWS {
            let db = self.writer.db().clone();
            let tables = depot_store::repo::imports::filled_tables(spec.kind);
            uow.after_commit(move || async move {
                tokio::spawn(async move {
                    if let Err(err) = db.analyze(tables).await {
                        tracing::warn!(code = err.code(), cause = %err.cause_chain(), "refreshing the planner's statistics after an import failed");
                    }
                });
            });
        }
        uow.commit().await?;
        Ok(outcome)
    }

    /// Runs every import waiting for a worker, one after another; how many.
    async fn run_queued(&self) -> AppResult<u64> {
        let mut ran = 0;
        while self.run_claimed(None).await? {
            ran += 1;
        }
        Ok(ran)
    }

    /// Keeps a running import's claim (and its persisted progress) fresh until aborted.
    async fn renew_lease(self, id: Uuid, progress: Arc<Progress>) {
        let every = std::time::Duration::from_secs(u64::try_from(LEASE_SECS / 4).unwrap_or(60));
        loop {
            tokio::time::sleep(every).await;
            let renewed = async {
                let uow = self
                    .writer
                    .begin(Actor::System("imports"), &ClientInfo::default())
                    .await?;
                let lease_until = uow.now() + chrono::Duration::seconds(LEASE_SECS);
                imports::progress(uow.tx(), id, progress.read().0, uow.now(), lease_until).await?;
                uow.commit().await
            };
            if let Err(err) = renewed.await {
                tracing::warn!(import = %id, code = err.code(), "an import's lease was not renewed");
            }
        }
    }

    /// Claims one queued import (this one, when `only`) and runs it; whether one was run.
    async fn run_claimed(&self, only: Option<Uuid>) -> AppResult<bool> {
        // Looked for with a read: the runner asks every few seconds, and on SQLite a write
        // transaction would take the single writer each time.
        let reader = self.writer.db().reader();
        let Some(id) = imports::next_claimable(reader, only, self.writer.now()).await? else {
            return Ok(false);
        };
        let uow = self
            .writer
            .begin(Actor::System("imports"), &ClientInfo::default())
            .await?;
        let lease_until = uow.now() + chrono::Duration::seconds(LEASE_SECS);
        let claimed = imports::claim(uow.tx(), id, uow.now(), lease_until).await?;
        uow.commit().await?;
        if !claimed {
            // Another runner got it first; whatever else waits, the next round takes.
            return Ok(false);
        }
        let row = imports::get(reader, id)
            .await?
            .ok_or_else(|| AppError::internal("a claimed import vanished"))?;
        let spec = Spec {
            id,
            actor: match (row.owner_id, row.actor_name.as_deref()) {
                (Some(user), _) => Actor::User(user),
                (None, Some("cli")) => Actor::System("cli"),
                (None, _) => Actor::System("imports"),
            },
            kind: ImportKind::parse(&row.kind).unwrap_or(ImportKind::Products),
            mode: ImportMode::parse(&row.mode).unwrap_or(ImportMode::Validate),
            replace: row.replace_existing,
            file_name: row.file_name.clone(),
            checksum: row.checksum.clone(),
            bytes: row.bytes,
            created_at: row.created_at,
            claimed: Some(row.attempts),
        };
        let client = ClientInfo {
            request_id: row.request_id.clone(),
            ..ClientInfo::default()
        };
        let content = imports::file(reader, id).await?;
        let Some(content) = content.filter(|_| row.attempts <= MAX_ATTEMPTS) else {
            let failure = ImportFailure {
                code: "imports.abandoned".into(),
                message: format!("gave up after {} attempts", row.attempts - 1),
            };
            self.record(&spec, &Outcome::default(), Some(&failure), &client)
                .await?;
            return Ok(true);
        };
        let progress = Arc::new(Progress::default());
        if let Ok(mut running) = self.running.lock() {
            running.insert(id, progress.clone());
        }
        let renewing = tokio::spawn(self.clone().renew_lease(id, progress.clone()));
        let result = self.run(&spec, &content, &client, &progress).await;
        renewing.abort();
        if let Ok(mut running) = self.running.lock() {
            running.remove(&id);
        }
        if let Err(err) = result {
            tracing::warn!(import = %id, code = err.code(), "an import failed");
        }
        Ok(true)
    }
}
