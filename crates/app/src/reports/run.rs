//! Running a report job: claim it, write its CSV into object storage while keeping the claim
//! (heartbeats that also carry the progress and notice a cancellation), and record how it
//! ended in the unit of work that emits `report.finished`.

use std::time::Instant;

use depot_domain::report::{ReportParams, ReportStatus, ReportType};
use depot_domain::{Actor, AppError, AppResult, ErrorCategory, ErrorCode};
use depot_store::entity::report_job;
use depot_store::repo::reports::{self, Ending};
use uuid::Uuid;

use super::produce::produce;
use super::sink::{LEASE_SECS, Sink, csv_writer};
use super::{ReportService, finished_event};
use crate::client::ClientInfo;

/// Runs after which a job that keeps failing for a transient reason is given up.
const MAX_ATTEMPTS: i64 = 3;
/// A stored job's range is read back as it was resolved, whatever `report_max_span_days` says
/// now.
const STORED_SPAN_DAYS: i64 = 1_000_000;

impl ReportService {
    /// Runs every report waiting for a worker, one after another; how many.
    pub(super) async fn run_queued(&self) -> AppResult<u64> {
        let mut ran = 0;
        while self.run_claimed(None).await? {
            ran += 1;
        }
        Ok(ran)
    }

    /// Claims one queued report (this one, when `only`) and runs it; whether one was run.
    pub(super) async fn run_claimed(&self, only: Option<Uuid>) -> AppResult<bool> {
        // Looked for with a read: the runner asks every few seconds, and on SQLite a write
        // transaction would take the single writer each time.
        let reader = self.writer.db().reader();
        let Some(id) = reports::next_claimable(reader, only, self.writer.now()).await? else {
            return Ok(false);
        };
        let uow = self
            .writer
            .begin(Actor::System("reports"), &ClientInfo::default())
            .await?;
        let lease_until = uow.now() + chrono::Duration::seconds(LEASE_SECS);
        let claimed = reports::claim(uow.tx(), id, uow.now(), lease_until).await?;
        uow.commit().await?;
        let Some(job) = claimed else {
            // Another runner got it first; whatever else waits, the next round takes.
            return Ok(false);
        };
        self.announce(&job).await;
        if job.attempts > MAX_ATTEMPTS {
            let error = AppError::new(
                ErrorCode::ReportsStorageUnavailable,
                format!("gave up after {} attempts", job.attempts - 1),
            );
            self.end(&job, Err(error)).await?;
            return Ok(true);
        }
        let started = Instant::now();
        let outcome = self.write(&job).await;
        if let Ok((rows, _, _)) = &outcome {
            let secs = started.elapsed().as_secs_f64();
            if secs > 0.0 {
                metrics::histogram!("depot_report_rows_per_second", "type" => job.kind.clone())
                    .record(*rows as f64 / secs);
            }
        }
        if let Err(err) = self.end(&job, outcome).await {
            tracing::warn!(report = %id, code = err.code(), "a report's end was not recorded");
        }
        Ok(true)
    }

