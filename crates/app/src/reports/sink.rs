//! Where a run's CSV goes: rows encoded into a buffer that is handed to the multipart upload
//! as it fills, within the job's limits, with a heartbeat that keeps the claim.

use std::time::{Duration, Instant};

use depot_adapters::blobs::BlobWriter;
use depot_domain::report::ReportStatus;
use depot_domain::{Actor, AppError, AppResult, ErrorCode};
use depot_store::entity::report_job;
use depot_store::repo::reports;

use super::ReportService;
use crate::client::ClientInfo;

/// How long a claimed job is held before another worker may take it over.
pub(super) const LEASE_SECS: i64 = 120;
/// How often a run reports its progress (and renews its claim).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// CSV bytes gathered before they are handed to the upload.
const FLUSH_BYTES: usize = 256 * 1024;

/// Where a run's CSV goes: encoded row by row into a buffer that is handed to the upload as it
/// fills, within the job's limits, with a heartbeat at most every [`HEARTBEAT`].
pub(super) struct Sink<'a> {
    pub(super) service: &'a ReportService,
    pub(super) job: &'a report_job::Model,
    pub(super) csv: csv::Writer<Vec<u8>>,
    pub(super) upload: Option<BlobWriter>,
    pub(super) rows: u64,
    /// Rows the report is expected to have (for the progress), when known.
    pub(super) total: Option<u64>,
    /// Progress from another measure than rows (a time range walked), 0–100.
    pub(super) position: Option<u8>,
    pub(super) last_beat: Instant,
}

pub(super) fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::Writer::from_writer(Vec::with_capacity(FLUSH_BYTES + 64 * 1024))
}

fn csv_error(err: impl std::error::Error + Send + Sync + 'static) -> AppError {
    AppError::internal(err)
}

fn too_large(what: &str) -> AppError {
    AppError::new(
        ErrorCode::ReportsTooLarge,
        format!("the report exceeds the {what} limit; narrow its parameters"),
    )
}

impl Sink<'_> {
    /// Rows read per page (`report_page_rows`).
    pub fn page_rows(&self) -> u64 {
        self.service.settings.page_rows
    }

    pub fn expect_rows(&mut self, total: u64) {
        self.total = Some(total);
    }

    /// Progress measured along the report's own walk (e.g. its date range), 0–100.
    pub fn position(&mut self, percent: u8) {
        self.position = Some(percent.min(99));
    }

    pub fn header(&mut self, columns: &[&str]) -> AppResult<()> {
        self.csv.write_record(columns).map_err(csv_error)
    }

    /// Writes one row (not counted against the limit when it is the header).
    pub async fn row<I, T>(&mut self, cells: I) -> AppResult<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        self.csv.write_record(cells).map_err(csv_error)?;
        self.rows += 1;
        if self.rows > self.service.settings.max_rows {
            return Err(too_large("row"));
        }
        if self.csv.get_ref().len() >= FLUSH_BYTES {
            self.flush().await?;
        }
        if self.last_beat.elapsed() >= HEARTBEAT {
            self.beat().await?;
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        self.upload.as_ref().map_or(0, BlobWriter::bytes) + self.csv.get_ref().len() as u64
    }

    pub(super) async fn flush(&mut self) -> AppResult<()> {
        self.csv.flush().map_err(csv_error)?;
        if self.written() > self.service.settings.max_bytes {
            return Err(too_large("size"));
        }
        let buffered = std::mem::replace(&mut self.csv, csv_writer())
            .into_inner()
            .map_err(|e| csv_error(e.into_error()))?;
        if let Some(upload) = self.upload.as_mut() {
            upload.write(&buffered).await?;
        }
        Ok(())
    }

    fn progress(&self) -> u8 {
        match (self.position, self.total) {
            (Some(p), _) => p,
            (None, Some(total)) => depot_domain::report::percent(self.rows, total).min(99),
            (None, None) => 0,
        }
    }

    /// Records the progress and renews the claim; `reports.taken_over` when the run lost it
    /// (cancelled, or taken over).
    async fn beat(&mut self) -> AppResult<()> {
        self.last_beat = Instant::now();
        let service = self.service;
        let uow = service
            .writer
            .begin(Actor::System("reports"), &ClientInfo::default())
            .await?;
        let now = uow.now();
        let held = reports::heartbeat(
            uow.tx(),
            (self.job.id, self.job.attempts),
            reports::Progress {
                percent: self.progress(),
                rows: i64::try_from(self.rows).unwrap_or(i64::MAX),
                bytes: i64::try_from(self.written()).unwrap_or(i64::MAX),
            },
            now,
            now + chrono::Duration::seconds(LEASE_SECS),
        )
        .await?;
        uow.commit().await?;
        if !held {
            return Err(taken_over());
        }
        if let Some(owner) = self.job.owner_id {
            let progress = serde_json::json!({
                "id": self.job.id,
                "status": ReportStatus::Running,
                "progress": self.progress(),
                "rows": self.rows,
            });
            service
                .realtime
                .push(owner, "report.progress", &progress)
                .await;
        }
        Ok(())
    }
}

fn taken_over() -> AppError {
    AppError::new(
        ErrorCode::ReportsTakenOver,
        "the report was cancelled or taken over by another run",
    )
}