    /// Writes the job's export; its rows, bytes and object key.
    async fn write(&self, job: &report_job::Model) -> AppResult<(u64, u64, String)> {
        let kind = ReportType::parse(&job.kind)
            .ok_or_else(|| AppError::internal(format!("unknown report type {}", job.kind)))?;
        let stored: serde_json::Value =
            serde_json::from_str(&job.params).map_err(AppError::internal)?;
        // Read back as stored: resolved once, never refused for a setting changed since.
        let params = ReportParams::parse(kind, &stored, STORED_SPAN_DAYS, job.created_at).map_err(
            |fields| {
                AppError::internal(format!(
                    "a stored report's parameters no longer read: {fields:?}"
                ))
            },
        )?;
        let key = format!(
            "reports/{}/{}.csv",
            job.created_at.format("%Y/%m/%d"),
            job.id
        );
        let mut sink = Sink {
            service: self,
            job,
            csv: csv_writer(),
            upload: Some(self.blobs.writer(&key).await?),
            rows: 0,
            total: None,
            position: None,
            last_beat: Instant::now(),
        };
        let snapshot = self.writer.db().replica_snapshot().await?;
        let written = async {
            produce(
                &params,
                job.shows_pii,
                &snapshot,
                self.writer.now(),
                &mut sink,
            )
            .await?;
            sink.flush().await
        }
        .await;
        drop(snapshot);
        let upload = sink.upload.take();
        match (written, upload) {
            (Ok(()), Some(upload)) => {
                let bytes = upload.finish().await?;
                Ok((sink.rows, bytes, key))
            }
            (result, upload) => {
                if let Some(upload) = upload
                    && let Err(err) = upload.abort().await
                {
                    tracing::warn!(report = %job.id, code = err.code(), "an aborted upload was not cleaned up");
                }
                // A multipart upload that never completed leaves no object; a store that
                // wrote one anyway loses it here. The run's own error is the one reported.
                if let Err(err) = self.blobs.delete(&key).await {
                    tracing::warn!(report = %job.id, code = err.code(), "a failed run's export was not deleted");
                }
                Err(result
                    .err()
                    .unwrap_or_else(|| AppError::internal("upload vanished")))
            }
        }
    }

    /// Records how the run ended (when it still holds the job), emits `report.finished` and
    /// tells the owner.
    async fn end(
        &self,
        job: &report_job::Model,
        outcome: AppResult<(u64, u64, String)>,
    ) -> AppResult<()> {
        let now = self.writer.now();
        let ending = match &outcome {
            Ok((rows, bytes, key)) => Ending {
                status: ReportStatus::Succeeded,
                rows: i64::try_from(*rows).unwrap_or(i64::MAX),
                bytes: i64::try_from(*bytes).unwrap_or(i64::MAX),
                object_key: Some(key.clone()),
                error: None,
                expires_at: Some(
                    now + chrono::Duration::from_std(self.settings.retention)
                        .unwrap_or(chrono::Duration::days(7)),
                ),
            },
            // Cancelled (or taken over): the job row already says so.
            Err(err) if err.error_code() == ErrorCode::ReportsTakenOver => return Ok(()),
            Err(err) => {
                let transient =
                    err.category() == ErrorCategory::Unavailable && job.attempts < MAX_ATTEMPTS;
                tracing::warn!(report = %job.id, code = err.code(), cause = %err.cause_chain(), "a report failed");
                Ending {
                    // A fault of the moment (storage or database away) gives the job back.
                    status: if transient {
                        ReportStatus::Queued
                    } else {
                        ReportStatus::Failed
                    },
                    rows: 0,
                    bytes: 0,
                    object_key: None,
                    error: Some((err.code().to_owned(), err.message().to_owned())),
                    expires_at: None,
                }
            }
        };
        let status = ending.status;
        let mut uow = self
            .writer
            .begin(Actor::System("reports"), &ClientInfo::default())
            .await?;
        let Some(row) = reports::finish(uow.tx(), job.id, job.attempts, ending, now).await? else {
            drop(uow);
            // Cancelled while it finished: its export must not outlive it.
            if let Ok((_, _, key)) = &outcome {
                self.blobs.delete(key).await?;
            }
            return Ok(());
        };
        if status != ReportStatus::Queued {
            uow.emit(&finished_event(&row, now));
        }
        uow.commit().await?;
        metrics::counter!("depot_reports_finished_total", "type" => row.kind.clone(), "status" => row.status.clone())
            .increment(1);
        if status == ReportStatus::Succeeded {
            metrics::counter!("depot_report_export_bytes_total", "type" => row.kind.clone())
                .increment(u64::try_from(row.bytes).unwrap_or(0));
        }
        self.announce(&row).await;
        Ok(())
    }
}
